"""Every CSV a TA opens or edits, read and written in one place.

Written as UTF-8 with a byte-order mark, which Excel (Korean Windows included) opens
correctly. Read as UTF-8 with or without the mark, or as CP949 (which contains EUC-KR),
the encoding Korean Excel saves in; anything else is refused with one line saying how to
fix it, never a raw decoding error.

Cells are neutralised as OWASP recommends against formula injection: a cell starting with
`=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet shows
it as text instead of running it. Plain numbers (`-1.5`, `+3`) are left as they are, so
scores stay numbers. Reading removes that `'` again, so a file round-trips unchanged.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

from grader.errors import UsageError
from grader.fsutil import write_bytes_atomic

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
SAVE_AS_HINT = "in Excel use File > Save As > 'CSV UTF-8 (Comma delimited)' (or 'CSV' on Korean Windows)"


def neutralise(cell: str) -> str:
    """The cell as a spreadsheet shows it as text; plain numbers unchanged."""
    if cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """Undo `neutralise`: what was written before the leading `'`."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def csv_text(rows: list[list[str]]) -> str:
    """Rows as CSV text with every cell neutralised (no byte-order mark: see `write_csv`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralise(str(cell)) for cell in row])
    return buffer.getvalue()


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Write atomically as UTF-8 with a byte-order mark."""
    write_bytes_atomic(path, codecs.BOM_UTF8 + csv_text(rows).encode("utf-8"))


def decode_csv(data: bytes, path: Path) -> str:
    """The text of a CSV file in UTF-8 (with or without BOM) or CP949/EUC-KR."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\0" in data:  # UTF-16 ("Unicode text") or a binary file such as .xlsx
        raise UsageError(f"{path} is not a CSV text file (UTF-16 or binary); {SAVE_AS_HINT}")
    for encoding in ("utf-8", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UsageError(f"{path} is neither UTF-8 nor CP949/EUC-KR text; {SAVE_AS_HINT}")


def read_csv(path: Path) -> list[list[str]]:
    """Every row of the file, cells restored (see `restore`); a file that cannot be read is a `UsageError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        rows = list(csv.reader(io.StringIO(decode_csv(data, path), newline="")))
    except csv.Error as exc:
        raise UsageError(f"{path} is not valid CSV ({exc}); {SAVE_AS_HINT}") from None
    return [[restore(cell) for cell in row] for row in rows]


def read_csv_dicts(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and each later row as a dict (missing cells empty; blank lines skipped)."""
    rows = read_csv(path)
    if not rows:
        return [], []
    header = [name.strip() for name in rows[0]]
    records = [dict(zip(header, row + [""] * (len(header) - len(row)))) for row in rows[1:] if any(row)]
    return header, records
