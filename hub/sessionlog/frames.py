"""Kernel channel frames the recorder writes itself: notices to the researcher and truncated outputs.

A notice is an IOPub `stream` message (stderr) whose parent is the cell that caused it, so
JupyterLab shows it under that cell. A truncated output keeps its header (the frontend
matches it) with its content cut to the per-message limit plus a notice. Both protocols are
written: the JSON one and `v1.kernel.websocket.jupyter.org` (binary, offsets table).

Pure: no I/O; standard library and `hub.sessionlog.protocol` only.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from hub.sessionlog.protocol import V1_PROTOCOL, _unpack_v1


def decode(frame: bytes | str, subprotocol: str | None) -> dict | None:
    """The message as a dict (channel, header, parent_header, metadata, content), or None."""
    try:
        if subprotocol == V1_PROTOCOL and isinstance(frame, bytes):
            parts = _unpack_v1(frame)
            if parts is None:
                return None
            msg = {"channel": parts[0].decode("utf-8")}
            for name, raw in zip(("header", "parent_header", "metadata", "content"), parts[1:5]):
                msg[name] = json.loads(raw or b"{}")
        else:
            msg = json.loads(frame.decode("utf-8") if isinstance(frame, bytes) else frame)
        if not isinstance(msg, dict) or not all(isinstance(msg.get(k, {}), dict) for k in
                                                ("header", "parent_header", "metadata", "content")):
            return None
        return msg
    except (ValueError, UnicodeDecodeError):
        return None


def encode(msg: dict, subprotocol: str | None) -> bytes | str:
    if subprotocol == V1_PROTOCOL:
        parts = [msg.get("channel", "iopub").encode("utf-8")] + [
            json.dumps(msg.get(k) or {}).encode("utf-8") for k in ("header", "parent_header", "metadata", "content")]
        n = len(parts) + 1
        offsets = [8 * (n + 1)]
        for p in parts:
            offsets.append(offsets[-1] + len(p))
        return b"".join([n.to_bytes(8, "little")] + [o.to_bytes(8, "little") for o in offsets] + parts)
    header = msg.get("header") or {}
    return json.dumps({"header": header, "parent_header": msg.get("parent_header") or {},
                       "metadata": msg.get("metadata") or {}, "content": msg.get("content") or {},
                       "channel": msg.get("channel", "iopub"), "buffers": [],
                       "msg_id": header.get("msg_id", ""), "msg_type": header.get("msg_type", "")})


def notice(parent: dict, text: str, subprotocol: str | None) -> bytes | str:
    """An IOPub stderr `stream` message under the cell whose header is `parent`."""
    header = {"msg_id": f"spe-{uuid.uuid4().hex}", "msg_type": "stream", "session": parent.get("session", ""),
              "username": parent.get("username", ""), "version": "5.3",
              "date": datetime.now(timezone.utc).isoformat()}
    return encode({"channel": "iopub", "header": header, "parent_header": parent, "metadata": {},
                   "content": {"name": "stderr", "text": text if text.endswith("\n") else text + "\n"}}, subprotocol)


def truncated(msg: dict, keep_bytes: int, note: str, subprotocol: str | None) -> bytes | str:
    """`msg` (an output message) with its content cut to about `keep_bytes` plus `note`."""
    kind = (msg.get("header") or {}).get("msg_type", "")
    content = dict(msg.get("content") or {})
    if kind == "stream":
        text = content.get("text") if isinstance(content.get("text"), str) else ""
        content["text"] = text.encode("utf-8")[:keep_bytes].decode("utf-8", errors="ignore") + note + "\n"
    elif kind in ("display_data", "execute_result", "update_display_data"):
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        plain = data.get("text/plain") if isinstance(data.get("text/plain"), str) else ""
        # the plain-text form, cut; richer forms (images, HTML) cannot be cut meaningfully: dropped
        kept = plain.encode("utf-8")[:keep_bytes].decode("utf-8", errors="ignore")
        content["data"] = {"text/plain": kept + note if kept else note.strip()}
        content["metadata"] = {}
    elif kind == "error":
        content = {"ename": str(content.get("ename", ""))[:200], "evalue": str(content.get("evalue", ""))[:1000],
                   "traceback": [note.strip()]}
    else:
        return notice(msg.get("parent_header") or {}, note.strip(), subprotocol)
    return encode({**msg, "content": content, "buffers": []}, subprotocol)
