"""Who runs a local operator command: the Unix account and the host, not a name anyone types.

`spe --actor NAME`, `$SPE_ACTOR` and `$USER` are claims the operator chooses; the effective
user id of the process is what the kernel says. A local command (no hub in between) is
therefore recorded as `account@host` with `detail.auth = "local-unix"` (it is *not*
authenticated beyond the login to that host), and a claimed name that differs is kept as
`detail.claimed_actor` — never as the actor. `spe` applies this at its entry point
(`hub.cli.main`) through `hub.audit.attestation`.
"""

from __future__ import annotations

import os
import pwd
import socket
from dataclasses import dataclass

AUTH_LOCAL_UNIX = "local-unix"


@dataclass(frozen=True)
class LocalOperator:
    account: str
    host: str
    claimed: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.account}@{self.host}"

    def detail(self) -> dict:
        """The keys every event of this operator carries in its detail."""
        out = {"auth": AUTH_LOCAL_UNIX}
        if self.claimed and self.claimed not in (self.account, self.actor):
            out["claimed_actor"] = self.claimed
        return out


def account_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container user without a passwd entry
        return f"uid{uid}"


def local_operator(claimed: str | None = None, *, uid: int | None = None, host: str | None = None) -> LocalOperator:
    """The operator running this process: its effective Unix account and this host's name."""
    return LocalOperator(account_name(os.geteuid() if uid is None else uid),
                         host or socket.gethostname() or "localhost", claimed or None)
