"""Inputs of the workflow: who a hub token says is acting (and from which workspace), how an
upload is parsed (hostile bodies refused with the field named), and the content-addressed store."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from egress.store import BlobStore
from egress.web.api import _from_json, _from_multipart, _provenance
from egress.web.base import make_actor
from hub.exceptions import Failure, InvalidInput, NotFound


@pytest.mark.parametrize("scopes,server", [
    (["access:servers!server=alice/P-1", "custom:spe:submit"], "P-1"),
    (["access:servers!server=alice/P-1", "access:servers!server=alice/P-2"], None),  # two servers: none
    (["access:servers!server=bob/P-1"], None),  # another user's server
    (["access:servers!user=alice", "access:servers!server=alice/P-1"], None),  # a broad token names no workspace
    (["inherit", "access:servers!server=alice/P-1"], None),
    (["custom:spe:submit"], None),
])
def test_the_workspace_is_named_only_by_a_single_server_token(scopes, server):
    actor = make_actor({"name": "alice", "kind": "user", "scopes": scopes})
    assert actor.server_name == server
    assert actor.username == "alice"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_json_upload_parsing():
    sub = _from_json({"description": "d", "kind": "magnitude", "provenance_sql": "SELECT 1",
                      "files": [{"name": "a.csv", "content_base64": _b64(b"x,n\n1,2\n")}]})
    assert sub.files == [("a.csv", b"x,n\n1,2\n")] and sub.provenance == {"a.csv": "SELECT 1"}
    assert sub.kind == "magnitude"


@pytest.mark.parametrize("doc,field", [
    ([], "body"),
    ({"files": []}, "files"),
    ({"files": [{"name": "a.csv"}]}, "files.0"),
    ({"files": [{"name": "a.csv", "content_base64": "***"}]}, "files.0"),
    ({"files": [{"name": "a.csv", "content_base64": "eA=="}], "provenance_sql": 3}, "provenance_sql"),
    ({"files": [{"name": "a.csv", "content_base64": "eA=="}, {"name": "b.csv", "content_base64": "eA=="}],
      "provenance_sql": "SELECT 1"}, "provenance_sql"),  # one SQL, two tables: ambiguous
    ({"files": [{"name": "a.csv", "content_base64": "eA=="}], "description": ["x"]}, "description"),
])
def test_hostile_json_bodies_are_refused_naming_the_field(doc, field):
    with pytest.raises(InvalidInput) as err:
        _from_json(doc)
    assert err.value.field == field


def test_multipart_parsing_and_provenance_mapping():
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nmy table\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"provenance\"\r\n\r\n"
            + json.dumps({"t.csv": "SELECT 2"}) + "\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\na,n\n1,20\n\r\n"
            f"--{boundary}--\r\n").encode()
    sub = _from_multipart(f"multipart/form-data; boundary={boundary}", body)
    assert sub.description == "my table" and sub.files == [("t.csv", b"a,n\n1,20\n")]
    assert sub.provenance == {"t.csv": "SELECT 2"}
    with pytest.raises(InvalidInput):
        _from_multipart(f"multipart/form-data; boundary={boundary}", b"garbage without parts")
    with pytest.raises(InvalidInput):
        _provenance("[1, 2]", "", ["t.csv"])


def test_store_is_content_addressed_and_verifies_on_read(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.put(b"hello") == digest and store.get(digest) == b"hello"
    path = tmp_path / digest[:2] / digest
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(Failure):
        store.get(digest)
    for bad in ("../../etc/passwd", "A" * 64, ""):
        with pytest.raises(NotFound):
            store.get(bad)
