"""Pure rules of the inflow airlock: what a file is by its bytes, what an upload's name, size and
type must be, what a package request and a wheel must be, how pip is pointed at a permit's index,
and that the workspace spec and the firewall carry both."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sqlite3
import zipfile
from datetime import date

import pytest

from egress.imports import policy
from hub.exceptions import Forbidden, InvalidInput
from hub.filetypes import check_name_matches, detect
from hub.mirror.download import DownloadSettings
from hub.mirror.wheels import Requirement, parse_requirement, read_wheel, workspace_platforms
from hub.permits.model import Member, Permit
from hub.spawner.spec import SpawnSettings, make_pip_env, make_workspace_spec
from tests.wheels import make_wheel


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"person_id": [1, 2, 3]}), buffer)
    return buffer.getvalue()


def _sqlite(tmp_path) -> bytes:
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as con:
        con.execute("create table t (a int)")
    return path.read_bytes()


def _duckdb(tmp_path) -> bytes:
    import duckdb

    path = tmp_path / "x.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table t as select 1 as a")
    con.close()
    return path.read_bytes()


def _zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _pe() -> bytes:
    data = bytearray(b"MZ" + b"\x00" * 0x3E + b"\x00" * 64)
    data[0x3C:0x40] = (0x40).to_bytes(4, "little")
    return bytes(data[:0x40]) + b"PE\x00\x00" + b"\x00" * 32


@pytest.mark.parametrize("make, kind, family", [
    (lambda t: _parquet(), "parquet", "data"),
    (_sqlite, "sqlite", "data"),
    (_duckdb, "duckdb", "data"),
    (lambda t: make_wheel(t, "tiny", "1.0").read_bytes(), "wheel", "archive"),
    (lambda t: _zip({"[Content_Types].xml": "x", "xl/workbook.xml": "x"}), "xlsx", "document"),
    (lambda t: _zip({"a.csv": "a,b\n1,2\n"}), "zip", "archive"),
    (lambda t: gzip.compress(b"a,b\n1,2\n"), "gzip", "archive"),
    (lambda t: pickle.dumps({"a": 1}), "pickle", "data"),
    (lambda t: b"%PDF-1.7\n...", "pdf", "document"),
    (lambda t: b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "png", "image"),
    (lambda t: b"\x7fELF\x02\x01\x01" + b"\x00" * 40, "elf", "executable"),
    (lambda t: _pe(), "pe", "executable"),
    (lambda t: b"MZ,code\n1,2\n3,4\n", "csv", "text"),  # "MZ" alone does not make an executable
    (lambda t: json.dumps({"nbformat": 4, "cells": [], "metadata": {}}).encode(), "notebook", "notebook"),
    (lambda t: b'{"a": [1, 2]}', "json", "text"),
    (lambda t: b"code,label\n\xc3\xa9,1\n2,3\n", "csv", "text"),
    (lambda t: b"a\tb\n1\t2\n", "tsv", "text"),
    (lambda t: b"#!/bin/sh\ncurl evil\n", "script", "executable"),
    (lambda t: b"just some notes\n", "text", "text"),
    (lambda t: bytes(range(256)) * 4, "binary", "binary"),
    (lambda t: b"PAR1 but not at the end", "text", "text"),
    (lambda t: b"", "empty", "binary"),
])
def test_a_file_is_judged_by_its_bytes(tmp_path, make, kind, family):
    ftype = detect(make(tmp_path))
    assert (ftype.kind, ftype.family) == (kind, family)
    assert ftype.label
    if family in ("executable", "archive") and kind != "script":
        assert ftype.warning  # a reviewer is told what it may hide or run


@pytest.mark.parametrize("name, data, ok", [
    ("person.csv", _parquet(), False),  # a Parquet file renamed to .csv
    ("person.parquet", _parquet(), True),
    ("notes.txt", b"a,b\n1,2\n", True),
    ("codes.json", b"a,b\n1,2\n", False),
    ("tool.whl", b"a,b\n1,2\n", False),
    ("model.pkl", pickle.dumps(1), True),
    ("data.unknownext", b"\x00\x01\x02", True),  # an extension we do not know is not judged
    ("README", b"text\n", True),
])
def test_a_known_extension_must_match_the_bytes(name, data, ok):
    if ok:
        check_name_matches(name, detect(data))
    else:
        with pytest.raises(InvalidInput, match="give the file the name of what it is"):
            check_name_matches(name, detect(data))


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.csv", "..", "x..y.csv", ".bashrc", "a\\b.csv", "x\x00.csv",
                                  "", "a" * 129, "$(rm -rf).csv", "semi;colon.csv", "new\nline.csv", "trail.", " lead",
                                  None, 42])
def test_hostile_file_names_are_refused(name):
    with pytest.raises(InvalidInput) as err:
        policy.check_file_name(name)
    assert err.value.field == "name"


@pytest.mark.parametrize("name", ["codes.csv", "ICD-10 map (2024).csv", "a", "x_y+z=1@v2.txt"])
def test_plain_file_names_are_kept_as_they_are(name):
    assert policy.check_file_name(name) == name


def test_an_upload_is_bounded_hashed_and_typed():
    facts = policy.check_upload("codes.csv", b"code,label\n1,a\n", max_bytes=100)
    assert facts.size_bytes == 15 and facts.file_type.kind == "csv"
    assert facts.sha256 == __import__("hashlib").sha256(b"code,label\n1,a\n").hexdigest()
    with pytest.raises(InvalidInput, match="empty"):
        policy.check_upload("codes.csv", b"", max_bytes=100)
    with pytest.raises(InvalidInput, match="at most 10 bytes"):
        policy.check_upload("codes.csv", b"x" * 11, max_bytes=10)
    with pytest.raises(InvalidInput, match="Parquet"):
        policy.check_upload("codes.csv", _parquet(), max_bytes=10**6)
    assert policy.check_upload("x.txt", b"x" * 10, max_bytes=10).size_bytes == 10  # the limit itself is allowed


def test_a_checker_sees_the_first_lines_of_text_and_nothing_of_binary():
    text = b"".join(f"line {i}\n".encode() for i in range(100))
    preview = policy.text_preview(text, detect(text))
    assert preview["text"].splitlines()[0] == "line 0" and len(preview["text"].splitlines()) == policy.PREVIEW_LINES
    assert preview["truncated"] is True
    assert policy.text_preview(b"a\nb\n", detect(b"a\nb\n")) == {"text": "a\nb", "truncated": False}
    assert policy.text_preview(_parquet(), detect(_parquet())) is None


@pytest.mark.parametrize("text, expected", [
    ("six==1.16.0", ("six", "1.16.0")), ("Py_Yaml==6.0.1", ("py-yaml", "6.0.1")), (" tabulate==0.9 ", ("tabulate", "0.9")),
])
def test_a_package_is_one_pinned_release(text, expected):
    req = parse_requirement(text)
    assert (req.project, req.version) == expected and str(req) == f"{expected[0]}=={expected[1]}"


@pytest.mark.parametrize("text", ["six", "six>=1.0", "six==1.*", "six===1.0", "six==1.0==2", "six[extra]==1.0",
                                  "six==1.0; python_version>'3'", "../x==1.0", "six==not a version", "-e==1", None])
def test_anything_but_one_pinned_release_is_refused(text):
    with pytest.raises(InvalidInput):
        parse_requirement(text)


def test_a_wheel_must_be_what_its_name_and_its_metadata_say(tmp_path):
    wheel = make_wheel(tmp_path, "tiny-pkg", "1.2.0", requires=("six>=1",))
    info = read_wheel(wheel.name, wheel.read_bytes(), Requirement("tiny-pkg", "1.2.0"))
    assert (info.project, info.version, info.requires_dist) == ("tiny-pkg", "1.2.0", ("six>=1",))
    assert info.summary == "test package tiny-pkg" and info.license == "MIT"
    with pytest.raises(InvalidInput, match="not other 1.2.0"):
        read_wheel(wheel.name, wheel.read_bytes(), Requirement("other", "1.2.0"))
    other = make_wheel(tmp_path / "..", "other-pkg", "9.9")
    with pytest.raises(InvalidInput, match="METADATA names"):
        read_wheel(wheel.name, other.read_bytes())  # the bytes of another release under this name
    with pytest.raises(InvalidInput, match="not a readable wheel"):
        read_wheel(wheel.name, b"not a zip")
    for bad in ("../tiny_pkg-1.2.0-py3-none-any.whl", "tiny.tar.gz", ".hidden-1.0-py3-none-any.whl"):
        with pytest.raises(InvalidInput):
            read_wheel(bad, wheel.read_bytes())


def test_downloads_are_binary_only_without_dependencies_for_the_workspace_python():
    settings = DownloadSettings(index_url="https://index.example/simple", ca_bundle="/etc/ca.pem",
                                python_version="3.11", python="/usr/bin/python3")
    args = settings.pip_args(Requirement("six", "1.16.0"), __import__("pathlib").Path("/tmp/x"))
    assert args[:4] == ["/usr/bin/python3", "-m", "pip", "--isolated"]  # the host's pip config stays out
    for flag in ("--only-binary=:all:", "--no-deps"):
        assert flag in args
    assert args[args.index("--index-url") + 1] == "https://index.example/simple"
    assert args[args.index("--cert") + 1] == "/etc/ca.pem" and args[args.index("--abi") + 1] == "cp311"
    assert args[-1] == "six==1.16.0"
    assert "--cert" not in DownloadSettings().pip_args(Requirement("six", "1.16.0"), __import__("pathlib").Path("/t"))
    platforms = workspace_platforms()
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in platforms
    assert not any(p.startswith("linux_") for p in platforms)


TOKEN = "0123456789abcdef0123456789abcdef"


def test_pip_in_a_workspace_uses_only_its_permits_index():
    env = make_pip_env("http://172.18.0.1:8110/", TOKEN)
    assert env["PIP_INDEX_URL"] == f"http://172.18.0.1:8110/{TOKEN}/simple/"
    assert env["PIP_TRUSTED_HOST"] == "172.18.0.1:8110" and env["PIP_PREFIX"] == "/home/jovyan/work/.local"
    assert "PIP_NO_INDEX" not in env and "PIP_EXTRA_INDEX_URL" not in env
    assert make_pip_env("", None)["PIP_NO_INDEX"] == "1"  # no mirror: fail at once, never search the network
    assert "PIP_TRUSTED_HOST" not in make_pip_env("https://mirror.example/", TOKEN)
    for url, token in (("ftp://x/", TOKEN), ("http://x/?a=1", TOKEN), ("http://x/", "../other"), ("http://x/", None)):
        with pytest.raises(InvalidInput):
            make_pip_env(url, token)


def _permit(pid="P-1") -> Permit:
    return Permit(id=pid, title="t", purpose="scientific_research", organisation="o", principal_investigator="alice",
                  members=(Member("alice", "researcher"),), dataset="d", tables={"person": ("person_id",)},
                  valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1), status="active")


def test_the_spec_mounts_the_permits_own_imports_and_gives_its_index():
    spec = make_workspace_spec(_permit(), "alice", "P-1/3", SpawnSettings(mirror_url="http://10.0.0.1:8110/"),
                               today=date(2026, 6, 1), mirror_token=TOKEN)
    assert spec.imports_relpath == "P-1" and spec.imports_target == "/imports"
    assert spec.env["PIP_INDEX_URL"].endswith(f"/{TOKEN}/simple/") and spec.env["SPE_IMPORTS_DIR"] == "/imports"
    with pytest.raises(Forbidden):
        make_workspace_spec(_permit(".."), "alice", "../3", SpawnSettings(), today=date(2026, 6, 1))


def test_the_firewall_opens_the_mirror_port_and_nothing_else_new():
    from hub.hubapp.host import firewall_plan
    from hub.hubapp.options import settings_from

    spe = settings_from({"SPE_HUB_PORT": "9081", "SPE_EGRESS_PORT": "9100", "SPE_MIRROR_PORT": "9110"})
    assert firewall_plan(spe, "172.18.0.1").allowed_tcp_ports == (9081, 9100, 9110)
