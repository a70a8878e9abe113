"""`sqlrec serve`: one process owning a DuckDB file, serving it over HTTP (and PostgreSQL's protocol).

    from sqlrec.serve import Settings
    from sqlrec.serve.server import Server
    with Server("shop.duckdb", port=0) as server:      # started on threads; stopped on exit
        print(server.url)

Needs the `serve` extra: ``pip install 'sqlrec[serve]'``.
"""

from __future__ import annotations

from sqlrec.serve.service import ConfigError, ServeError, Service, Settings

MISSING = "sqlrec serve needs FastAPI and uvicorn: pip install 'sqlrec[serve]'"


def require() -> None:
    """Raise ImportError with the install command when the serve extra is missing."""
    try:
        import fastapi  # noqa: F401
        import swagger_ui_bundle  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{MISSING} ({exc})") from None


__all__ = ["Service", "Settings", "ServeError", "ConfigError", "require", "MISSING"]
