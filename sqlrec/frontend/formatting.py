"""Results as text: aligned tables (like the DuckDB shell), CSV, JSON and Markdown.

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

FORMATS = ("table", "csv", "json", "markdown")
NULL = "NULL"
MAX_CELL_WIDTH = 60  # table mode: longer values are cut with an ellipsis

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
) -> str:
    """Render a result as text in `fmt` (table, csv, json or markdown).

    `rows` may be a prefix of the result, with `total_rows` the full count; in table and
    markdown output at most `max_rows` rows are shown (None or 0: all), followed by a
    "… N rows total (M shown)" line. CSV and JSON are for machines and always show every
    row they are given.
    """
    fmt = (fmt or "table").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
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
    body = _markdown(columns, shown) if fmt == "markdown" else _table(columns, shown)
    return body + ("\n" + footer if footer else "")


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


def _table(columns: list[str], rows: Sequence[tuple]) -> str:
    header = [_clip(c, MAX_CELL_WIDTH) for c in columns]
    cells = [[_clip(format_cell(v), MAX_CELL_WIDTH) for v in row] for row in rows]
    numeric = [bool(rows) and all(row[i] is None or is_number(row[i]) for row in rows) and
               any(row[i] is not None for row in rows) for i in range(len(columns))]
    widths = [max([_width(header[i])] + [_width(r[i]) for r in cells]) for i in range(len(columns))]

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
