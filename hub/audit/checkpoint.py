"""Signed checkpoints of the audit chain head, and the operator signing key.

A hash chain alone proves nothing against someone who can rewrite the whole table: they
recompute every hash. A checkpoint is (seq, hash, ts, kind) signed with the operator key
(Ed25519 by default, kept in `settings.keys_dir`, never mounted in a workspace); an auditor
holding only the public key can then tell that the chain up to `seq` is the one the operator
signed. Purge checkpoints carry the chain over a removed prefix (`hub.audit.retention`).

`checkpoint(engine, signer, actor=...)` signs the head, stores it and audits the act (what
`spe audit checkpoint` runs). Imports only `hub.audit` modules below verification; no I/O
besides the key file and the given engine or connection.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from hub.audit.chain import Damage
from hub.audit.store import lock_head, record, utc_now_iso
from hub.audit.tables import audit_checkpoints

KEY_FILE = "audit-signing-ed25519.pem"
KINDS = ("periodic", "purge", "export", "rotate")


def checkpoint_message(seq: int, hash_: str, ts: str, kind: str) -> bytes:
    return f"spe-audit-checkpoint/1\n{int(seq)}\n{hash_}\n{ts}\n{kind}".encode("ascii")


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints with the operator's Ed25519 key (anyone with the public key verifies)."""

    algorithm: str  # "ed25519", stored with each checkpoint
    key_id: str
    public_key_hex: str  # raw public key
    _private: object

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()

    def verifier(self) -> "Verifier":
        return Verifier.ed25519(self.public_key_hex)


@dataclass(frozen=True)
class Verifier:
    algorithm: str
    key_id: str
    _key: object

    @classmethod
    def ed25519(cls, public_key_hex: str) -> "Verifier":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        raw = bytes.fromhex(public_key_hex)
        return cls("ed25519", key_id_of(raw), Ed25519PublicKey.from_public_bytes(raw))

    def check(self, message: bytes, signature_hex: str) -> bool:
        try:
            sig = bytes.fromhex(signature_hex)
        except ValueError:
            return False
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(sig, message)
            return True
        except InvalidSignature:
            return False


def key_id_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signer(keys_dir: Path) -> Signer:
    """The operator's Ed25519 key from `keys_dir`, created (mode 0600) on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys_dir = Path(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = keys_dir / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            # O_EXCL: two processes creating the key at once must not overwrite each other's.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    raw_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer("ed25519", key_id_of(raw_pub), raw_pub.hex(), key)


def public_key_file(signer: Signer) -> str:
    """Text of the exportable public key (what an auditor pins to verify evidence packs)."""
    return f"spe-audit-ed25519 {signer.public_key_hex} key_id={signer.key_id}\n"


def parse_public_key(text: str) -> Verifier:
    parts = text.split()
    hex_key = parts[1] if parts and parts[0] == "spe-audit-ed25519" and len(parts) > 1 else parts[0]
    return Verifier.ed25519(hex_key)


def make_checkpoint(conn: sa.Connection, signer: Signer, *, kind: str = "periodic",
                    seq: int | None = None, hash_: str | None = None, ts: str) -> dict:
    """Sign the chain head (or a given seq/hash) and store the checkpoint, in the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}")
    if seq is None:
        seq, hash_ = lock_head(conn)
    row = {"seq": int(seq), "hash": hash_, "ts": ts, "kind": kind, "algorithm": signer.algorithm,
           "key_id": signer.key_id, "signature": signer.sign(checkpoint_message(seq, hash_, ts, kind))}
    row["id"] = conn.execute(audit_checkpoints.insert().values(**row)).inserted_primary_key[0]
    return row


def load_checkpoints(conn: sa.Connection) -> list[dict]:
    q = sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq, audit_checkpoints.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


def check_signatures(checkpoints: list[dict], verifier: "Verifier | list[Verifier] | None") -> Damage | None:
    """The first checkpoint whose signature does not verify, as Damage; None if all do (or no verifier).

    `verifier` may be a list: the current key and the keys it replaced (`rotate_key`); each
    checkpoint must verify with the key it names."""
    if verifier is None:
        return None
    ring = {v.key_id: v for v in (verifier if isinstance(verifier, (list, tuple)) else [verifier])}
    names = ", ".join(ring)
    for cp in checkpoints:
        v = ring.get(cp["key_id"])
        ok = (v is not None and cp["algorithm"] == v.algorithm
              and v.check(checkpoint_message(cp["seq"], cp["hash"], cp["ts"], cp["kind"]), cp["signature"]))
        if not ok:
            return Damage(int(cp["seq"]), "bad_signature",
                          f"checkpoint at event {cp['seq']} ({cp['kind']}, {cp['ts']}) does not carry a valid "
                          f"signature of operator key {names}: forged or altered")
    return None


RETIRED_FILE = "audit-retired-public-keys"


def retired_verifiers(keys_dir: Path) -> list[Verifier]:
    """The public keys that earlier checkpoints were signed with (`rotate_key` keeps them)."""
    path = Path(keys_dir) / RETIRED_FILE
    if not path.exists():
        return []
    return [parse_public_key(line) for line in path.read_text().splitlines() if line.strip()]


def rotate_key(engine: sa.Engine, keys_dir: Path, *, actor: str) -> tuple[Signer, Signer]:
    """Replace the signing key; old checkpoints stay verifiable.

    The old key signs the head one last time (kind `rotate`), its public key is appended to
    `audit-retired-public-keys`, its private key is deleted (it can sign nothing more), and the
    new key signs the same head; the act is audited. Returns (old, new)."""
    keys_dir = Path(keys_dir)
    old = load_or_create_signer(keys_dir)
    with engine.begin() as conn:
        make_checkpoint(conn, old, kind="rotate", ts=utc_now_iso())
    with open(keys_dir / RETIRED_FILE, "a", encoding="ascii") as fh:
        fh.write(public_key_file(old))
        fh.flush()
        os.fsync(fh.fileno())
    (keys_dir / KEY_FILE).unlink()
    new = load_or_create_signer(keys_dir)
    with engine.begin() as conn:
        cp = make_checkpoint(conn, new, kind="rotate", ts=utc_now_iso())
        record(conn, actor=actor, role="operator", action="audit.rotate_key", object_id=str(cp["id"]),
               detail={"old_key_id": old.key_id, "new_key_id": new.key_id, "seq": cp["seq"], "hash": cp["hash"]})
    return old, new


def chain_base(checkpoints: list[dict]) -> dict | None:
    """The latest purge checkpoint: where the stored chain starts after retention purges."""
    purges = [cp for cp in checkpoints if cp["kind"] == "purge"]
    return max(purges, key=lambda cp: (cp["seq"], cp["id"] if "id" in cp else 0)) if purges else None


def checkpoint(engine: sa.Engine, signer: Signer, *, actor: str, kind: str = "periodic") -> dict:
    """Sign the current head, store the checkpoint and audit the act (one transaction)."""
    with engine.begin() as conn:
        cp = make_checkpoint(conn, signer, kind=kind, ts=utc_now_iso())
        record(conn, actor=actor, role="operator", action="audit.checkpoint", object_id=str(cp["id"]),
               detail={"seq": cp["seq"], "hash": cp["hash"], "kind": kind, "key_id": signer.key_id})
    return cp

