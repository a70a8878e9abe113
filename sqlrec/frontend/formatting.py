"""Results as text: aligned tables (like the DuckDB shell), one line per value, CSV, JSON and Markdown.

Shared by the REPL, the command line and `sqlrec demo`. Also home of `error_message`, the one
readable line every front-end prints for an error.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import io
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

# What render() prints: the shell's .mode takes every one; `sqlrec -c --format` the first four.
MODES = ("table", "duckbox", "box", "line", "csv", "json", "markdown")
FORMATS = ("table", "csv", "json", "markdown")
# The formats printed for people: at most max_rows rows, with a count of the rest. CSV and JSON are
# for machines and always carry every row.
FOR_PEOPLE = ("table", "duckbox", "box", "line", "markdown")
NULL = "NULL"
MAX_CELL_WIDTH = 60  # table mode: longer values are cut with an ellipsis
# When a table is wider than the terminal, text cells are first cut to this many columns (DuckDB's
# shell does the same), then the middle columns give way to one "…" column.
NARROW_CELL_WIDTH = 20
ELIDED = "…"

# wcwidth's wcswidth, imported for the first text that is not printable ASCII (None: not yet,
# False: not installed): importing it costs about 15 ms, more than `sqlrec -c "SELECT 1"` spends
# on everything of its own. prompt_toolkit depends on wcwidth, so it is always there in practice.
_wcswidth: Any = None


def render(
    columns: list[str],
    rows: list[tuple],
    fmt: str = "table",
    max_rows: int | None = 40,
    total_rows: int | None = None,
    max_width: int | None = None,
) -> str:
    """Render a result as text in `fmt` (one of MODES).

    `rows` may be a prefix of the result, with `total_rows` the full count; in the formats for
    people (FOR_PEOPLE) at most `max_rows` rows are shown (None or 0: all), followed by a
    "… N rows total (M shown)" line. CSV and JSON are for machines and always show every
    row they are given.

    table (DuckDB's shell calls it duckbox) fits the table into `max_width` columns when given,
    as DuckDB's shell does: long text is cut, then middle columns are left out, in their place
    one "…" column, and a line says how many columns are shown. box is the same table with every
    column; line prints one "column = value" line per value, a blank line between rows.
    """
    fmt = (fmt or "table").lower()
    if fmt not in MODES:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(MODES)}")
    if fmt == "duckbox":
        fmt = "table"
    columns = [str(c) for c in columns]
    rows = list(rows)
    if not columns:
        return ""
    if fmt == "csv":
        return _csv(columns, rows)
    if fmt == "json":
        return _json(columns, rows)
    total = len(rows) if total_rows is None else max(total_rows, len(rows))
    shown = rows if not max_rows or len(rows) <= max_rows else rows[:max_rows]
    footer = ""
    if len(shown) < total:
        footer = f"… {total:,} rows total ({len(shown):,} shown)"
    elif total == 0:
        footer = "(0 rows)"
    if fmt == "markdown":
        body = _markdown(columns, shown)
    elif fmt == "line":
        body = _lines(columns, shown)
    else:
        body, kept = _table(columns, shown, max_width if fmt == "table" else None)
        if kept < len(columns):
            footer = "\n".join(filter(None, [
                footer, f"… {len(columns):,} columns total ({kept:,} shown); .mode line shows them all"]))
    return "\n".join(part for part in (body, footer) if part)


# --- cells -------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, decimal.Decimal)):
        return True
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf"


def format_float(value: float) -> str:
    """Six significant digits, no exponent for everyday magnitudes, trailing zeros dropped."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0.0"
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e15:
        decimals = max(1, 6 - int(math.floor(math.log10(magnitude))) - 1)
        text = f"{value:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0")
            if text.endswith("."):
                text += "0"
        return text
    return f"{value:.6g}"


