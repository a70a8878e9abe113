"""The HTTP JSON API: FastAPI routes over a ``Service``.

FastAPI rather than bare Starlette because the typed routes give the OpenAPI schema
(/openapi.json) and request validation for free; /docs serves Swagger UI from the
swagger-ui-bundle package, so the page works with no network. Every error is JSON,
``{"error": message, "type": class name}``, with the status of ``service.status_for``.
Route functions are plain ``def``: they run on the server's thread pool, one cursor each.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from sqlrec import errors
from sqlrec.serve.service import Result, ServeError, Service, status_for

ARROW = "application/vnd.apache.arrow.stream"


class SqlRequest(BaseModel):
    sql: str = Field(description="sqlrec SQL: one statement or a script")
    params: list[Any] | dict[str, Any] | None = Field(None, description="values bound to ? or $name")


class RecommendRequest(BaseModel):
    users: list[Any] | None = Field(None, description="user ids (user_item, user_user)")
    items: list[Any] | None = Field(None, description="item ids (item_item, item_user)")
    liked: list[Any] | None = Field(None, description="items a new user liked: fold-in recommendations")
    user: Any = Field(None, description="with liked: the new user's id (default: one no trained user has)")
    kind: str | None = None
    k: int | None = None
    exclude_seen: bool | None = None


def error_response(status: int, message: str, kind: str = "Error") -> JSONResponse:
    return JSONResponse({"error": message, "type": kind}, status_code=status)


class Guard:
    """ASGI middleware: bearer token (when the server has one) and a cap on request bodies; and
    the short way for a plain `GET /models/NAME/recommend` (see fast_recommend)."""

    def __init__(self, app: Any, token: str | None, max_body: int, service: Service | None = None):
        self.app, self.token, self.max_body, self.service = app, token, max_body, service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refusal(headers)
        if refused is None and int(headers.get("content-length") or 0) > self.max_body:
            refused = error_response(413, f"request body over {self.max_body} bytes")
        if refused is not None:
            return await refused(scope, receive, send)
        if self.service is not None and (asked := fast_recommend_args(scope)) is not None:
            return await fast_recommend(self.service, asked, scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(receive)
            if body is None:
                return await error_response(413, f"request body over {self.max_body} bytes")(scope, receive, send)
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_body(self, receive: Any) -> bytes | None:
        """The whole request body, or None once it passes max_body (chunked bodies too)."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(parts)
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(parts)

    def _refusal(self, headers: dict[str, str]) -> JSONResponse | None:
        if self.token is None:
            return None
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return error_response(401, "this server needs a token: send 'Authorization: Bearer TOKEN'",
                                  "Unauthorized")
        if not hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return error_response(403, "wrong token", "Forbidden")
        return None


# The hot request, answered without FastAPI's routing, parameter validation and dependency
# solving (about 1 ms of CPU a request, as much as the recommend itself): only the plain form,
# each parameter once, k a plain positive integer, exclude_seen true or false. Anything else
# (a bad k, a repeated or unknown parameter) goes to the FastAPI route, whose validation errors
# are the answers; the route stays in the OpenAPI schema and answers the same bytes.
_RECOMMEND_PATH = re.compile(r"^/models/([^/]+)/recommend$")
_FAST_PARAMS = frozenset({"user", "item", "kind", "k", "exclude_seen"})
_K = re.compile(r"^[1-9][0-9]{0,8}$")
_BOOL = {"true": True, "false": False}


def fast_recommend_args(scope: dict) -> dict[str, Any] | None:
    """The arguments of a plain `GET /models/NAME/recommend?user=..` (or item=..), or None."""
    if scope["method"] != "GET" or scope.get("root_path"):
        return None
    found = _RECOMMEND_PATH.match(scope["path"])
    if found is None:
        return None
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    given = dict(pairs)
    if len(given) != len(pairs) or not given.keys() <= _FAST_PARAMS or not all(given.values()):
        return None
    if ("user" in given) == ("item" in given):
        return None
    k = given.get("k")
    if k is not None and not _K.match(k):
        return None
    seen = given.get("exclude_seen")
    if seen is not None and seen not in _BOOL:
        return None
    return {"name": found.group(1), "user": given.get("user"), "item": given.get("item"),
            "kind": given.get("kind"), "k": None if k is None else int(k),
            "exclude_seen": None if seen is None else _BOOL[seen]}


async def fast_recommend(service: Service, asked: dict[str, Any], scope: dict, receive: Any, send: Any) -> None:
    """Answer a request fast_recommend_args read, as the FastAPI route and its handlers would:
    the recommend on the thread pool, errors as JSON with their status; a bug (not a sqlrec
    error) is answered 500 and raised after, for uvicorn to log, as Starlette does."""
    from starlette.concurrency import run_in_threadpool

    try:
        response = await run_in_threadpool(recommend_one, service, **asked)
    except Exception as exc:
        await error_for(exc)(scope, receive, send)
        if not isinstance(exc, (ServeError, errors.Error)):
            raise
        return
    await response(scope, receive, send)


