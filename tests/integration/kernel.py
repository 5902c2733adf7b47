"""Drive a Jupyter kernel of a workspace over the Jupyter server REST API + websocket (test helper)."""

from __future__ import annotations

import json
import uuid

import requests
import websocket


class Kernel:
    def __init__(self, server_url: str, token: str, timeout_seconds: float = 60):
        """`server_url`: the workspace's public URL, e.g. http://127.0.0.1:8000/user/alice/demo-2026-001/"""
        self.server_url = server_url.rstrip("/") + "/"
        self.token = token
        self.timeout_seconds = timeout_seconds
        resp = requests.post(self.server_url + "api/kernels", json={"name": "python3"},
                             headers={"Authorization": f"token {token}"}, timeout=timeout_seconds)
        resp.raise_for_status()
        self.kernel_id = resp.json()["id"]
        ws_url = self.server_url.replace("http://", "ws://", 1) + f"api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                              timeout=timeout_seconds)
        self.session = uuid.uuid4().hex

    def run(self, code: str) -> str:
        """Execute `code`; return its stdout. Raises AssertionError with the traceback on error."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session, "msg_type": "execute_request",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out, error, idle, replied = [], None, False, False
        while not (idle and replied):
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(msg["content"]["data"].get("text/plain", ""))
            elif kind == "error":
                error = "\n".join(msg["content"]["traceback"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        if error:
            raise AssertionError(f"kernel error:\n{error}")
        return "".join(out)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            requests.delete(self.server_url + f"api/kernels/{self.kernel_id}",
                            headers={"Authorization": f"token {self.token}"}, timeout=self.timeout_seconds)
