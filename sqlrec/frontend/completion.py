"""Context-aware Tab completion for the shell: SQL and sqlrec keywords, tables, columns
(through aliases), models and their attributes, USING options and their values, dot commands.

The completer works on the current statement before the cursor; what it knows about the
database comes from `Metadata`; what it knows about sqlrec from the vocabulary functions of
`metadata` and from the dot-command table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from sqlrec.sql.quoting import quote_name
from sqlrec.frontend.dotcommands import COMMANDS
from sqlrec.frontend.metadata import Metadata, create_options, engine_names, model_attributes, query_options
from sqlrec.frontend.scripts import is_dot_command, tokenize

SQL_KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "OFFSET", "QUALIFY",
    "JOIN", "LEFT JOIN", "RIGHT JOIN", "INNER JOIN", "FULL JOIN", "CROSS JOIN", "ON", "AS",
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "BETWEEN", "EXISTS", "DISTINCT",
    "CASE", "WHEN", "THEN", "ELSE", "END", "UNION", "UNION ALL", "EXCEPT", "INTERSECT", "WITH",
    "INSERT INTO", "VALUES", "UPDATE", "SET", "DELETE FROM", "CREATE", "TABLE", "VIEW",
    "CREATE TABLE", "CREATE VIEW", "CREATE OR REPLACE", "DROP", "DROP TABLE", "ALTER TABLE",
    "IF EXISTS", "IF NOT EXISTS", "TEMP", "TEMPORARY", "PRIMARY KEY", "DEFAULT", "COPY", "TO",
    "ATTACH", "DETACH", "USE", "DESCRIBE", "SUMMARIZE", "SHOW", "SHOW TABLES", "EXPLAIN",
    "PRAGMA", "INSTALL", "LOAD", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "ASC", "DESC",
    "TRUE", "FALSE", "CAST", "OVER", "PARTITION BY", "FILTER", "REPLACE", "EXCLUDE",
    "INTEGER", "BIGINT", "DOUBLE", "VARCHAR", "BOOLEAN", "DATE", "TIMESTAMP",
)

SQLREC_KEYWORDS = (
    "MODEL", "MODELS", "PREDICT", "USING", "OPTIONS", "CREATE MODEL", "CREATE OR REPLACE MODEL",
    "BUILD MODEL", "DROP MODEL", "SHOW MODELS", "DESCRIBE MODEL", "RETRAIN", "FINETUNE",
    "EVALUATE", "EVALUATE MODEL", "ALTER MODEL", "EXPORT RECOMMENDATIONS",
    # the other products' statements (sqlrec.exec.compat.translate)
    "CREATE ML_ENGINE", "SHOW ML_ENGINES",
)
KEYWORDS = SQL_KEYWORDS + SQLREC_KEYWORDS

# Options whose value is a column of the training data: completed from the referenced tables.
COLUMN_OPTIONS = ("user_id", "item_id", "rating", "weight", "timestamp", "user_col", "item_col", "rating_col")
_TABLE_WORDS = {"FROM", "JOIN", "INTO", "TABLE", "UPDATE", "SUMMARIZE", "DESCRIBE", "VIEW"}
_MODEL_WORDS = {"MODEL", "RETRAIN", "FINETUNE", "RECOMMENDATIONS"}
# After these a term is complete, so keywords are the useful continuation, not columns.
_OPEN_WORDS = ("", "SELECT", ",", "(", "WHERE", "AND", "OR", "BY", "ON")
_NOT_ALIASES = {
    "WHERE", "JOIN", "LEFT", "RIGHT", "INNER", "OUTER", "FULL", "CROSS", "ON", "USING", "GROUP",
    "ORDER", "LIMIT", "PREDICT", "OPTIONS", "AS", "NATURAL", "UNION", "EXCEPT", "INTERSECT",
    "HAVING", "QUALIFY", "WINDOW", "OFFSET", "SET", "VALUES", "SELECT", "POSITIONAL", "ASOF",
}
_MODEL_STATEMENTS = ("BUILD", "RETRAIN", "FINETUNE", "EVALUATE")


class _Offer:
    """Candidates that extend the word typed so far, each offered once per completion."""

    def __init__(self, word: str):
        self.word = word
        self.lower = word.strip('"').lower()
        self.seen: set[str] = set()

    def __call__(self, candidates: Iterable[str], meta: str, keyword: bool = False,
                 quote: bool = True) -> list[Completion]:
        out = []
        for c in candidates:
            key = c.lower()
            if not key.startswith(self.lower) or key in self.seen or (key == self.lower and not keyword):
                continue
            self.seen.add(key)
            if keyword:  # keywords follow the case the user types in
                text = c.lower() if self.word and self.word == self.word.lower() else c
            else:
                text = quote_name(c) if quote else c
            out.append(Completion(text, -len(self.word), display=c, display_meta=meta))
        return out


def statement_kind(statement: str) -> str:
    """CREATE for the model statements, SELECT for queries, else the first word (upper case)."""
    found = re.search(r"[A-Za-z_]+", statement)
    first = found.group(0).upper() if found else ""
    if first == "CREATE" or first in _MODEL_STATEMENTS:
        return "CREATE"  # CREATE TABLE too: its USING / OPTIONS are never query options
    return "SELECT" if first in ("SELECT", "WITH", "FROM") else first


def current_statement(text: str) -> str:
    """The part of `text` after its last complete statement."""
    last = 0
    try:
        for token in tokenize(text):
            if token.token_type.name == "SEMICOLON":
                last = token.end + 1
    except Exception:
        pass  # inside an unterminated string: the statement is everything since the last ';' we saw
    return text[last:]


def options_tail(before: str) -> tuple[str, str] | None:
    """(keyword, text after it) when the cursor is inside a USING / OPTIONS option list."""
    m = None
    for m in re.finditer(r"\b(USING|OPTIONS)\b", before, re.I):
        pass
    if m is None:
        return None
    keyword, tail = m.group(1).upper(), before[m.end():]
    if keyword == "USING" and re.match(r"\s*\(", tail):
        return None  # JOIN ... USING (col)
    if re.search(r"\b(WHERE|ORDER|GROUP|LIMIT|FROM|JOIN|SELECT|AS|OPTIONS)\b", tail, re.I):
        return None
    return keyword, tail


def aliases(statement: str) -> dict[str, str]:
    """alias (lower) -> table or model name, from FROM/JOIN clauses; every table names itself."""
    out: dict[str, str] = {}
    for m in re.finditer(r'\b(?:FROM|JOIN)\s+([\w."]+)(?:\s+(?:AS\s+)?([A-Za-z_]\w*))?', statement, re.I):
        table, alias = m.group(1).strip('"'), m.group(2)
        out.setdefault(table.lower(), table)
        if alias and alias.upper() not in _NOT_ALIASES:
            out[alias.lower()] = table
    return out


class SqlCompleter(Completer):
    """Context-aware completion for sqlrec SQL and the dot commands."""

    def __init__(self, metadata: Metadata):
        self.meta = metadata
        self.create_options = create_options()
        self.query_options = query_options()

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if is_dot_command(text) and "\n" not in text.strip():
            return self._dot(text.lstrip())
        statement = current_statement(text)
        if not statement.strip() and not complete_event.completion_requested:
            # Right after a ';' (or on an empty prompt) nothing has been typed to complete: a menu
            # popping up while typing would cover the result; Tab still lists what may start a statement.
            return []
        # Aliases and tables may be named after the cursor (SELECT r.| FROM ratings r): they are
        # looked up in the whole statement, the part after the cursor included.
        scope = statement + document.text_after_cursor.split(";", 1)[0]
        if statement.count("'") % 2 == 1:
            # inside a quoted string: only an option value (USING recommender_type = 'user_...)
            quoted = re.search(r"(\w+)\s*=\s*'([^']*)$", statement)
            if not quoted:
                return []
            return self._option_values(scope, quoted.group(1).lower(), quoted.group(2), quoted=False)
        match = re.search(r'[\w"]+(?:\.[\w"]*)*$|(?<=\.)$', statement)
        word = match.group(0) if match else ""
        if "." in word:
            prefix, _, partial = word.rpartition(".")
            return self._dotted(scope, prefix, partial)
        return self._words(scope, statement[: len(statement) - len(word)], word)

    # -- dot commands ---------------------------------------------------------------------------

    def _dot(self, text: str) -> list[Completion]:
        parts = text.split()
        if len(parts) <= 1 and not text.endswith(" "):
            return [Completion(name, -len(text), display_meta=c.help)
                    for name, c in COMMANDS.items() if name.startswith(text)]
        command = COMMANDS.get(parts[0].lower())
        arg = parts[1] if len(parts) > 1 and not text.endswith(" ") else ""
        if command is None:
            return []
        if command.path:
            return list(PathCompleter(expanduser=True).get_completions(Document(arg), CompleteEvent()))
        return [Completion(v, -len(arg)) for v in command.values if v.startswith(arg)]

    # -- name.partial ---------------------------------------------------------------------------

    def _dotted(self, statement: str, prefix: str, partial: str) -> list[Completion]:
        key = prefix.strip('"').lower()
        known = aliases(statement)
        if key in self.meta.models and key not in known:
            return [Completion(attr, -len(partial), display_meta=help_text)
                    for attr, help_text in model_attributes().items()
                    if attr.startswith(partial.lower())]
        target = known.get(key, key)
        wanted = partial.strip('"').lower()
        return [Completion(quote_name(column), -len(partial), display_meta=f"column of {target}")
                for column in self.meta.columns_of(target) if column.lower().startswith(wanted)]

    def _referenced_columns(self, statement: str) -> list[str]:
        seen: list[str] = []
        for table in dict.fromkeys(aliases(statement).values()):
            seen.extend(c for c in self.meta.columns_of(table) if c not in seen)
        return seen

    # -- USING options ----------------------------------------------------------------------------

    def _option_values(self, statement: str, option: str, partial: str, quoted: bool) -> list[Completion]:
        in_query = statement_kind(statement) == "SELECT"
        spec = (self.query_options if in_query else self.create_options).get(option)
        if spec is not None and not spec.choices and spec.kind is bool:
            # booleans are words, never strings
            return [Completion(v, -len(partial), display_meta=f"{spec.name} value")
                    for v in ("true", "false") if v.startswith(partial.lower())]
        values, meta = self._option_choices(statement, option, spec, in_query)
        return [Completion(f"'{v}'" if quoted else v, -len(partial), display_meta=meta)
                for v in values if v.lower().startswith(partial.lower())]

    def _option_choices(self, statement: str, option: str, spec: Any, in_query: bool) -> tuple[list[str], str]:
        if spec is not None and spec.choices:
            return list(spec.choices), f"{spec.name} value"
        if option == "engine" and not in_query:
            return engine_names(), "engine"
        if option in COLUMN_OPTIONS and not in_query:
            return self._referenced_columns(statement), "column"
        return [], ""

    def _in_options(self, statement: str, tail: tuple[str, str], offer: _Offer) -> list[Completion] | None:
        """Completions inside a USING / OPTIONS list; None where the list gives no context."""
        keyword, text = tail
        if keyword == "USING" and re.match(r"\s*BUILD\b", statement, re.I):
            return offer(engine_names(), "engine")  # ThanoSQL form: BUILD MODEL m USING <engine>
        at_value = re.search(r"(\w+)\s*=\s*$", text)
        if at_value:
            return self._option_values(statement, at_value.group(1).lower(), offer.lower, quoted=True)
        if re.search(r"(^|,|\()\s*$", text):
            specs = self.query_options if statement_kind(statement) == "SELECT" else self.create_options
            return [Completion(name, -len(offer.word), display_meta=spec.help or "option")
                    for name, spec in specs.items() if name.startswith(offer.lower)]
        return None

    # -- words ------------------------------------------------------------------------------------

    def _words(self, statement: str, before: str, word: str) -> list[Completion]:
        offer = _Offer(word)
        tail = options_tail(before)
        if tail is not None:
            found = self._in_options(statement, tail, offer)
            if found is not None:
                return found
        tokens = re.findall(r'[\w"]+|[=(),]', before)
        prev = tokens[-1].upper() if tokens else ""
        prev2 = tokens[-2].upper() if len(tokens) > 1 else ""
        found = self._after(prev, prev2, statement, before, offer)
        if found is not None:
            return found
        if not word and prev not in _OPEN_WORDS:
            return offer(KEYWORDS, "keyword", keyword=True)
        return self._anything(statement, offer)

    def _after(self, prev: str, prev2: str, statement: str, before: str, offer: _Offer) -> list[Completion] | None:
        """What the previous word calls for (a model, a table, a column); None when it calls for nothing."""
        models = [m.name for m in self.meta.models.values()]
        if prev in _MODEL_WORDS or (prev == "EXISTS" and "MODEL" in before.upper()):
            return offer(models, "model")
        if prev == "PREDICT":
            return offer(self._referenced_columns(statement), "column")
        if prev == "SHOW":
            return offer(("MODELS", "TABLES", "ALL TABLES", "DATABASES"), "keyword", keyword=True)
        if prev in _TABLE_WORDS:
            found = offer((t.name for t in self.meta.tables.values()), "table") + offer(models, "model")
            if prev in ("FROM", "JOIN"):
                found += offer(self.meta.table_functions, "table function", quote=False)
            return found
        if prev == "RECOMMENDER_TYPE" or (prev == "=" and prev2 == "RECOMMENDER_TYPE"):
            return self._option_values(statement, "recommender_type", offer.lower, quoted=True)
        return None

    def _anything(self, statement: str, offer: _Offer) -> list[Completion]:
        """Anywhere else: the statement's columns first, then keywords, relations, all columns."""
        found = offer(self._referenced_columns(statement), "column")
        found += offer(KEYWORDS, "keyword", keyword=True)
        found += offer((t.name for t in self.meta.tables.values()), "table")
        found += offer((m.name for m in self.meta.models.values()), "model")
        found += offer([c for t in self.meta.tables.values() for c in t.columns], "column")
        if offer.word:
            found += offer(self.meta.functions, "function", quote=False)
        return found
