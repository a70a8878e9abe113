"""Result rendering (table / csv / json / markdown) and one-line error messages."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

import sqlrec
from sqlrec.frontend.formatting import error_message, format_float, render

COLUMNS = ["name", "score", "n", "rated_at", "ok"]
ROWS = [
    ("alice", 0.123456789, 1, datetime.datetime(2020, 1, 2, 3, 4, 5), True),
    ("bob", 1234567.891, None, None, False),
    ("carol", 2.5, 300, datetime.datetime(2021, 6, 7), None),
]


def test_table_is_aligned_box_with_numbers_right_aligned():
    text = render(COLUMNS, ROWS)
    lines = text.splitlines()
    assert lines[0].startswith("┌") and lines[-1].startswith("└")
    assert len({len(line) for line in lines}) == 1  # every line the same width
    header = lines[1]
    assert [h.strip() for h in header.strip("│").split("│")] == COLUMNS
    body = lines[3:-1]
    assert len(body) == 3
    # numbers right-aligned, text left-aligned, NULL shown
    cells = [[c for c in row.strip("│").split("│")] for row in body]
    assert cells[0][0].startswith(" alice ")
    assert cells[0][2].endswith(" 1 ") and cells[2][2].endswith(" 300 ")
    assert "NULL" in cells[1][2] and "NULL" in cells[1][3] and "NULL" in cells[2][4]
    assert "0.123457" in cells[0][1]  # six significant digits
    assert "1234567.9" in cells[1][1]
    assert "true" in cells[0][4] and "false" in cells[1][4]
    assert "2020-01-02 03:04:05" in cells[0][3]


def test_table_truncates_with_total_line():
    rows = [(i, f"item {i}") for i in range(100)]
    text = render(["id", "label"], rows, max_rows=10)
    assert "item 9" in text and "item 10" not in text
    assert text.splitlines()[-1] == "… 100 rows total (10 shown)"
    # a caller that fetched only a prefix passes the real total
    text = render(["id"], [(1,), (2,)], max_rows=2, total_rows=12345)
    assert text.splitlines()[-1] == "… 12,345 rows total (2 shown)"
    # max_rows None or 0: everything
    assert "item 99" in render(["id", "label"], rows, max_rows=None)
    assert "rows total" not in render(["id", "label"], rows, max_rows=0)


def test_empty_result_and_no_columns():
    text = render(["a", "b"], [])
    assert "a" in text and text.splitlines()[-1] == "(0 rows)"
    assert render([], []) == ""


def test_long_and_multiline_cells_are_clipped_to_one_line():
    text = render(["t"], [("x" * 200,), ("two\nlines",)])
    lines = text.splitlines()
    assert len(lines) == 6
    assert "…" in lines[3] and len(lines[3]) < 100
    assert "two\\nlines" in lines[4]


def test_wide_characters_keep_alignment():
    text = render(["title"], [("日本語",), ("abc",)])
    from wcwidth import wcswidth

    assert len({wcswidth(line) for line in text.splitlines()}) == 1


@pytest.mark.parametrize("value,expected", [
    (0.5, "0.5"), (3.0, "3.0"), (1 / 3, "0.333333"), (4 / 3, "1.33333"), (0.0, "0.0"),
    (1e-7, "1e-07"), (2.5e20, "2.5e+20"), (-0.000123456, "-0.000123456"), (float("nan"), "nan"),
])
def test_float_precision(value, expected):
    assert format_float(value) == expected


def test_csv():
    text = render(["a", "b", "c"], [(1, "x,y", None), (2.5, 'say "hi"', True)], "csv")
    assert text.splitlines() == ["a,b,c", '1,"x,y",', '2.5,"say ""hi""",true']
    # machine formats are never truncated
    assert len(render(["i"], [(i,) for i in range(100)], "csv", max_rows=5).splitlines()) == 101


def test_json_is_a_list_of_objects():
    rows = [(1, "x", None, datetime.date(2020, 1, 1), decimal.Decimal("1.5"), float("nan"))]
    data = json.loads(render(["a", "b", "c", "d", "e", "f"], rows, "json"))
    assert data == [{"a": 1, "b": "x", "c": None, "d": "2020-01-01", "e": 1.5, "f": None}]
    assert json.loads(render(["a"], [], "json")) == []
    assert len(json.loads(render(["i"], [(i,) for i in range(100)], "json", max_rows=5))) == 100


def test_markdown():
    text = render(["name", "n"], [("a|b", 1), ("c", None)], "markdown")
    assert text.splitlines() == ["| name | n |", "|---|---:|", "| a\\|b | 1 |", "| c | NULL |"]


def test_unknown_format():
    with pytest.raises(ValueError, match="csv"):
        render(["a"], [(1,)], "xml")