def format_cell(value: Any) -> str:
    """A value as the table shows it: NULL, true/false, 6 significant digits for floats."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "".join(f"\\x{b:02X}" if b < 32 or b > 126 else chr(b) for b in bytes(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_nested(k)}: {_nested(v)}" for k, v in value.items()) + "}"
    return str(value)


def _nested(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else format_cell(value)


def _width(text: str) -> int:
    global _wcswidth
    if text.isascii() and text.isprintable():
        return len(text)  # one column per character: what wcswidth answers, without importing it
    if _wcswidth is None:
        try:
            from wcwidth import wcswidth as _wcswidth
        except ImportError:  # pragma: no cover
            _wcswidth = False
    if _wcswidth:
        w = _wcswidth(text)
        if w >= 0:
            return w
    return len(text)


def _clip(text: str, limit: int) -> str:
    text = text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ")
    if _width(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        w = max(_width(ch), 0)
        if used + w > limit - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


# --- formats ---------------------------------------------------------------------------------


def _table(columns: list[str], rows: Sequence[tuple], max_width: int | None = None) -> tuple[str, int]:
    """The box-drawn table and how many of the columns it shows (all unless `max_width` is too small)."""
    texts = [[format_cell(v) for v in row] for row in rows]
    numeric = [bool(rows) and all(row[i] is None or is_number(row[i]) for row in rows) and
               any(row[i] is not None for row in rows) for i in range(len(columns))]
    header, cells, widths = _clipped(columns, texts, MAX_CELL_WIDTH)
    if max_width and _total(widths) > max_width:
        header, cells, widths = _clipped(columns, texts, NARROW_CELL_WIDTH)
    kept = list(range(len(columns)))
    if max_width and _total(widths) > max_width:
        kept = _fitting(widths, max_width)
        if len(kept) == 1:  # one column alone is too wide: cut it to the width
            limit = max(max_width - 4 - (4 if len(columns) > 1 else 0), 1)
            header = [_clip(h, limit) for h in header]
            cells = [[_clip(c, limit) for c in row] for row in cells]
            widths = [min(w, limit) for w in widths]
    if len(kept) < len(columns):
        # the "…" column stands where the left-out columns were
        gap = next((i for i, (a, b) in enumerate(zip(kept, kept[1:])) if b != a + 1), len(kept) - 1)
        order: list[int | None] = [*kept[:gap + 1], None, *kept[gap + 1:]]
        header = [ELIDED if i is None else header[i] for i in order]
        cells = [[ELIDED if i is None else row[i] for i in order] for row in cells]
        numeric = [False if i is None else numeric[i] for i in order]
        widths = [1 if i is None else widths[i] for i in order]
    return _boxed(header, cells, widths, numeric), len(kept)


def _clipped(columns: list[str], texts: list[list[str]], limit: int) -> tuple[list[str], list[list[str]], list[int]]:
    header = [_clip(c, limit) for c in columns]
    cells = [[_clip(t, limit) for t in row] for row in texts]
    widths = [max([_width(header[i])] + [_width(r[i]) for r in cells]) for i in range(len(columns))]
    return header, cells, widths


def _total(widths: list[int]) -> int:
    """The printed width of a table with these column widths: a space either side and a border."""
    return sum(w + 3 for w in widths) + 1


def _fitting(widths: list[int], max_width: int) -> list[int]:
    """The columns that fit beside a "…" column, taken from both ends towards the middle (first,
    last, second, second to last ...) until the next one does not fit; the first always stays."""
    n = len(widths)
    ends = [i for pair in zip(range(n), range(n - 1, -1, -1)) for i in pair]
    order = list(dict.fromkeys(ends))[:n]
    room = max_width - 4  # the "…" column: one character, a space either side, a border
    kept: list[int] = []
    used = 1
    for i in order:
        if kept and used + widths[i] + 3 > room:
            break
        kept.append(i)
        used += widths[i] + 3
    return sorted(kept)


def _boxed(header: list[str], cells: list[list[str]], widths: list[int], numeric: list[bool]) -> str:
    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [line("┌", "┬", "┐")]
    out.append("│" + "│".join(f" {_centre(h, w)} " for h, w in zip(header, widths)) + "│")
    out.append(line("├", "┼", "┤"))
    for row in cells:
        out.append("│" + "│".join(
            f" {_pad(cell, w, numeric[i] and cell != NULL)} " for i, (cell, w) in enumerate(zip(row, widths))) + "│")
    out.append(line("└", "┴", "┘"))
    return "\n".join(out)


def _lines(columns: list[str], rows: Sequence[tuple]) -> str:
    """One "column = value" line per value, names right-aligned, a blank line between rows
    (the SQLite and DuckDB shells' line mode): a wide row reads down the screen."""
    width = max(_width(c) for c in columns)
    blocks = ["\n".join(f"{_pad(c, width, True)} = {format_cell(v)}" for c, v in zip(columns, row))
              for row in rows]
    return "\n\n".join(blocks)


def _centre(text: str, width: int) -> str:
    gap = width - _width(text)
    left = gap // 2
    return " " * left + text + " " * (gap - left)


def _markdown(columns: list[str], rows: Sequence[tuple]) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")

    numeric = [bool(rows) and all(row[i] is None or is_number(row[i]) for row in rows) for i in range(len(columns))]
    out = ["| " + " | ".join(esc(c) for c in columns) + " |",
           "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in rows:
        out.append("| " + " | ".join(esc(format_cell(v)) for v in row) + " |")
    return "\n".join(out)


def _csv(columns: list[str], rows: Sequence[tuple]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buf.getvalue().rstrip("\n")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(float(value))  # full precision for machines
    return format_cell(value)


def json_value(value: Any) -> Any:
    """A value as JSON: numbers stay numbers, NaN/inf become null, dates ISO strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return json_value(value.item()) if not hasattr(value, "shape") or value.shape == () else json_value(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return format_cell(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def _json(columns: list[str], rows: Sequence[tuple]) -> str:
    if not rows:
        return "[]"
    items = [json.dumps(dict(zip(columns, (json_value(v) for v in row))), ensure_ascii=False) for row in rows]
    return "[\n  " + ",\n  ".join(items) + "\n]"


# --- errors ------------------------------------------------------------------------------------


def error_message(exc: BaseException, hint: str = "run .traceback or use --debug for details") -> str:
    """One readable line for an error: what went wrong, where, and the valid choices.

    DuckDB's multi-line messages (a LINE n: excerpt with a caret under it) are folded into
    one line that keeps the message, any candidate list and the line number.
    """
    import sqlrec.errors as errors

    text = str(exc).strip()
    if not isinstance(exc, errors.Error):
        if isinstance(exc, KeyboardInterrupt):
            return "Error: cancelled"
        name = type(exc).__name__
        text = f"{name}: {text}" if text else name
        return f"Error: internal error ({text}); {hint}"
    parts: list[str] = []
    line_no = None
    skip_next = False
    for raw in text.splitlines():
        stripped = raw.strip()
        if skip_next:
            skip_next = False
            if set(stripped) <= {"^", " "}:
                continue
        if not stripped:
            continue
        if stripped.startswith("LINE ") and ":" in stripped:
            head = stripped[5:stripped.index(":")]
            if head.isdigit():
                line_no = int(head)
                skip_next = True
                continue
        if set(stripped) <= {"^"}:
            continue
        parts.append(stripped)
    message = " ".join(parts) if parts else type(exc).__name__
    if line_no is not None and line_no > 1 and "(line " not in message:
        message += f" (line {line_no})"
    return f"Error: {message}"
