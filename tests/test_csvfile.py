"""CSV files TAs open in Excel: encodings, formula cells, round trips."""

import codecs

import pytest

from grader.errors import UsageError
from grader.report.csvfile import neutralise, read_csv, restore, write_csv

ROWS = [["student", "points", "comment"], ["=1+2", "-1.5", "+82 10 1234 5678"], ["@me", "1e3", "\t탭"],
        ["\rcr", "-", "'quoted already"], ["김민수", "+3", "-학습률"]]


def test_formula_cells_get_a_quote_and_numbers_stay_numbers():
    assert [neutralise(c) for c in ("=1+2", "+82 10", "-학습률", "@me", "\tx", "\rx", "-", "+")] == \
        ["'=1+2", "'+82 10", "'-학습률", "'@me", "'\tx", "'\rx", "'-", "'+"]
    assert [neutralise(c) for c in ("-1.5", "+3", "1e3", "-2e-3", ".5", "김민수", "'x", "")] == \
        ["-1.5", "+3", "1e3", "-2e-3", ".5", "김민수", "'x", ""]
    assert all(restore(neutralise(c)) == c for row in ROWS for c in row)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp949", "euc-kr"])
def test_every_encoding_excel_saves_round_trips(tmp_path, encoding):
    path = tmp_path / "grades.csv"
    write_csv(path, ROWS)
    assert path.read_bytes().startswith(codecs.BOM_UTF8)
    assert read_csv(path) == ROWS
    path.write_bytes(path.read_bytes().decode("utf-8-sig").encode(encoding))  # as Excel saves it
    assert read_csv(path) == ROWS


def test_other_encodings_are_refused_with_the_file_and_the_fix(tmp_path):
    path = tmp_path / "grades.csv"
    path.write_bytes("étudiant,note\nZoë,3\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"grades.csv is neither UTF-8 nor CP949/EUC-KR text; in Excel use File"):
        read_csv(path)
    path.write_bytes(b"PK\x03\x04\x00\x00")  # an .xlsx renamed .csv
    with pytest.raises(UsageError, match="not a CSV text file"):
        read_csv(path)
