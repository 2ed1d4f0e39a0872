"""The web app in a real headless Chromium against a live `rag serve`, on SQLite and PostgreSQL.

Debian's chromium and chromium-driver are driven by Selenium through /usr/bin/chromedriver; Selenium
Manager (which would download a browser or a driver) is made to fail if anything calls it.
Screenshots (desktop and a 375-px phone) go to RAG_TEST_ARTIFACTS, or a tmp folder printed in the
output. Skipped when chromium is missing, unless RAG_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.settings import Settings

from .conftest import DB_KINDS, fresh_database
from .helpers import HANDBOOK, copy_tree, free_port, make_user, run_job, wait_until_serving

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (375, 812)
DESKTOP = (1280, 900)
QUESTION = "How many vacation days does a full-time employee get?"
PAYLOAD_QUESTION = "When is the zebra payroll cutoff?"
PAYLOAD = """Zebra payroll notice <script>window.__xss = "script"</script>

The zebra payroll cutoff is the 12th <img src=x onerror="window.__xss='onerror'"> day of each month.

Forms are at <a href="javascript:window.__xss='link'">the portal</a> and [the wiki](javascript:window.__xss='md').
<style>body { display: none }</style>
"""

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("RAG_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"RAG_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing")
    pytest.skip(
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once the browser is known to exist
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.common.selenium_manager import SeleniumManager  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _product_env(data: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(data), RAG_DATABASE_URL=db_url, RAG_GENERATOR="extractive", RAG_MODE="development")
    return env


class App:
    """A live server with four users: employees alice and bob, admin ada, auditor audra."""

    def __init__(self, port: int, keys: dict[str, str], shots: Path, kind: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.keys, self.shots, self.kind = keys, shots, kind


@pytest.fixture(scope="module", params=DB_KINDS)
def app(request, tmp_path_factory, real_embedder):
    root = tmp_path_factory.mktemp("web")
    shots = Path(os.environ.get("RAG_TEST_ARTIFACTS", root / "artifacts")) / f"screenshots-{request.param}"
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {shots}")
    with fresh_database(request.param, root) as db_url, pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("RAG_") and not name.startswith(("RAG_TEST_", "RAG_REQUIRE_")):
                mp.delenv(name)
        env = _product_env(root / "data", db_url)
        docs = copy_tree(HANDBOOK, root / "handbook")
        (docs / "payroll").mkdir()
        (docs / "payroll" / "zebra <img src=x onerror=window.__xss=1>.txt").write_text(PAYLOAD)
        (docs / "payroll" / "zebra-notes.md").write_text(
            "# Zebra <script>window.__xss='title'</script> notes\n\n" + PAYLOAD
        )
        started = time.perf_counter()
        settings = Settings(data_dir=root / "data", database_url=db_url, mode="development", _env_file=None)
        engine = make_engine(settings)
        migrate(engine)
        # in-process with the session's embedder (the same model `rag ingest` loads): one model load fewer
        run_job(
            settings,
            (engine, make_sessionmaker(engine)),
            real_embedder,
            docs,
            collection="handbook",
            groups=["everyone"],
        )
        engine.dispose()
        keys = {
            "alice": make_user(settings, "alice", "employee", ("everyone",)),
            "bob": make_user(settings, "bob", "employee", ("sales",)),
            "ada": make_user(settings, "ada", "admin", ()),
            "audra": make_user(settings, "audra", "auditor", ()),
        }
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_serving(server, port)
            print(f"ingest + serve ready in {time.perf_counter() - started:.1f} s ({request.param})")
            yield App(port, keys, shots, request.param)
        finally:
            server.terminate()
            server.wait(30)


@pytest.fixture(scope="module")
def browser():
    def no_download(*args, **kwargs):
        raise AssertionError("Selenium Manager was invoked: the test must use the system chromedriver only")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeleniumManager, "binary_paths", no_download)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
            options.add_argument(arg)
        options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_script_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def wait(driver, timeout: float = 30):
    return WebDriverWait(driver, timeout)


def shoot(driver, app: App, name: str) -> None:
    """Desktop and phone-width screenshots of the current page."""
    driver.save_screenshot(str(app.shots / f"{name}-desktop.png"))
    driver.set_window_size(*PHONE)
    time.sleep(0.2)
    driver.save_screenshot(str(app.shots / f"{name}-phone.png"))
    driver.set_window_size(*DESKTOP)


def sign_in(driver, app: App, user: str) -> None:
    driver.delete_all_cookies()
    driver.get(app.base + "/signin")
    driver.find_element(By.ID, "api_key").send_keys(app.keys[user])
    driver.find_element(By.ID, "signin-submit").click()
    wait(driver).until(lambda d: "/signin" not in d.current_url)


def session_cookie(driver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies() if c["name"] == "rag_session"}


def no_script_ran(driver) -> None:
    assert driver.execute_script("return window.__xss === undefined"), driver.execute_script("return window.__xss")
    assert not driver.find_elements(By.CSS_SELECTOR, "img, main script, main style, a[href^='javascript:']")


def ask(driver, question: str):
    box = driver.find_element(By.ID, "question")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    answers = driver.find_elements(By.CSS_SELECTOR, ".answer-box")
    wait(driver, 60).until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".answer-box[aria-busy='false']")) == len(answers)
            and d.find_elements(By.CSS_SELECTOR, ".answer-box[aria-busy='false']")
        )
    )
    return driver.find_elements(By.CSS_SELECTOR, ".answer-box")[-1]


def open_first_source(driver, answer, containing: str = "", quoted: bool = True):
    source = next(s for s in answer.find_elements(By.CSS_SELECTOR, ".sources .source") if containing in s.text)
    source.find_element(By.CSS_SELECTOR, ".chip").click()
    wait(driver).until(ec.visibility_of_element_located((By.ID, "passage")))
    if not quoted:  # the passage as stored; its quote may have lost markup (links, images) on the way
        wait(driver).until(lambda d: d.find_element(By.ID, "passage-text").text.strip())
        return None
    wait(driver).until(
        lambda d: d.find_elements(By.ID, "passage-quote") or "could" in d.find_element(By.ID, "passage-text").text
    )
    return driver.find_element(By.ID, "passage-quote")


def test_employee_asks_and_opens_a_highlighted_citation(app, browser):
    driver = browser
    driver.delete_all_cookies()
    driver.get(app.base + "/signin")
    shoot(driver, app, "signin")
    sign_in(driver, app, "alice")
    assert driver.current_url == app.base + "/ask"
    nav = driver.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Ask" in nav and "Audit" not in nav and "Manage" not in nav
    answer = ask(driver, QUESTION)
    text = answer.find_element(By.CSS_SELECTOR, ".answer").text
    assert "27 vacation days" in text
    assert answer.find_elements(By.CSS_SELECTOR, ".answer .sentence")  # built from the SSE delta events
    assert answer.find_elements(By.CSS_SELECTOR, ".answer .chip")  # [n] marks became citation chips
    assert "Local" in answer.find_element(By.CSS_SELECTOR, ".badge").text
    source = answer.find_element(By.CSS_SELECTOR, ".sources .source")
    quote = source.find_element(By.CSS_SELECTOR, ".source-quote").text
    assert "time-off.md" in source.text and quote
    mark = open_first_source(driver, answer)
    assert mark.text.strip() == quote.strip()
    assert "27 vacation days" in mark.text
    assert "time-off.md" in driver.find_element(By.ID, "passage-path").text
    assert len(driver.find_element(By.ID, "passage-version").text.split("sha256 ")[1]) == 64
    passage = driver.find_element(By.ID, "passage-text").text
    assert len(passage) > len(mark.text)  # the whole passage, with the quote highlighted inside it
    shoot(driver, app, "ask-citation")
    driver.find_element(By.CSS_SELECTOR, ".dialog-close button").click()
    answer.find_element(By.CSS_SELECTOR, ".feedback input").send_keys("Please add the part-time rule")
    answer.find_element(By.CSS_SELECTOR, ".rate-down").click()
    wait(driver).until(lambda d: "recorded" in answer.find_element(By.CSS_SELECTOR, ".feedback").text)
    assert answer.find_element(By.CSS_SELECTOR, ".rate-down").get_attribute("aria-pressed") == "true"
    shoot(driver, app, "ask")


def test_employee_gets_no_audit_or_admin_page(app, browser):
    driver = browser
    sign_in(driver, app, "alice")
    cookies = session_cookie(driver)
    for path in ("/audit", "/audit/1", "/admin/documents"):
        driver.get(app.base + path)
        assert driver.find_element(By.ID, "error-title").text.startswith("403"), path
        r = httpx.get(app.base + path, cookies=cookies, headers={"Accept": "text/html"})
        assert r.status_code == 403, path
        r = httpx.get(app.base + "/v1/audit/records", cookies=cookies)
        assert r.status_code == 403
    shoot(driver, app, "forbidden")


def test_document_with_an_xss_payload_stays_inert(app, browser):
    driver = browser
    sign_in(driver, app, "alice")
    answer = ask(driver, PAYLOAD_QUESTION)
    assert "zebra" in answer.text.lower()
    open_first_source(driver, answer, containing="onerror", quoted=False)  # the .txt file, under its hostile name
    visible = driver.find_element(By.ID, "passage").text
    assert "onerror=" in visible and "<script>" in visible, visible  # the payload arrived, as text
    no_script_ran(driver)
    shoot(driver, app, "xss-citation")
    driver.find_element(By.CSS_SELECTOR, ".dialog-close button").click()
    driver.get(app.base + "/search")
    driver.find_element(By.ID, "q").send_keys("zebra payroll cutoff")
    driver.find_element(By.ID, "search-submit").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .result"))
    assert "onerror" in driver.find_element(By.ID, "results").text
    no_script_ran(driver)
    driver.get(app.base + "/documents")
    assert "onerror=window.__xss=1" in driver.find_element(By.TAG_NAME, "main").text  # a hostile file name
    no_script_ran(driver)
    shoot(driver, app, "documents")
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/documents")
    assert "onerror" in driver.find_element(By.TAG_NAME, "main").text
    no_script_ran(driver)


def test_cross_site_form_post_is_refused(app, browser):
    """A page on another site (localhost is not 127.0.0.1's site) posts the sign-out form."""
    driver = browser
    sign_in(driver, app, "alice")
    before = session_cookie(driver)
    attack = (
        f'<form id="f" method="post" action="{app.base}/signout"><input name="csrf_token" value="guess"></form>'
        '<script>document.getElementById("f").submit()</script>'
    ).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attack)

        def log_message(self, *args):
            pass

    Attacker.timeout = 2  # the browser's idle pre-connections must not hold the server open
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    evil.daemon_threads = True
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://localhost:{evil.server_port}/")
        wait(driver).until(lambda d: d.current_url.startswith(app.base))  # the form was sent
    finally:
        evil.shutdown()
    assert driver.current_url == app.base + "/signin"  # refused: no session cookie went with it
    assert httpx.get(app.base + "/ask", cookies=before).status_code == 200  # the session lives on
    # the same post with the cookie but without the page's token, from a foreign Origin: refused too
    r = httpx.post(
        app.base + "/signout", cookies=before, data={"csrf_token": "guess"}, headers={"Origin": "http://localhost"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.get(app.base + "/ask", cookies=before).status_code == 200


def test_auditor_finds_the_question_and_opens_its_record(app, browser):
    driver = browser
    sign_in(driver, app, "alice")
    alice = session_cookie(driver)
    driver.find_element(By.ID, "signout").click()
    wait(driver).until(lambda d: d.current_url == app.base + "/signin")
    r = httpx.get(app.base + "/ask", cookies=alice, headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/signin"  # sign-out ended the session
    assert httpx.post(app.base + "/v1/search", cookies=alice, json={"query": "x"}).status_code == 401

    sign_in(driver, app, "audra")
    assert driver.current_url == app.base + "/audit"
    assert "Ask" not in driver.find_element(By.CSS_SELECTOR, "header nav").text
    driver.find_element(By.ID, "f-text").send_keys("vacation days")
    driver.find_element(By.ID, "f-route").send_keys("/v1/query")
    driver.find_element(By.ID, "audit-filter").click()
    wait(driver).until(lambda d: "text=vacation" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert rows and all("alice" in row.text and "/v1/query" in row.text for row in rows)
    driver.find_element(By.ID, "verify-chain").click()
    wait(driver).until(lambda d: d.find_element(By.ID, "verify-result").text.startswith("Chain"))
    assert driver.find_element(By.ID, "verify-result").text.startswith("Chain intact: ")
    shoot(driver, app, "audit")
    csv_link = driver.find_element(By.ID, "export-csv").get_attribute("href")
    rows[0].find_element(By.CSS_SELECTOR, ".record-link").click()
    wait(driver).until(lambda d: d.find_elements(By.ID, "record-question"))
    assert driver.find_element(By.ID, "record-question").text == QUESTION
    assert "27 vacation days" in driver.find_element(By.ID, "record-answer").text
    assert "alice" in driver.find_element(By.ID, "record-principal").text
    assert '"via": "session"' in driver.find_element(By.ID, "record-detail").text
    shoot(driver, app, "audit-record")
    exported = httpx.get(csv_link, cookies=session_cookie(driver))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert QUESTION in exported.text and "/v1/query" in exported.text


def test_admin_relabels_a_document(app, browser):
    driver = browser
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/documents")
    row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "tbody tr") if "time-off.md" in r.text)
    doc_id = row.get_attribute("id").removeprefix("doc-")
    select = row.find_element(By.CSS_SELECTOR, "select")
    select.find_element(By.CSS_SELECTOR, "option[value='confidential']").click()
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(driver).until(lambda d: f"Saved document {doc_id}" in d.find_element(By.ID, "relabel-status").text)
    shoot(driver, app, "admin-documents")
    driver.refresh()
    label = driver.find_element(By.CSS_SELECTOR, f"#doc-{doc_id} .label").text
    assert label == "confidential"
    driver.get(app.base + "/admin/feedback")  # the answer alice rated down, with her comment
    item = driver.find_element(By.CSS_SELECTOR, "#feedback-list .result")
    assert QUESTION in item.text and "Please add the part-time rule" in item.text and "alice" in item.text
    shoot(driver, app, "admin-feedback")
    # and the API sees the new label at once, as its own PATCH would have done
    r = httpx.get(app.base + "/v1/documents", headers={"Authorization": f"Bearer {app.keys['ada']}"})
    assert next(d for d in r.json() if d["id"] == int(doc_id))["label"] == "confidential"


def test_admin_creates_a_user_and_a_key_shown_once_that_signs_in(app, browser):
    driver = browser
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/users")
    assert "Auditors are managed on the host" in driver.find_element(By.ID, "user-audra").text
    driver.find_element(By.ID, "new-name").send_keys("dora")
    driver.find_element(By.ID, "new-groups").send_keys("everyone")
    driver.find_element(By.ID, "create-user").click()
    wait(driver).until(lambda d: d.find_elements(By.ID, "user-dora"))
    driver.find_element(By.CSS_SELECTOR, "#user-dora .issue-key").click()
    wait(driver).until(lambda d: d.find_element(By.ID, "new-key-value").get_attribute("value"))
    key = driver.find_element(By.ID, "new-key-value").get_attribute("value")
    assert key.startswith("rag_")
    shoot(driver, app, "admin-users")
    driver.refresh()
    assert key not in driver.page_source  # shown once: not in the page after a reload
    app.keys["dora"] = key
    sign_in(driver, app, "dora")
    assert driver.current_url == app.base + "/ask"
    dora = session_cookie(driver)
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/users")
    driver.find_element(By.CSS_SELECTOR, "#user-dora .revoke").click()
    wait(driver).until(lambda d: "Revoked key" in d.find_element(By.ID, "users-status").text)
    assert httpx.get(app.base + "/v1/documents", cookies=dora).status_code == 401  # her session ended with the key


def test_artifacts_were_written(app):
    names = {p.name for p in app.shots.glob("*.png")}
    pages = ("signin", "ask", "ask-citation", "audit", "audit-record", "admin-documents", "admin-feedback")
    pages += ("admin-users", "forbidden")
    for page in pages:
        assert {f"{page}-desktop.png", f"{page}-phone.png"} <= names, page
