"""The web pages at / : server-rendered HTML over the same Service as the JSON API.

    /                          the model picker
    /m/{name}                  the model page: info, held-out metrics, learning curve, versions
    /m/{name}/prefs            recommendations for a known user, or for a new one from liked items
    /m/{name}/popular          most consumed vs most recommended items, and their distribution

Plain GET forms, no JavaScript, no CDN: one inline stylesheet with a viewport meta tag, so
they read on a phone. Every value shown is HTML-escaped; every value from a request reaches
DuckDB bound (sqlrec.serve.insights, sqlrec.serve.service).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse

from sqlrec import errors
from sqlrec.serve import svg
from sqlrec.serve.insights import TOP_N, Insights, request_labels
from sqlrec.serve.service import ServeError, Service, status_for

CSS = """
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#222;background:#fafafa;line-height:1.4}header{background:#234;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
header a{color:#fff;text-decoration:none;white-space:nowrap}
main{max-width:1000px;margin:0 auto;padding:1em}a{color:#1560bd}h1{font-size:1.4em}h2{font-size:1.15em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}td,th{border-bottom:1px solid #ddd;
padding:.3em .5em;text-align:left;vertical-align:top}td.num,th.num{text-align:right;white-space:nowrap}
.cols{display:flex;flex-wrap:wrap;gap:1em}.cols>section{flex:1 1 300px;min-width:0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin-bottom:1em}
.figures{display:flex;flex-wrap:wrap;gap:.5em}.figure{background:#eef3f8;border-radius:6px;
padding:.5em .8em}.figure b{display:block;font-size:1.3em}input,select,button{font-size:1em;padding:.35em}
input[type=text],input[type=search]{width:100%;max-width:22em}.error{background:#fde8e8;
border:1px solid #e99;padding:.8em;border-radius:6px}nav.tabs a{margin-right:1em}
.scroll{overflow-x:auto;max-width:100%}td{overflow-wrap:anywhere}ul.results{list-style:none;padding:0}ul.results li{padding:.2em 0}svg.chart{max-width:100%;height:auto}
"""


def h(value: Any) -> str:
    return escape("" if value is None else str(value))


def fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return h(value)


def page(title: str, body: str, model: str | None = None) -> str:
    tabs = ""
    if model:
        m = quote(model)
        tabs = (f'<a href="/m/{m}">Model</a><a href="/m/{m}/prefs">Preferences</a>'
                f'<a href="/m/{m}/popular">Consumed vs recommended</a>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{h(title)} · sqlrec</title><style>{CSS}</style></head><body>"
            f"<header><b>sqlrec</b><a href=\"/\">Models</a>{tabs}</header><main>{body}</main></body></html>")


def table(columns: list[str], rows: list[tuple], cls: str = "") -> str:
    head = "".join(f"<th>{h(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="num">{fmt(v)}</td>' if isinstance(v, (int, float))
                                    and not isinstance(v, bool) else f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure(label: str, value: str, cls: str) -> str:
    return f'<div class="figure {cls}">{h(label)}<b>{h(value)}</b></div>'


class Pages:
    def __init__(self, service: Service, labels: str | None = None):
        self.service = service
        self.insights = Insights(service, labels)

    def source(self, labels: str | None) -> str | None:
        return request_labels(labels) or self.insights.labels

    def title(self, titles: dict[str, str], item: Any) -> str:
        return titles.get(str(item), str(item))

    # --- the pages ----------------------------------------------------------------------------

    def index(self) -> str:
        rows = []
        for s in self.service.summaries():
            m = quote(s.name)
            rows.append(f'<tr><td><a class="model" href="/m/{m}">{h(s.name)}</a></td><td>{h(s.engine)}</td>'
                        f'<td class="num">{s.version}</td><td class="num">{s.n_users}</td><td class="num">{s.n_items}</td>'
                        f'<td><a href="/m/{m}/prefs">preferences</a> · <a href="/m/{m}/popular">consumed vs '
                        f'recommended</a></td></tr>')
        body = ("<div class=scroll><table><thead><tr><th>model</th><th>engine</th><th class=num>version</th><th class=num>users</th>"
                "<th class=num>items</th><th>pages</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
        if not rows:
            body = "<p>No models in this database yet: CREATE MODEL one (see the README).</p>"
        return page("Models", "<h1>Models</h1>" + body)

    def model(self, name: str) -> str:
        d = self.service.describe(name)
        info = [(k, v) for k, v in d["info"].items() if v not in (None, "None")]
        metrics = [(m["metric"], m["value"], m.get("k")) for m in d["metrics"]]
        parts = [f"<h1>{h(d['name'])}</h1><p>{h(d['engine'])} model, version {d['version']}, "
                 f"{d['n_users']} users × {d['n_items']} items, trained in {fmt(d['train_seconds'])} s.</p>"]
        parts.append('<div class="cols"><section class="card"><h2>Held-out metrics</h2>'
                     + (table(["metric", "value", "k"], metrics, "metrics") if metrics else
                        "<p class=none>No metrics: create the model with evaluation = true.</p>") + "</section>")
        parts.append(f'<section class="card"><h2>Info</h2>{table(["property", "value"], info, "info")}</section></div>')
        parts.append(f'<section class="card"><h2>Learning curve</h2>{self._curve(d["name"])}</section>')
        columns, rows = self.insights.versions(d["name"])
        keep = [c for c in ("version", "active", "engine", "created_at", "train_seconds", "precision_at_k",
                            "ndcg_at_k", "auc", "epochs_trained") if c in columns]
        picked = [tuple(r[columns.index(c)] for c in keep) for r in rows]
        parts.append(f'<section class="card"><h2>Versions</h2>{table(keep, picked, "versions")}</section>')
        return page(d["name"], "".join(parts), d["name"])

    def _curve(self, name: str) -> str:
        columns, rows = self.insights.history(name)
        skip = {"epoch", "seconds", "split", "k"}
        metrics = [c for i, c in enumerate(columns) if c not in skip
                   and any(isinstance(r[i], (int, float)) for r in rows)]
        if not rows or not metrics:
            return "<p class=none>No learning curve: create the model with evaluation = true.</p>"
        x = [float(r[columns.index("epoch")]) for r in rows]
        series = {c: [None if r[columns.index(c)] is None else float(r[columns.index(c)]) for r in rows]
                  for c in metrics}
        k = rows[0][columns.index("k")] if "k" in columns else None
        title = f"{name}: held-out metrics after every epoch" + (f" (k = {k})" if k is not None else "")
        return svg.line_chart(x, series, title, "epoch")

    def prefs(self, name: str, user: str | None, q: str | None, liked: list[str], k: int,
              labels: str | None) -> str:
        s = self.service.summary(name)
        source = self.source(labels)
        keep = {"labels": labels} if labels else {}
        users = self.insights.users(s.name)
        options = "".join(f'<option value="{h(u)}">' for u in users)
        parts = [f"<h1>Preferences · {h(s.name)}</h1>",
                 '<div class="cols"><section class="card"><h2>A known user</h2>'
                 f'<form method="get" id="known">{_hidden(keep)}<label>User id <input type="text" name="user" '
                 f'list="users" value="{h(user)}" id="user"></label><datalist id="users">{options}</datalist> '
                 f'{_k_select(k)} <button type="submit" id="show">Recommend</button></form>']
        if user:
            parts.append(self._known(s, user, k, source))
        parts.append("</section>")
        parts.append(self._new_user(s, q, liked, k, source, keep))
        parts.append("</div>")
        return page(f"Preferences · {s.name}", "".join(parts), s.name)

    def _known(self, s: Any, user: str, k: int, source: str | None) -> str:
        recs = self.service.recommend(s.name, "user_item", [user], k)["recommendations"]
        seen = self.insights.seen(s.name, user)
        items = [r[s.item_col] for r in recs]
        titles = self.insights.titles(items + seen, source)
        out = [f"<h3>Seen by user {h(user)} in training (most consumed first)</h3>"]
        out.append("<ul class=seen>" + "".join(f"<li>{h(self.title(titles, i))}</li>" for i in seen) + "</ul>"
                   if seen else "<p>Not a training user: recommendations fall back to the model's cold start.</p>")
        out.append(f"<h3>Recommended for user {h(user)}</h3>" + _ranked(recs, s.item_col, titles, self.title))
        return "".join(out)

    def _new_user(self, s: Any, q: str | None, liked: list[str], k: int, source: str | None,
                  keep: dict[str, str]) -> str:
        found = self.insights.search(s.name, q, source) if q else []
        liked_titles = self.insights.titles(liked, source)
        boxes = [(i, self.title(liked_titles, i), True) for i in liked]
        boxes += [(i, t, False) for i, t in found if i not in liked]
        items = "".join(f'<li><label><input type="checkbox" name="liked" value="{h(i)}"{" checked" if on else ""}> '
                        f"{h(t)}</label></li>" for i, t, on in boxes)
        hint = "titles" if source else "item ids"
        out = ['<section class="card"><h2>A new user</h2><form method="get" id="new">' + _hidden(keep) +
               f'<label>Search {hint} <input type="search" name="q" value="{h(q)}" id="q"></label> '
               '<button type="submit" id="search">Search</button>',
               f'<ul class="results" id="found">{items}</ul>' if items else
               ("<p>No item matches.</p>" if q else "<p>Search items, tick the ones you like, then Recommend.</p>"),
               f'{_k_select(k)} <button type="submit" id="fold">Recommend</button></form>']
        if liked:
            body = self.service.recommend(s.name, "user_item", None, k, liked=liked)
            recs = body["recommendations"]
            titles = self.insights.titles([r[s.item_col] for r in recs], source)
            out.append(f"<h3>Recommended for a new user who liked {len(liked)} items</h3>"
                       + _ranked(recs, s.item_col, titles, self.title, "foldin"))
        out.append("</section>")
        return "".join(out)

    def popular(self, name: str, labels: str | None) -> str:
        s = self.service.summary(name)
        p = self.insights.popularity(s.name)
        source = self.source(labels)
        top_c, top_r = p.consumed[:10], p.recommended[:10]
        shown = p.recommended[:40]
        titles = self.insights.titles([i for i, _ in top_c + shown], source)
        parts = [f"<h1>Most consumed vs most recommended · {h(s.name)}</h1>",
                 '<div class="figures">',
                 figure("coverage (top 5)", f"{p.coverage:.1%}", "coverage"),
                 figure(f"to the {p.head_size} most consumed items", f"{p.popularity_bias:.1%}", "bias"),
                 figure("their share of interactions", f"{p.head_share_of_interactions:.1%}", "head"),
                 figure("items recommended", f"{len(p.recommended)} of {p.n_items}", "recommended"),
                 "</div>",
                 f"<p>Coverage: the share of the catalogue in at least one user's top {TOP_N}. Popularity bias: the "
                 f"share of all top-{TOP_N} slots going to the popular head (the 10% most consumed items), next to "
                 "that head's share of the training interactions.</p>",
                 '<div class="cols"><section class="card"><h2>10 most consumed</h2>',
                 _counted(top_c, titles, self.title, "consumed", "users"),
                 f'</section><section class="card"><h2>10 most recommended (top {TOP_N} of {p.n_users} users)</h2>',
                 _counted(top_r, titles, self.title, "recommended", "top-5 lists"), "</section></div>"]
        labels_ = [self.title(titles, i) for i, _ in shown]
        head = {j for j, (i, _) in enumerate(shown) if i in p.head_items}
        chart = svg.bar_chart(labels_, [float(n) for _, n in shown],
                              f"How often each item is in a user's top {TOP_N} (most recommended first)",
                              f"top-{TOP_N} lists", highlight=head)
        rest = len(p.recommended) - len(shown)
        parts.append(f'<section class="card"><h2>Distribution of recommended items</h2>{chart}'
                     f"<p>Red: items of the popular head (the {p.head_size} most consumed). "
                     + (f"{rest} more items, recommended less often, are not drawn. " if rest else "")
                     + f"{p.n_items - len(p.recommended)} items are in nobody's top {TOP_N}.</p></section>")
        return page(f"Popularity · {s.name}", "".join(parts), s.name)


def _hidden(values: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{h(k)}" value="{h(v)}">' for k, v in values.items())


def _k_select(k: int) -> str:
    choices = sorted({5, 10, 20, k})
    opts = "".join(f'<option value="{c}"{" selected" if c == k else ""}>{c}</option>' for c in choices)
    return f'<label>k <select name="k">{opts}</select></label>'


def _ranked(recs: list[dict], item_col: str, titles: dict[str, str], title: Any, cls: str = "recs") -> str:
    if not recs:
        return "<p>No recommendations.</p>"
    rows = "".join(f'<li data-item="{h(r[item_col])}">{h(title(titles, r[item_col]))} '
                   f'<small>(score {fmt(r.get("score"))})</small></li>' for r in recs)
    return f'<ol class="{cls}">{rows}</ol>'


def _counted(pairs: list[tuple[Any, int]], titles: dict[str, str], title: Any, cls: str, unit: str) -> str:
    rows = "".join(f'<tr><td class="num">{n}</td><td>{h(title(titles, i))}</td><td class="num">{c}</td></tr>'
                   for n, (i, c) in enumerate(pairs, 1))
    return f'<table class="{cls}"><thead><tr><th>#</th><th>item</th><th class="num">{h(unit)}</th></tr></thead>' \
           f"<tbody>{rows}</tbody></table>"


def error_page(exc: Exception) -> HTMLResponse:
    message = exc.message if isinstance(exc, ServeError) else str(exc) or type(exc).__name__
    body = f'<h1>Error</h1><p class="error">{h(message)}</p><p><a href="/">Back to the models</a></p>'
    return HTMLResponse(page("Error", body), status_code=status_for(exc))


def add_pages(app: FastAPI, service: Service, labels: str | None = None) -> Pages:
    pages = Pages(service, labels)

    def render(make: Any) -> HTMLResponse:
        try:
            return HTMLResponse(make())
        except (ServeError, errors.Error) as exc:
            return error_page(exc)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return render(pages.index)

    @app.get("/m/{name}", include_in_schema=False, response_class=HTMLResponse)
    def model(name: str) -> HTMLResponse:
        return render(lambda: pages.model(name))

    @app.get("/m/{name}/prefs", include_in_schema=False, response_class=HTMLResponse)
    def prefs(name: str, user: str | None = None, q: str | None = None, liked: list[str] = Query([]),
              k: int = Query(10, ge=1, le=100), labels: str | None = None) -> HTMLResponse:
        return render(lambda: pages.prefs(name, user or None, q or None, list(dict.fromkeys(liked)), k, labels))

    @app.get("/m/{name}/popular", include_in_schema=False, response_class=HTMLResponse)
    def popular(name: str, labels: str | None = None) -> HTMLResponse:
        return render(lambda: pages.popular(name, labels))

    return pages

