"""The web pages of `sqlrec serve` (/): real uvicorn server on a loopback port, real models.

The HTML tests use httpx; the browser tests drive Debian's headless Chromium through Selenium
and chromium-driver (`apt-get install chromium chromium-driver`; .ci/run installs them), assert
on what the page shows and write screenshots to $SQLREC_TEST_ARTIFACTS (else a pytest temp
directory, printed).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import FAST, file_database, sqlrec_serve  # noqa: E402
from sqlrec.serve.insights import Insights  # noqa: E402
from sqlrec.serve.server import Server  # noqa: E402

LABELS = "SELECT movieId, title FROM movies"
CREATE = ("CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
          f"threshold = 4, evaluation = true, {FAST}")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pages") / "shop.duckdb"
    con = file_database(path, CREATE)
    con.execute("CREATE MODEL plain_rec FROM ratings PREDICT movieId "
                f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")
    con.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, "
                "CASE WHEN movieId = 139 THEN '<b>Bold</b> & \"Co\"' ELSE 'Movie ' || movieId END AS title, "
                "'drama' AS genre FROM ratings")
    con.close()
    return str(path)


@pytest.fixture(scope="module")
def server(db):
    with Server(db, port=0, labels=LABELS) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def text_of(html: str) -> str:
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- server-rendered HTML ---------------------------------------------------------------------


def test_the_model_picker_lists_the_models(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text
    assert re.findall(r'class="model" href="/m/(\w+)"', r.text) == ["movie_rec", "plain_rec"]


def test_pages_need_no_network_and_run_no_script(client):
    for path in ("/", "/m/movie_rec", "/m/movie_rec/prefs?user=2", "/m/movie_rec/popular"):
        html = client.get(path).text
        assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html), path


def test_a_known_user_gets_titled_recommendations(client):
    r = client.get("/m/movie_rec/prefs", params={"user": 2, "k": 5})
    assert r.status_code == 200
    recs = re.findall(r'<ol class="recs">(.*?)</ol>', r.text, re.S)[0]
    items = re.findall(r'data-item="(\d+)"', recs)
    api = client.get("/models/movie_rec/recommend", params={"user": 2, "k": 5}).json()["recommendations"]
    assert items == [str(x["movieId"]) for x in api]
    assert re.findall(r"<li data-item=\"\d+\">(Movie \d+|&lt;b&gt;Bold)", recs)  # titles, not ids
    assert "Seen by user 2 in training" in r.text and len(re.findall(r"<li>", r.text.split('class=seen>')[1].split("</ul>")[0])) == 10


def test_searching_and_liking_items_folds_in_a_new_user(client):
    r = client.get("/m/movie_rec/prefs", params={"q": "movie 10"})
    found = re.findall(r'name="liked" value="(\d+)"', r.text)
    assert found == [str(i) for i in range(100, 110)]
    r = client.get("/m/movie_rec/prefs", params={"liked": ["100", "101", "102"], "k": 10})
    assert r.status_code == 200
    folded = re.findall(r'data-item="(\d+)"', r.text.split('class="foldin"')[1])
    assert len(folded) == 10 and not {"100", "101", "102"} & set(folded)
    assert len(re.findall(r'value="10[012]" checked', r.text)) == 3  # the liked stay ticked
    api = client.post("/models/movie_rec/recommend", json={"liked": [100, 101, 102], "k": 10}).json()
    assert folded == [str(x["movieId"]) for x in api["recommendations"]]  # the API's fold-in


def test_labels_escape_html_and_request_values_stay_out_of_sql(client, db):
    r = client.get("/m/movie_rec/prefs", params={"q": "bold"})
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; &quot;Co&quot;" in r.text and "<b>Bold</b>" not in r.text
    r = client.get("/m/movie_rec/prefs", params={"q": "'; DROP TABLE movies; --"})
    assert r.status_code == 200 and "No item matches" in r.text
    r = client.get("/m/movie_rec/prefs", params={"labels": "movies; DROP TABLE movies", "q": "x"})
    assert r.status_code == 400 and "labels= names a table or view" in text_of(r.text)
    r = client.get("/m/movie_rec/prefs", params={"labels": "movies", "q": "Movie 12"})  # a table: id, title
    assert len(re.findall(r'name="liked"', r.text)) == 10
    assert "Movie" in client.get("/m/movie_rec/popular").text


def test_errors_are_pages_with_the_right_status(client):
    r = client.get("/m/nope")
    assert r.status_code == 404 and "no model named" in text_of(r.text) and "<h1>Error</h1>" in r.text
    r = client.get("/m/movie_rec/prefs", params={"user": "abc"})
    assert r.status_code == 400 and "not an integer" in text_of(r.text)
    assert client.get("/m/movie_rec/prefs", params={"k": 0}).status_code == 400
    assert client.get("/models").status_code == 200  # and the server goes on


def test_without_labels_items_are_searched_by_id(db):
    with Server(db, port=0) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.get("/m/plain_rec/prefs", params={"q": "13"})
        assert re.findall(r'name="liked" value="(\d+)"', r.text) == [str(i) for i in range(100, 140) if "13" in str(i)]
        assert "Search item ids" in r.text


def test_most_consumed_vs_most_recommended(client, server):
    p = Insights(server.service).popularity("movie_rec")
    html = client.get("/m/movie_rec/popular").text
    consumed = re.findall(r"<td>([^<]*)</td><td class=\"num\">(\d+)</td>", html.split('class="consumed"')[1].split("</table>")[0])
    recommended = re.findall(r"<td>([^<]*)</td><td class=\"num\">(\d+)</td>",
                             html.split('class="recommended"')[1].split("</table>")[0])
    assert len(consumed) == 10 and len(recommended) == 10
    assert [int(n) for _, n in consumed] == [n for _, n in p.consumed[:10]]
    assert [int(n) for _, n in recommended] == [n for _, n in p.recommended[:10]]
    assert sum(n for _, n in p.recommended) == 60 * 5  # every user's top 5
    assert html.count('class="bar"') == min(40, len(p.recommended))
    assert f"<b>{p.coverage:.1%}</b>" in html and f"<b>{p.popularity_bias:.1%}</b>" in html
    assert 0 < p.coverage <= 1 and p.head_size == 4


def test_the_model_page_shows_metrics_curve_and_versions(client):
    html = client.get("/m/movie_rec").text
    metrics = re.findall(r"<tr><td>(\w+)</td><td class=\"num\">", html.split('class="metrics"')[1].split("</table>")[0])
    assert "precision_at_k" in metrics and "auc" in metrics and len(metrics) == 8
    assert html.count('class="line"') == 8 and 'data-series="ndcg_at_k"' in html
    assert "version 1" in html and len(re.findall("<tr>", html.split('class="versions"')[1].split("</table>")[0])) == 2
    plain = client.get("/m/plain_rec").text
    assert "No metrics" in plain and "No learning curve" in plain


# --- in headless Chromium ---------------------------------------------------------------------


def _driver(width: int, height: int):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as ChromeService

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=ChromeService(executable_path=chromedriver), options=options)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    given = os.environ.get("SQLREC_TEST_ARTIFACTS")
    path = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def phone():
    driver = _driver(412, 915)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def desktop():
    driver = _driver(1280, 1000)
    yield driver
    driver.quit()


def shoot(driver, path: Path) -> None:
    """A screenshot of the whole page (the window grown to the page's height)."""
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 140, 6000))
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