def recommend_one(service: Service, name: str, user: str | None, item: str | None, kind: str | None,
                  k: int | None, exclude_seen: bool | None) -> JSONResponse:
    if (user is None) == (item is None):
        raise ServeError(400, "give exactly one of user= or item=")
    kind = kind or ("user_item" if user is not None else "item_item")
    return JSONResponse(service.recommend(name, kind, [user if user is not None else item], k, exclude_seen))


def error_for(exc: Exception) -> JSONResponse:
    message = exc.message if isinstance(exc, ServeError) else str(exc) or type(exc).__name__
    return error_response(status_for(exc), message, type(exc).__name__)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def create_app(service: Service, token: str | None = None, max_body: int = 1 << 20,
               labels: str | None = None) -> Any:
    """The API and the web pages (sqlrec.serve.pages; `labels` gives items their titles there)."""
    from sqlrec.serve.pages import add_pages

    app = FastAPI(title="sqlrec", version=_version(), docs_url=None, redoc_url=None,
                  description="Recommendations in plain SQL, served: models, recommendations and sqlrec SQL.")
    _errors(app)
    _model_routes(app, service)
    _sql_route(app, service)
    _docs(app)
    add_pages(app, service, labels)
    return Guard(app, token, max_body, service)


def _version() -> str:
    # the installed distribution's version: importing the sqlrec package itself from here would
    # reach up to the front-ends (its IPython hook)
    from importlib.metadata import version

    return version("sqlrec")


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return error_response(400, "bad request: " + "; ".join(parts), "BadRequest")

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return error_for(exc)

    # sqlrec's errors and the server's refusals are answers, not failures: no traceback logged.
    # Anything else (a bug) is answered with JSON too, status 500, and logged by uvicorn.
    for cls in (ServeError, errors.Error, Exception):
        app.add_exception_handler(cls, failed)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), "HTTPError")


def _model_routes(app: FastAPI, service: Service) -> None:
    @app.get("/models", summary="The active models")
    def models() -> list[dict[str, Any]]:
        return [{"name": s.name, "engine": s.engine, "version": s.version, "user_id": s.user_col,
                 "item_id": s.item_col, "n_users": s.n_users, "n_items": s.n_items, "metrics": s.metrics}
                for s in service.summaries()]

    @app.get("/models/{name}", summary="A model: its info and held-out metrics")
    def model(name: str) -> dict[str, Any]:
        return service.describe(name)

    # The recommend routes answer with their JSON already encoded: the schema stays in
    # response_model, but FastAPI's per-response validation and jsonable_encoder walk (another
    # thread-pool hop and a pass over every row) are skipped. Same bytes: JSONResponse is the
    # encoder FastAPI uses for a returned dict too.
    @app.get("/models/{name}/recommend", summary="Recommendations for one user or item",
             response_model=dict[str, Any])
    def recommend(name: str, user: str | None = None, item: str | None = None, kind: str | None = None,
                  k: int | None = Query(None, ge=1), exclude_seen: bool | None = None) -> JSONResponse:
        return recommend_one(service, name, user, item, kind, k, exclude_seen)

    @app.post("/models/{name}/recommend", summary="Recommendations for many users or items, or a new user",
              response_model=dict[str, Any])
    def recommend_many(name: str, body: RecommendRequest = Body()) -> JSONResponse:
        given = [x for x in (body.users, body.items, body.liked) if x is not None]
        if len(given) != 1:
            raise ServeError(400, "give exactly one of users, items or liked")
        kind = body.kind or ("item_item" if body.items is not None else "user_item")
        keys = body.users if body.users is not None else body.items
        return JSONResponse(service.recommend(name, kind, keys, body.k, body.exclude_seen, liked=body.liked,
                                              new_id=body.user))


def _sql_route(app: FastAPI, service: Service) -> None:
    @app.post("/sql", summary="Run sqlrec SQL; JSON rows, or Arrow / CSV by the Accept header")
    def sql(request: Request, body: SqlRequest = Body()) -> Any:
        result = service.sql(body.sql, body.params)
        accept = request.headers.get("accept", "")
        if ARROW in accept:
            return Response(to_arrow(result), media_type=ARROW, headers=_truncated(result))
        if "text/csv" in accept:
            return Response(to_csv(result), media_type="text/csv", headers=_truncated(result))
        return {"columns": result.columns, "types": result.types,
                "rows": [[r[c] for c in result.columns] for r in result.records()],
                "row_count": len(result.rows), "truncated": result.truncated}


def _truncated(result: Result) -> dict[str, str]:
    return {"X-Sqlrec-Truncated": "true" if result.truncated else "false"}


def to_csv(result: Result) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return out.getvalue()


def to_arrow(result: Result) -> bytes:
    import pyarrow as pa

    table = pa.table({name: pa.array([row[i] for row in result.rows]) for i, name in enumerate(result.columns)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the local swagger-ui-bundle files (no CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="sqlrec API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")
