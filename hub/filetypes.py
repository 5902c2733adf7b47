"""What a file is, judged by its bytes and never by its name.

`detect(data) -> FileType` reads the leading (and, for Parquet, trailing) bytes of one file and
names its format: columnar and database files (Parquet, Arrow/Feather, DuckDB, SQLite, HDF5,
SAS, Stata, SPSS, R), serialised Python objects (pickle, NumPy), archives and compressed
streams (zip and what is built on it: wheels, Office documents; gzip, bzip2, xz, zstd, 7z, rar,
tar), documents and images (PDF, PNG, JPEG, GIF, TIFF), executables (ELF, PE, Mach-O, shebang
scripts), and text (a Jupyter notebook, JSON, CSV/TSV, plain UTF-8 text). Whatever else is
`binary`. A name can lie (`person.csv` that is Parquet inside); `check_name_matches(name, ft)`
refuses a known extension whose bytes say otherwise.

Each type carries a `family` (text, notebook, data, archive, document, image, executable,
binary) for rules that treat families alike, and `warning` for what a reviewer should know
before letting it through (a pickle runs code when loaded; an archive hides its content).

Pure: bytes in, a value out; no I/O. Standard library only (every hub module and egress may use it).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass

from hub.exceptions import InvalidInput

TEXT_SAMPLE_BYTES = 64 * 1024  # how much of a text file is decoded to judge it


@dataclass(frozen=True)
class FileType:
    kind: str  # short machine name: parquet, sqlite, zip, wheel, csv, text, binary, ...
    label: str  # what a person reads: "Apache Parquet (columnar data)"
    family: str  # text | notebook | data | archive | document | image | executable | binary
    warning: str = ""


def _t(kind: str, label: str, family: str, warning: str = "") -> FileType:
    return FileType(kind, label, family, warning)


RUNS_CODE = "runs code when it is opened or loaded: only from a trusted source"
HIDES_CONTENT = "an archive: its members are not shown here; they may hold anything"

# (offset, magic bytes, type): checked in order, the first match wins.
MAGIC: tuple[tuple[int, bytes, FileType], ...] = (
    (0, b"PAR1", _t("parquet", "Apache Parquet (columnar data)", "data")),
    (0, b"ARROW1", _t("arrow", "Apache Arrow IPC / Feather v2 (columnar data)", "data")),
    (0, b"FEA1", _t("feather", "Feather v1 (columnar data)", "data")),
    (8, b"DUCK", _t("duckdb", "DuckDB database", "data")),
    (0, b"SQLite format 3\x00", _t("sqlite", "SQLite database", "data")),
    (0, b"\x89HDF\r\n\x1a\n", _t("hdf5", "HDF5 data", "data")),
    (0, b"\x93NUMPY", _t("numpy", "NumPy array (.npy)", "data")),
    (0, b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc2\xea\x81\x60",
     _t("sas7bdat", "SAS data set (sas7bdat)", "data")),
    (0, b"<stata_dta>", _t("stata", "Stata data (.dta)", "data")),
    (0, b"$FL2", _t("spss", "SPSS data (.sav)", "data")),
    (0, b"$FL3", _t("spss", "SPSS data (.zsav)", "data")),
    (0, b"RDX2\n", _t("rdata", "R workspace (.RData)", "data", RUNS_CODE)),
    (0, b"RDX3\n", _t("rdata", "R workspace (.RData)", "data", RUNS_CODE)),
    (0, b"X\n\x00\x00\x00", _t("rds", "R serialised object (.rds)", "data", RUNS_CODE)),
    (0, b"PK\x03\x04", _t("zip", "zip archive", "archive", HIDES_CONTENT)),
    (0, b"PK\x05\x06", _t("zip", "zip archive (empty)", "archive", HIDES_CONTENT)),
    (0, b"\x1f\x8b", _t("gzip", "gzip-compressed data", "archive", HIDES_CONTENT)),
    (0, b"BZh", _t("bzip2", "bzip2-compressed data", "archive", HIDES_CONTENT)),
    (0, b"\xfd7zXZ\x00", _t("xz", "xz-compressed data", "archive", HIDES_CONTENT)),
    (0, b"\x28\xb5\x2f\xfd", _t("zstd", "Zstandard-compressed data", "archive", HIDES_CONTENT)),
    (0, b"\x04\x22\x4d\x18", _t("lz4", "LZ4-compressed data", "archive", HIDES_CONTENT)),
    (0, b"7z\xbc\xaf\x27\x1c", _t("7z", "7-Zip archive", "archive", HIDES_CONTENT)),
    (0, b"Rar!\x1a\x07", _t("rar", "RAR archive", "archive", HIDES_CONTENT)),
    (257, b"ustar", _t("tar", "tar archive", "archive", HIDES_CONTENT)),
    (0, b"%PDF-", _t("pdf", "PDF document", "document")),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", _t("ole2", "legacy Office document (OLE2)", "document",
                                                  "may carry macros")),
    (0, b"{\\rtf", _t("rtf", "RTF document", "document")),
    (0, b"\x89PNG\r\n\x1a\n", _t("png", "PNG image", "image")),
    (0, b"\xff\xd8\xff", _t("jpeg", "JPEG image", "image")),
    (0, b"GIF87a", _t("gif", "GIF image", "image")),
    (0, b"GIF89a", _t("gif", "GIF image", "image")),
    (0, b"II*\x00", _t("tiff", "TIFF image", "image")),
    (0, b"MM\x00*", _t("tiff", "TIFF image", "image")),
    (0, b"\x7fELF", _t("elf", "ELF executable or shared library", "executable", RUNS_CODE)),
    (0, b"MZ", _t("pe", "Windows executable (PE)", "executable", RUNS_CODE)),
    (0, b"\xcf\xfa\xed\xfe", _t("macho", "Mach-O executable", "executable", RUNS_CODE)),
    (0, b"\xca\xfe\xba\xbe", _t("macho", "Mach-O universal binary or Java class", "executable", RUNS_CODE)),
    (0, b"\x00asm", _t("wasm", "WebAssembly module", "executable", RUNS_CODE)),
)

PICKLE = _t("pickle", "Python pickle", "data", RUNS_CODE)
WHEEL = _t("wheel", "Python wheel (package)", "archive", RUNS_CODE)
JAR = _t("jar", "Java archive", "archive", RUNS_CODE)
XLSX = _t("xlsx", "Excel workbook (xlsx)", "document")
DOCX = _t("docx", "Word document (docx)", "document")
PPTX = _t("pptx", "PowerPoint presentation (pptx)", "document")
ODF = _t("odf", "OpenDocument file", "document")
NOTEBOOK = _t("notebook", "Jupyter notebook", "notebook", "its outputs are shown as stored; code runs only when executed")
JSON_T = _t("json", "JSON text", "text")
CSV_T = _t("csv", "comma-separated values (text)", "text")
TSV_T = _t("tsv", "tab-separated values (text)", "text")
SCRIPT = _t("script", "script (text, starts with #!)", "executable", RUNS_CODE)
TEXT = _t("text", "UTF-8 text", "text")
BINARY = _t("binary", "unrecognised binary data", "binary", "its content cannot be shown")
EMPTY = _t("empty", "empty file", "binary")

# A file name's extension -> the kinds its bytes may have. Extensions absent here are not judged.
EXTENSION_KINDS: dict[str, frozenset] = {
    **{ext: frozenset({"csv", "tsv", "text"}) for ext in ("csv", "tsv", "tab")},
    **{ext: frozenset({"text", "csv", "tsv", "json", "script"}) for ext in (
        "txt", "md", "rst", "py", "r", "sql", "sh", "yaml", "yml", "toml", "ini", "cfg", "do", "sas", "log")},
    "json": frozenset({"json"}),
    "ipynb": frozenset({"notebook"}),
    "parquet": frozenset({"parquet"}),
    "arrow": frozenset({"arrow"}),
    "feather": frozenset({"arrow", "feather"}),
    "duckdb": frozenset({"duckdb"}),
    **{ext: frozenset({"sqlite"}) for ext in ("sqlite", "sqlite3", "db")},
    "pdf": frozenset({"pdf"}),
    "png": frozenset({"png"}),
    **{ext: frozenset({"jpeg"}) for ext in ("jpg", "jpeg")},
    "gif": frozenset({"gif"}),
    "zip": frozenset({"zip", "wheel", "jar", "xlsx", "docx", "pptx", "odf"}),
    "whl": frozenset({"wheel"}),
    "xlsx": frozenset({"xlsx"}),
    "docx": frozenset({"docx"}),
    "gz": frozenset({"gzip"}),
    "tar": frozenset({"tar"}),
    "npy": frozenset({"numpy"}),
    **{ext: frozenset({"pickle"}) for ext in ("pkl", "pickle")},
    "dta": frozenset({"stata"}),
    "sav": frozenset({"spss"}),
    "sas7bdat": frozenset({"sas7bdat"}),
    "rds": frozenset({"rds", "gzip"}),  # saveRDS compresses by default
    **{ext: frozenset({"rdata", "gzip"}) for ext in ("rdata", "rda")},
}


def detect(data: bytes) -> FileType:
    """The type of `data` by its content."""
    if not data:
        return EMPTY
    for offset, magic, ftype in MAGIC:
        if data[offset:offset + len(magic)] == magic:
            if not _confirmed(ftype.kind, data):
                continue
            return _refine_zip(data) if ftype.kind == "zip" else ftype
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return PICKLE
    return _text_type(data)


def _confirmed(kind: str, data: bytes) -> bool:
    """Short magics that text could start with are confirmed by a second mark."""
    if kind == "parquet":
        return data[-4:] == b"PAR1"  # a Parquet file also ends with its magic
    if kind == "pe":  # "MZ", then the offset of "PE\0\0" at 0x3c
        offset = int.from_bytes(data[0x3C:0x40], "little") if len(data) >= 0x40 else -1
        return 0 <= offset <= len(data) - 4 and data[offset:offset + 4] == b"PE\x00\x00"
    if kind == "bzip2":
        return data[3:4] in tuple(bytes([c]) for c in b"123456789")
    return True


def _refine_zip(data: bytes) -> FileType:
    """Wheels, Java archives and Office documents are zip files: tell them apart by their members."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return _t("zip", "zip archive (damaged)", "archive", HIDES_CONTENT)
    if any(n.endswith(".dist-info/WHEEL") and n.count("/") == 1 for n in names):
        return WHEEL
    if "META-INF/MANIFEST.MF" in names:
        return JAR
    if "[Content_Types].xml" in names:
        for prefix, ftype in (("xl/", XLSX), ("word/", DOCX), ("ppt/", PPTX)):
            if any(n.startswith(prefix) for n in names):
                return ftype
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return ODF
    return _t("zip", "zip archive", "archive", HIDES_CONTENT)


