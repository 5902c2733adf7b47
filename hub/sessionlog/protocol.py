"""Pure parsing of Jupyter websocket traffic: kernel channel messages (JSON and the
`v1.kernel.websocket.jupyter.org` binary protocol) and terminal stdin assembled into commands.

No I/O and no imports from the rest of SPE. Parsing never raises on hostile input: a frame
that cannot be parsed yields None and the proxy records it as unparseable (fail closed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
MAX_OFFSETS = 64
MAX_COMMAND_CHARS = 8192
OUTPUT_MSG_TYPES = ("stream", "execute_result", "display_data", "update_display_data", "error")


@dataclass(frozen=True)
class KernelMessage:
    channel: str
    msg_type: str
    msg_id: str
    parent_msg_id: str
    session: str
    content: dict
    size_bytes: int


def _unpack_v1(frame: bytes) -> list[bytes] | None:
    """Split a v1 frame: uint64 LE count n, n uint64 LE offsets, then the parts
    (channel, header, parent_header, metadata, content, buffers...)."""
    if len(frame) < 8:
        return None
    n = int.from_bytes(frame[:8], "little")
    if n < 5 or n > MAX_OFFSETS or len(frame) < 8 * (n + 1):
        return None
    offsets = [int.from_bytes(frame[8 * (i + 1): 8 * (i + 2)], "little") for i in range(n)]
    offsets.append(len(frame))
    if any(b < a for a, b in zip(offsets, offsets[1:])) or offsets[0] < 8 * (n + 1):
        return None
    return [frame[a:b] for a, b in zip(offsets, offsets[1:])]


def parse_kernel_frame(frame: bytes | str, subprotocol: str | None) -> KernelMessage | None:
    """One websocket frame of /api/kernels/<id>/channels as a KernelMessage, or None."""
    try:
        if subprotocol == V1_PROTOCOL and isinstance(frame, bytes):
            parts = _unpack_v1(frame)
            if parts is None:
                return None
            channel = parts[0].decode("utf-8")
            header = json.loads(parts[1] or b"{}")
            parent = json.loads(parts[2] or b"{}")
            content = json.loads(parts[4] or b"{}")
        else:
            text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
            msg = json.loads(text)
            channel = msg.get("channel") or ""
            header = msg.get("header") or {}
            parent = msg.get("parent_header") or {}
            content = msg.get("content") or {}
        if not isinstance(header, dict) or not isinstance(content, dict) or not isinstance(parent, dict):
            return None
        return KernelMessage(channel=str(channel), msg_type=str(header.get("msg_type", "")),
                             msg_id=str(header.get("msg_id", "")), parent_msg_id=str(parent.get("msg_id", "")),
                             session=str(header.get("session", "")), content=content, size_bytes=len(frame))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def parse_terminal_frame(frame: bytes | str) -> tuple[str, str] | None:
    """A terminado frame `["stdin", "text"]` -> ("stdin", "text"); None if not a list of strings."""
    try:
        msg = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(msg, list) and msg and isinstance(msg[0], str):
        return msg[0], msg[1] if len(msg) > 1 and isinstance(msg[1], str) else ""
    return None


class CommandAssembler:
    """Keystrokes -> command lines: Enter ends a command, backspace edits, Ctrl-C/Ctrl-U discard.

    What reaches the shell is what the researcher typed, so an auditor reads commands, not
    keystrokes. Escape sequences (arrow keys, history recall) are kept verbatim as `^[...`,
    because the recorder cannot know what the shell's history holds.
    """

    def __init__(self):
        self.buffer: list[str] = []

    def feed(self, text: str) -> list[str]:
        done = []
        for ch in text:
            if ch in ("\r", "\n"):
                done.append("".join(self.buffer))
                self.buffer = []
            elif ch in ("\x7f", "\b"):
                if self.buffer:
                    self.buffer.pop()
            elif ch in ("\x03", "\x15"):  # Ctrl-C, Ctrl-U: the line is discarded by the shell
                if self.buffer:
                    done.append("".join(self.buffer) + " ^C")
                self.buffer = []
            elif ch == "\x1b":
                self.buffer.append("^[")
            elif ch == "\t" or ch >= " ":
                self.buffer.append(ch)
            else:
                self.buffer.append(f"^{chr(ord(ch) + 64)}")
            if len(self.buffer) > MAX_COMMAND_CHARS:
                done.append("".join(self.buffer) + " …")
                self.buffer = []
        return done

    def flush(self) -> str | None:
        rest = "".join(self.buffer)
        self.buffer = []
        return rest or None
