"""File policy (issue 4 "Bad input"): each bad file is refused with a clear reason."""

import gzip
import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egress.checks import check_table
from egress.checks.files import check_file_set, load_output
from egress.exceptions import FileRefused
from hub.exceptions import InvalidInput


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue()


def zip_bytes() -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.csv", "0" * 10_000_000)
    return sink.getvalue()


def test_good_files_are_parsed():
    csv = load_output("counts.csv", b"sex,n\nF,12\nM,\n")
    assert csv.table.column("n").to_pylist() == [12, None]  # empty cell = suppressed
    pq_out = load_output("counts.parquet", parquet_bytes(pa.table({"sex": ["F"], "n": [12]})))
    assert pq_out.table.num_rows == 1
    js = load_output("counts.json", json.dumps([{"sex": "F", "n": 12}]).encode())
    assert js.table.column_names == ["sex", "n"]
    js2 = load_output("t.json", json.dumps({"columns": ["a", "n"], "data": [["x", 1]]}).encode())
    assert js2.table.num_rows == 1
    assert load_output("notes.md", "# Résumé".encode()).text == "# Résumé"
    assert load_output("plot.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20).is_figure
    assert load_output("plot.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>').is_figure


@pytest.mark.parametrize("name, data, reason", [
    ("../etc/passwd.csv", b"a\n1\n", "directory part"),
    ("sub/dir.csv", b"a\n1\n", "directory part"),
    (".hidden.csv", b"a\n1\n", "not starting with a dot"),
    ("report.xlsx", b"a", "not allowed"),
    ("script.py", b"print(1)", "not allowed"),
    ("noext", b"a", "not allowed"),
    ("ragged.csv", b"a,b\n1,2\n3\n", "malformed CSV"),
    ("binary.csv", b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    ("broken.parquet", b"PAR1 this is not parquet", "malformed Parquet"),
    ("broken.json", b"{not json", "malformed JSON"),
    ("nested.json", b'[{"a": {"b": 1}}]', "scalars"),
    ("scalar.json", b'42', "list of objects"),
    ("bomb.csv", gzip.compress(b"0" * 10_000_000), r"compressed \(gzip\)"),
    ("bomb.parquet", zip_bytes(), r"compressed \(zip\)"),
    ("fake.png", b"GIF89a....", "PNG"),
    ("evil.svg", b'<svg><script>alert(1)</script></svg>', "active or external"),
    ("track.svg", b'<svg><image href="http://evil/x.png"/></svg>', "active or external"),
    ("empty.csv", b"", "empty"),
])
def test_bad_files_are_refused_with_a_reason(name, data, reason):
    with pytest.raises(FileRefused, match=reason) as caught:
        load_output(name, data)
    assert isinstance(caught.value, InvalidInput)  # → HTTP 400 / exit 2 through hub.exceptions


def test_size_limit_comes_from_the_policy():
    data = b"a\n" + b"1\n" * 600
    with pytest.raises(FileRefused, match="larger than the limit of 1000 bytes"):
        load_output("big.csv", data, {"max_file_bytes": 1000})
    assert load_output("big.csv", data, {"max_file_bytes": 2000}).table.num_rows == 600


def test_parquet_that_decodes_far_beyond_its_size_is_refused():
    table = pa.table({"x": ["a" * 1000] * 20_000})  # 20 MB of text compressing to a few KB
    data = parquet_bytes(table, compression="zstd")
    assert len(data) < 1_000_000
    with pytest.raises(FileRefused, match="highly compressed"):
        load_output("zeros.parquet", data, {"max_file_bytes": 1_000_000})


def test_row_limit():
    with pytest.raises(FileRefused, match="rows is more than the limit"):
        load_output("many.csv", b"a\n" + b"1\n" * 101, max_rows=100)


def test_formula_injection_and_person_keys_in_a_csv_are_flagged_by_the_checks():
    out = load_output("t.csv", b"label,n\n=cmd|' /C calc'!A0,50\n-3.5,60\n")
    assert "formula_injection" in check_table(out.table, None, kind="frequency").table_rules()
    out = load_output("t.csv", b"person_id,n\nab12,50\ncd34,60\n")
    assert "person_key_column" in check_table(out.table, None, kind="frequency").table_rules()


def test_a_figure_needs_its_underlying_table():
    check_file_set(["plot.png", "plot.csv", "notes.md"])
    with pytest.raises(FileRefused, match="underlying table"):
        check_file_set(["plot.png", "other.csv"])