def _text_type(data: bytes) -> FileType:
    sample = data[:TEXT_SAMPLE_BYTES]
    if b"\x00" in sample:
        return BINARY
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(data) <= TEXT_SAMPLE_BYTES or err.start < len(sample) - 4:
            return BINARY  # not UTF-8 (a cut multi-byte character at the sample's end is fine)
        text = sample[:err.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return BINARY
    if text.startswith("#!"):
        return SCRIPT
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "[") and len(data) <= TEXT_SAMPLE_BYTES:
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            doc = None
        if isinstance(doc, dict) and "nbformat" in doc and "cells" in doc:
            return NOTEBOOK
        if doc is not None:
            return JSON_T
    elif stripped[:1] == "{" and '"nbformat"' in text and '"cells"' in text:
        return NOTEBOOK  # a large notebook: judged by its keys, not parsed whole
    return _delimited(text) or TEXT


def _delimited(text: str) -> FileType | None:
    """CSV or TSV: at least two lines with the same number (≥ 2) of fields."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        return None
    if len(text) >= TEXT_SAMPLE_BYTES:
        lines = lines[:-1]  # the sample may cut the last line
    for delimiter, ftype in ((",", CSV_T), ("\t", TSV_T), (";", CSV_T)):
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 2:
            return ftype
    return None


def extension(name: str) -> str:
    """The lower-case extension of a file name ('' without one)."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.lstrip(".") else ""


def check_name_matches(name: str, ftype: FileType, field: str = "name") -> None:
    """Refuse a known extension whose bytes are another format (`person.csv` that is Parquet)."""
    ext = extension(name)
    allowed = EXTENSION_KINDS.get(ext)
    if allowed is not None and ftype.kind not in allowed and ftype.kind != "empty":
        raise InvalidInput(f"{name!r} is named .{ext} but its bytes are {ftype.label}; "
                           "give the file the name of what it is", field=field)