def click_and_wait(driver, element) -> None:
    """Click a link or submit button and wait for the next page to replace this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(d) -> bool:
        # Chromium 156 may answer a look-up of a node of the page being replaced with "Node with
        # given id does not belong to the document" instead of a stale reference: replaced too.
        try:
            return expected_conditions.staleness_of(old)(d)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise

    WebDriverWait(driver, 20).until(replaced)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def wider_than_the_window(driver) -> list[str]:
    """What sticks out of the window (nothing on a page that reads on a phone without scrolling sideways)."""
    return driver.execute_script(
        "if (document.documentElement.scrollWidth <= window.innerWidth + 1) return [];"
        "return Array.from(document.querySelectorAll('body *')).filter(e => !e.closest('.scroll') &&"
        " e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className"
        " + ' ' + Math.round(e.getBoundingClientRect().right) + '/' + window.innerWidth).slice(0, 5)"
        ".concat(['scrollWidth ' + document.documentElement.scrollWidth]);")


@pytest.mark.slow
def test_browser_picks_a_model_and_a_known_user(server, phone, artifacts):
    from selenium.webdriver.common.by import By

    phone.get(server.url + "/")
    links = phone.find_elements(By.CSS_SELECTOR, "a.model")
    assert [a.text for a in links] == ["movie_rec", "plain_rec"]
    shoot(phone, artifacts / "models.png")
    click_and_wait(phone, links[0])
    click_and_wait(phone, phone.find_element(By.LINK_TEXT, "Preferences"))
    phone.find_element(By.ID, "user").send_keys("3")
    click_and_wait(phone, phone.find_element(By.ID, "show"))
    recs = phone.find_elements(By.CSS_SELECTOR, "ol.recs li")
    assert len(recs) == 10 and all(re.match(r"(Movie \d+|<b>Bold</b>)", li.text) for li in recs)
    assert phone.find_element(By.TAG_NAME, "h1").text == "Preferences · movie_rec"
    assert wider_than_the_window(phone) == []
    shoot(phone, artifacts / "prefs_known_user_phone.png")


@pytest.mark.slow
def test_browser_folds_in_a_new_user_from_liked_items(server, phone, artifacts):
    from selenium.webdriver.common.by import By

    phone.set_window_size(412, 915)
    phone.get(server.url + "/m/movie_rec/prefs")
    phone.find_element(By.ID, "q").send_keys("movie 12")
    click_and_wait(phone, phone.find_element(By.ID, "search"))
    boxes = phone.find_elements(By.CSS_SELECTOR, "#found input[name=liked]")
    assert len(boxes) == 10
    for box in boxes[:3]:
        box.click()
    click_and_wait(phone, phone.find_element(By.ID, "fold"))
    folded = phone.find_elements(By.CSS_SELECTOR, "ol.foldin li")
    assert len(folded) == 10
    items = [li.get_attribute("data-item") for li in folded]
    assert not set(items) & {"120", "121", "122"}
    api = httpx.post(server.url + "/models/movie_rec/recommend", json={"liked": [120, 121, 122], "k": 10})
    assert items == [str(x["movieId"]) for x in api.json()["recommendations"]]  # the API's fold-in
    assert all(re.match(r"(Movie \d+|<b>Bold</b>)", li.text) for li in folded)  # titled
    assert "who liked 3 items" in phone.page_source
    shoot(phone, artifacts / "prefs_new_user_phone.png")


@pytest.mark.slow
def test_browser_shows_consumed_vs_recommended(server, desktop, artifacts):
    from selenium.webdriver.common.by import By

    desktop.get(server.url + "/m/movie_rec/popular")
    assert len(desktop.find_elements(By.CSS_SELECTOR, "table.consumed tbody tr")) == 10
    assert len(desktop.find_elements(By.CSS_SELECTOR, "table.recommended tbody tr")) == 10
    p = Insights(server.service).popularity("movie_rec")
    assert desktop.find_element(By.CSS_SELECTOR, ".figure.coverage b").text == f"{p.coverage:.1%}"
    assert desktop.find_element(By.CSS_SELECTOR, ".figure.bias b").text == f"{p.popularity_bias:.1%}"
    bars = desktop.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert len(bars) == len(p.recommended) and all(b.size["height"] > 0 for b in bars)
    left, right = desktop.find_elements(By.CSS_SELECTOR, ".cols > section")
    assert left.location["y"] == right.location["y"] and left.location["x"] < right.location["x"]  # side by side
    shoot(desktop, artifacts / "popular_desktop.png")


@pytest.mark.slow
def test_browser_shows_the_model_page(server, desktop, phone, artifacts):
    from selenium.webdriver.common.by import By

    desktop.set_window_size(1280, 1000)
    desktop.get(server.url + "/m/movie_rec")
    assert len(desktop.find_elements(By.CSS_SELECTOR, "table.metrics tbody tr")) == 8
    lines = desktop.find_elements(By.CSS_SELECTOR, "svg.chart polyline.line")
    assert len(lines) == 8 and all(len(line.get_attribute("points").split()) == 5 for line in lines)  # 5 epochs
    assert "Learning curve" in desktop.page_source
    shoot(desktop, artifacts / "model_desktop.png")
    phone.set_window_size(412, 915)
    phone.get(server.url + "/m/movie_rec/popular")
    assert wider_than_the_window(phone) == []
    shoot(phone, artifacts / "popular_phone.png")


@pytest.mark.slow
def test_sqlrec_serve_labels_option(db):
    with sqlrec_serve(db, "--labels", "movies") as (url, line):
        assert f"pages: {url}/" in line
        html = httpx.get(url + "/m/movie_rec/prefs", params={"user": 4, "k": 3}, timeout=30).text
        recs = html.split('<ol class="recs">')[1].split("</ol>")[0]
        assert len(re.findall(r"<li data-item=\"\d+\">(Movie \d+|&lt;b&gt;Bold)", recs)) == 3  # titled