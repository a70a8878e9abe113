"""SQL highlighting for the shell: pygments' SQL lexer, with sqlrec's words as keywords."""

from __future__ import annotations

from typing import Any

# Words pygments' SqlLexer does not know as keywords but the shell's users type all the time.
EXTRA_KEYWORDS = ("MODEL", "MODELS", "PREDICT", "OPTIONS", "BUILD", "RETRAIN", "FINETUNE",
                  "EVALUATE", "RECOMMENDATIONS", "SHOW", "DESCRIBE", "SUMMARIZE", "QUALIFY", "ATTACH", "PRAGMA")


def make_lexer() -> Any:
    """A prompt_toolkit lexer for SQL with sqlrec's words as keywords; None without pygments."""
    try:
        from prompt_toolkit.lexers import PygmentsLexer
        from pygments.lexer import inherit, words
        from pygments.lexers.sql import SqlLexer
        from pygments.token import Keyword
    except ImportError:
        return None

    class SqlRecLexer(SqlLexer):
        name = "sqlrec"
        aliases = ["sqlrec"]
        tokens = {"root": [(words(EXTRA_KEYWORDS, prefix=r"\b", suffix=r"\b"), Keyword), inherit]}

    return PygmentsLexer(SqlRecLexer)