def test_error_message_is_one_line():
    con = sqlrec.connect()
    con.execute("CREATE TABLE t (alpha INTEGER, beta INTEGER)")
    with pytest.raises(sqlrec.Error) as info:
        con.execute("SELECT\n  alphx\nFROM t")
    line = error_message(info.value)
    assert "\n" not in line and line.startswith("Error: ")
    assert "alphx" in line and "alpha" in line  # what, and the valid choice
    assert "(line 2)" in line


def test_error_message_for_sqlrec_errors_and_bugs():
    assert error_message(sqlrec.errors.OptionError("bad option")) == "Error: bad option"
    internal = error_message(KeyError("boom"))
    assert internal.startswith("Error: internal error (KeyError") and "\n" not in internal
    assert internal.endswith("; run .traceback or use --debug for details")
    # each front-end names its own way to the traceback
    assert error_message(KeyError("boom"), hint="run %sqlrec --traceback for details") == \
        "Error: internal error (KeyError: 'boom'); run %sqlrec --traceback for details"
    assert error_message(KeyboardInterrupt()) == "Error: cancelled"


# --- fitting the terminal: duckbox elision, box, line ------------------------------------------

WIDE_COLUMNS = [f"metric_{i:02d}_at_10" for i in range(20)]
WIDE_ROWS = [tuple(round(0.1 * i + r, 4) for i in range(20)) for r in range(3)]


def test_table_wider_than_the_terminal_leaves_out_middle_columns_and_says_so():
    text = render(WIDE_COLUMNS, WIDE_ROWS, max_width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = [h.strip() for h in lines[1].strip("│").split("│")]
    # the first and last columns stay, the "…" column stands where the others were
    assert header[0] == "metric_00_at_10" and header[-1] == "metric_19_at_10" and "…" in header
    gap = header.index("…")
    shown = header[:gap] + header[gap + 1:]
    assert shown == WIDE_COLUMNS[:gap] + WIDE_COLUMNS[20 - (len(shown) - gap):]
    assert all(row.strip("│").split("│")[gap].strip() == "…" for row in lines[3:6])
    assert lines[-1] == f"… 20 columns total ({len(shown)} shown); .mode line shows them all"
    # no width, or box mode: every column, no note
    for text in (render(WIDE_COLUMNS, WIDE_ROWS), render(WIDE_COLUMNS, WIDE_ROWS, "box", max_width=80)):
        assert [h.strip() for h in text.splitlines()[1].strip("│").split("│")] == WIDE_COLUMNS
        assert "columns total" not in text
    # a wider terminal shows more columns; duckbox is the table's other name
    assert len(render(WIDE_COLUMNS, WIDE_ROWS, max_width=160).splitlines()[1].split("│")) > len(header) + 2
    assert render(WIDE_COLUMNS, WIDE_ROWS, "duckbox", max_width=80) == render(WIDE_COLUMNS, WIDE_ROWS, max_width=80)


def test_rows_and_columns_notes_together():
    rows = [tuple(range(20))] * 50
    lines = render(WIDE_COLUMNS, rows, max_rows=10, max_width=80).splitlines()
    assert lines[-2] == "… 50 rows total (10 shown)"
    assert lines[-1].startswith("… 20 columns total (")


def test_long_text_is_cut_before_columns_are_left_out():
    columns = ["id", "title", "genres"]
    rows = [(1, "A very long film title that goes on and on", "Adventure|Animation|Children|Comedy")]
    fits = render(columns, rows, max_width=200)
    assert "goes on and on" in fits  # room enough: nothing is cut
    text = render(columns, rows, max_width=60)
    assert "columns total" not in text and max(len(line) for line in text.splitlines()) <= 60
    cells = [c.strip() for c in text.splitlines()[3].strip("│").split("│")]
    assert cells[1] == "A very long film ti…" and cells[2].endswith("…") and len(cells[2]) == 20
    # one column wider than the terminal on its own is cut to the width
    text = render(["note"], [("x" * 200,)], max_width=30)
    assert max(len(line) for line in text.splitlines()) <= 30 and "columns total" not in text


def test_line_mode_prints_one_value_per_line():
    text = render(["user_id", "item", "score"], [(1, "Heat", 0.5), (2, None, 1.25)], "line")
    assert text == ("user_id = 1\n"
                    "   item = Heat\n"
                    "  score = 0.5\n"
                    "\n"
                    "user_id = 2\n"
                    "   item = NULL\n"
                    "  score = 1.25")
    assert render(["a"], [(i,) for i in range(5)], "line", max_rows=2).splitlines()[-1] == "… 5 rows total (2 shown)"
    assert render(["a"], [], "line") == "(0 rows)"
