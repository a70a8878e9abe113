"""The front-ends: the `sqlrec` command (cli), its interactive shell (shell, with completion,
dot commands, highlighting and history), the IPython magics (magic) and the text rendering
they share (formatting).

Front-ends talk to the core only through its public surface: `sqlrec.connect`, the
Connection's `execute`/`interrupt`/`models()`/`duckdb`, `sqlrec.sql.split_script`,
`sqlrec.errors`, and the option, engine and attribute tables of `sqlrec.api.vocabulary`
(pyproject.toml's import-linter contract "front-ends use the public surface").
"""
