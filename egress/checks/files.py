"""File policy for egress outputs: which files may be submitted and how they are parsed.

`load_output(name, data, policy) -> LoadedOutput` takes the raw bytes of one submitted file and
either returns it parsed (a pyarrow Table for csv/parquet/json, the text for txt/md, the image
for png/svg) or raises `FileRefused` with a reason the author can act on. `check_file_set(names)`
checks that every figure comes with its underlying table.

Rules (hostile input, fail closed):
- name: a plain file name, no directory part, no `..`, no leading dot, no control characters,
  at most 128 characters; the extension decides the type: csv, parquet, json, png, svg, txt, md;
- size: at most `policy.max_file_bytes`;
- compressed payloads (zip, gzip, bzip2, xz, zstd, 7z, rar) are refused whatever the name
  says (zip bombs; a reviewer must see what leaves); Parquet's own column compression is
  bounded by the uncompressed size recorded in its footer (`max_decoded_bytes`) and its rows;
- CSV/JSON must be UTF-8; malformed CSV (ragged rows, bad quoting), Parquet or JSON is refused;
- SVG must not contain scripts, event handlers, external references or embedded HTML;
- PNG must have a PNG signature.
Content rules on the parsed table (person keys, formula injection, rows vs persons) are in
`egress.checks.content` and reported by `check_table`.

Pure: works on bytes, never opens a path.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from egress.checks.policy import make_policy
from egress.exceptions import FileRefused, first_line

TABLE_TYPES = ("csv", "parquet", "json")
FIGURE_TYPES = ("png", "svg")
TEXT_TYPES = ("txt", "md")
ALLOWED_TYPES = TABLE_TYPES + FIGURE_TYPES + TEXT_TYPES
MAX_TABLE_ROWS = 1_000_000
MAX_COLUMNS = 1_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()+-]{0,127}$")
_COMPRESSED_MAGIC = {
    b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!": "rar",
    b"\x04\x22\x4d\x18": "lz4",
}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SVG_FORBIDDEN = re.compile(rb"<script|<foreignobject|\son[a-z]+\s*=|javascript:|<iframe|<embed|<object|"
                            rb"(?:xlink:)?href\s*=\s*[\"'](?!#)|<!entity|<!doctype", re.I)


@dataclass(frozen=True)
class LoadedOutput:
    name: str
    file_type: str            # extension: csv, parquet, json, png, svg, txt, md
    size_bytes: int
    table: pa.Table | None = None
    text: str | None = None

    @property
    def is_table(self) -> bool:
        return self.table is not None

    @property
    def is_figure(self) -> bool:
        return self.file_type in FIGURE_TYPES


def check_file_name(name: Any) -> str:
    """The file type (extension) of a safe file name; FileRefused otherwise."""
    if not isinstance(name, str) or not name:
        raise FileRefused("a file name is required", field="name")
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise FileRefused(f"{name!r}: a file name must not contain a directory part or '..'", field="name")
    if not _NAME.match(name):
        raise FileRefused(f"{name!r}: use letters, digits, '.', '_', '-', spaces, at most 128 characters, "
                          "not starting with a dot", field="name")
    file_type = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if file_type not in ALLOWED_TYPES:
        raise FileRefused(f"{name!r}: file type {file_type or '(none)'!r} is not allowed; "
                          f"allowed: {', '.join(ALLOWED_TYPES)}", field=name)
    return file_type


def load_output(name: str, data: bytes, policy: Any = None, *,
                max_rows: int = MAX_TABLE_ROWS, max_decoded_bytes: int | None = None) -> LoadedOutput:
    """Parse one submitted file under the file policy (module docstring); FileRefused otherwise."""
    policy = make_policy(policy)
    file_type = check_file_name(name)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FileRefused("file content must be bytes", field=name)
    data = bytes(data)
    if len(data) > policy.max_file_bytes:
        raise FileRefused(f"{len(data)} bytes is larger than the limit of {policy.max_file_bytes} bytes",
                          field=name)
    if not data:
        raise FileRefused("the file is empty", field=name)
    for magic, kind in _COMPRESSED_MAGIC.items():
        if data.startswith(magic):
            raise FileRefused(f"compressed ({kind}) content is not accepted; submit the plain file", field=name)
    max_decoded_bytes = max_decoded_bytes or 8 * policy.max_file_bytes
    if file_type == "csv":
        table = _read_csv(name, data, max_rows)
    elif file_type == "parquet":
        table = _read_parquet(name, data, max_rows, max_decoded_bytes)
    elif file_type == "json":
        table = _read_json(name, data, max_rows)
    elif file_type == "png":
        if not data.startswith(_PNG_MAGIC):
            raise FileRefused("not a PNG image (bad signature)", field=name)
        return LoadedOutput(name, file_type, len(data))
    elif file_type == "svg":
        text = _utf8(name, data)
        if "<svg" not in text[:4096].lower():
            raise FileRefused("not an SVG image", field=name)
        match = _SVG_FORBIDDEN.search(data)
        if match:
            raise FileRefused(f"SVG contains active or external content ({match.group(0)[:20]!r})", field=name)
        return LoadedOutput(name, file_type, len(data), text=text)
    else:
        return LoadedOutput(name, file_type, len(data), text=_utf8(name, data))
    if table.num_columns > MAX_COLUMNS:
        raise FileRefused(f"{table.num_columns} columns is more than the limit of {MAX_COLUMNS}", field=name)
    return LoadedOutput(name, file_type, len(data), table=table)


def check_file_set(names: list[str]) -> None:
    """Every figure (png/svg) must come with its underlying table (same stem, csv/parquet/json)."""
    stems = {n.rsplit(".", 1)[0] for n in names if check_file_name(n) in TABLE_TYPES}
    for name in names:
        if check_file_name(name) in FIGURE_TYPES and name.rsplit(".", 1)[0] not in stems:
            raise FileRefused("a figure must be submitted with its underlying table "
                              f"(e.g. {name.rsplit('.', 1)[0]}.csv)", field=name)


def _utf8(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileRefused(f"not UTF-8 text (byte {err.start})", field=name) from None


def _read_csv(name: str, data: bytes, max_rows: int) -> pa.Table:
    _utf8(name, data)
    try:
        table = pacsv.read_csv(io.BytesIO(data),
                               read_options=pacsv.ReadOptions(block_size=1 << 20),
                               parse_options=pacsv.ParseOptions(newlines_in_values=False),
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise FileRefused(f"malformed CSV: {first_line(err, 200)}", field=name) from None
    return _bounded_rows(name, table, max_rows)


def _read_parquet(name: str, data: bytes, max_rows: int, max_decoded_bytes: int) -> pa.Table:
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        meta = parquet.metadata
        if meta.num_rows > max_rows:
            raise FileRefused(f"{meta.num_rows} rows is more than the limit of {max_rows}", field=name)
        schema = parquet.schema_arrow
        for column in schema:
            if pa.types.is_nested(column.type):
                raise FileRefused(f"column {column.name!r}: table cells must be scalars", field=name)
        footer_bytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        if footer_bytes > max_decoded_bytes:
            raise _too_big(name, footer_bytes, max_decoded_bytes)
        # Text is read dictionary-encoded (compact) and its decoded size computed from the
        # dictionary before decoding: a few repeated long strings can decode to gigabytes.
        text_columns = [c.name for c in schema if pa.types.is_string(c.type) or pa.types.is_binary(c.type)
                        or pa.types.is_large_string(c.type) or pa.types.is_large_binary(c.type)]
        table = pq.read_table(io.BytesIO(data), read_dictionary=text_columns)
        decoded = 0
        for column in table.columns:
            if pa.types.is_dictionary(column.type):
                for chunk in column.chunks:
                    lengths = pc.binary_length(chunk.dictionary)
                    decoded += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
            else:
                decoded += column.nbytes
            if decoded > max_decoded_bytes:
                raise _too_big(name, decoded, max_decoded_bytes)
        columns = [pa.chunked_array([c.dictionary_decode() for c in column.chunks], type=column.type.value_type)
                   if pa.types.is_dictionary(column.type) else column for column in table.columns]
        return pa.Table.from_arrays(columns, names=table.column_names)
    except FileRefused:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:
        raise FileRefused(f"malformed Parquet: {first_line(err, 200)}", field=name) from None


def _too_big(name: str, decoded: int, limit: int) -> FileRefused:
    return FileRefused(f"decodes to more than {limit} bytes ({decoded} so far): highly compressed payload",
                       field=name)


def _read_json(name: str, data: bytes, max_rows: int) -> pa.Table:
    """JSON tables: a list of flat objects, or {"columns": [...], "data": [[...], ...]}."""
    try:
        document = json.loads(_utf8(name, data))
    except (json.JSONDecodeError, RecursionError) as err:
        raise FileRefused(f"malformed JSON: {first_line(err, 200)}", field=name) from None
    if isinstance(document, dict) and set(document) >= {"columns", "data"}:
        columns, rows = document["columns"], document["data"]
        if not (isinstance(columns, list) and isinstance(rows, list)
                and all(isinstance(r, list) and len(r) == len(columns) for r in rows)):
            raise FileRefused('"columns"/"data" JSON must hold a list of names and equal-length rows', field=name)
        records = [dict(zip(columns, r)) for r in rows]
    elif isinstance(document, list) and all(isinstance(r, dict) for r in document):
        records = document
    else:
        raise FileRefused('a JSON table must be a list of objects or {"columns": [...], "data": [[...]]}',
                          field=name)
    if len(records) > max_rows:
        raise FileRefused(f"{len(records)} rows is more than the limit of {max_rows}", field=name)
    for record in records:
        for key, value in record.items():
            if isinstance(value, (dict, list)):
                raise FileRefused(f"JSON table cells must be scalars (column {key!r})", field=name)
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise FileRefused(f"JSON table has inconsistent column types: {first_line(err, 200)}", field=name) from None


def _bounded_rows(name: str, table: pa.Table, max_rows: int) -> pa.Table:
    if table.num_rows > max_rows:
        raise FileRefused(f"{table.num_rows} rows is more than the limit of {max_rows}", field=name)
    return table
