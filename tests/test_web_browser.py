"""The web app in a real headless Chromium against a live `rag serve`, on SQLite and PostgreSQL.

Debian's chromium and chromium-driver are driven by Selenium through /usr/bin/chromedriver; Selenium
Manager (which would download a browser or a driver) is made to fail if anything calls it.
Screenshots (desktop and a 375-px phone) go to RAG_TEST_ARTIFACTS, or a tmp folder printed in the
output. Skipped when chromium is missing, unless RAG_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ingest import queue
from ingest.pipeline import Ingestor
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.errors import RagError
from rag.settings import Settings

from .conftest import DB_KINDS, fresh_database
from .helpers import HANDBOOK, copy_tree, free_port, make_user, run_job, wait_until_serving

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ASK_ROUTE = "/v1/conversations/{conversation_id}/messages"  # where the Ask page sends questions
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
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _product_env(data: Path, db_url: str, drive: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(data),
        RAG_DATABASE_URL=db_url,
        RAG_GENERATOR="extractive",
        RAG_MODE="development",
        RAG_INGEST_ROOTS=str(drive),
        RAG_AUDIT_CHECKPOINT_FILE=str(data.parent / "audit-checkpoint.json"),  # the operator's, outside the DB
    )
    return env


class Worker(threading.Thread):
    """`rag worker`'s loop (claim the oldest queued job, run it) in this process, with the session's
    embedder: the jobs the admin starts in the browser run as the worker would run them."""

    def __init__(self, settings: Settings, embedder) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(settings)
        self.factory = make_sessionmaker(self.engine)
        self.ingestor = Ingestor(settings, self.engine, self.factory, embedder, parse_workers=0)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.factory() as session:
                job = queue.claim_next(session, "browser-test")
            if job is None:
                self.stopping.wait(0.3)
                continue
            try:
                self.ingestor.run(job.id)
            except RagError:
                pass  # the job is marked failed, as the worker leaves it

    def stop(self) -> None:
        self.stopping.set()
        self.join(120)
        self.engine.dispose()


class App:
    """A live server with four users: employees alice and bob, admin ada, auditor audra."""

    def __init__(self, port: int, keys: dict[str, str], shots: Path, kind: str, drive: Path, env: dict) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.keys, self.shots, self.kind, self.drive, self.env = keys, shots, kind, drive, env


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
        drive = root / "drive"
        (drive / "incoming" / "broken").mkdir(parents=True)
        (drive / "incoming" / "okapi-care.md").write_text(
            "# Okapi care\n\nThe okapi enclosure is cleaned every Tuesday by the facilities team.\n"
        )
        (drive / "incoming" / "broken" / "tapir-notes.md").write_text("# Tapir\n\nTapirs are fed at noon.\n")
        (drive / "incoming" / "broken" / ".rag-access.yaml").write_text("groups: [everyone]\nowner: nobody\n")
        env = _product_env(root / "data", db_url, drive)
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
        worker = Worker(settings.model_copy(update={"ingest_roots": [drive]}), real_embedder)
        worker.start()
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
            yield App(port, keys, shots, request.param, drive, env)
        finally:
            server.terminate()
            server.wait(30)
            worker.stop()


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


def test_a_conversation_survives_a_reload_and_stays_private(app, browser):
    driver = browser
    sign_in(driver, app, "alice")
    driver.get(app.base + "/ask")
    question = QUESTION
    first = ask(driver, question)
    assert first.find_elements(By.CSS_SELECTOR, ".answer .chip")
    wait(driver).until(lambda d: "/ask/" in d.current_url)
    conversation_url = driver.current_url
    cid = conversation_url.rsplit("/", 1)[1]
    entry = driver.find_element(By.CSS_SELECTOR, f'#conversation-list li[data-conversation="{cid}"]')
    assert question in entry.text and "1 question" in entry.text
    ask(
        driver, "And when is a doctor's note required for sick leave?"
    )  # a follow-up, with the first exchange as history
    driver.refresh()  # kept server-side: the thread is back, with its citations and ratings
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".answer-box[aria-busy='false']")) == 2)
    questions = [q.text for q in driver.find_elements(By.CSS_SELECTOR, "#thread .turn.question")]
    assert questions == [question, "And when is a doctor's note required for sick leave?"]
    reloaded = driver.find_elements(By.CSS_SELECTOR, ".answer-box")[0]
    assert reloaded.find_elements(By.CSS_SELECTOR, ".sources .source") and reloaded.find_elements(
        By.CSS_SELECTOR, ".feedback"
    )
    assert open_first_source(driver, reloaded).text.strip()  # the citation still opens, highlighted
    driver.find_element(By.CSS_SELECTOR, ".dialog-close button").click()
    title = driver.find_element(By.ID, "rename-title")
    title.clear()
    title.send_keys("Sick leave <script>window.__xss='title'</script>")
    driver.find_element(By.ID, "rename-submit").click()
    wait(driver).until(lambda d: "Renamed" in d.find_element(By.ID, "conversation-status").text)
    shoot(driver, app, "ask-conversation")
    driver.set_window_size(*PHONE)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    driver.set_window_size(*DESKTOP)
    assert width <= PHONE[0]  # a long name wraps on a phone
    driver.refresh()
    assert driver.find_element(By.ID, "conversation-title").text == "Sick leave <script>window.__xss='title'</script>"
    no_script_ran(driver)
    alice = session_cookie(driver)
    # another employee: not in their list, a 404 page for its address, a 404 from the API
    sign_in(driver, app, "bob")
    driver.get(app.base + "/ask")
    assert "Sick leave" not in driver.find_element(By.ID, "conversation-list").text
    driver.get(conversation_url)
    assert driver.find_element(By.ID, "error-title").text.startswith("404")
    bob = session_cookie(driver)
    assert httpx.get(f"{app.base}/v1/conversations/{cid}", cookies=bob).status_code == 404
    assert httpx.get(f"{app.base}/v1/conversations/{cid}", cookies=alice).status_code == 200
    # deleted by its owner: gone from the list and from its address
    sign_in(driver, app, "alice")
    driver.get(conversation_url)
    driver.find_element(By.ID, "delete-conversation").click()
    wait(driver).until(ec.alert_is_present()).accept()
    wait(driver).until(lambda d: d.current_url == app.base + "/ask")
    assert not driver.find_elements(By.CSS_SELECTOR, f'#conversation-list li[data-conversation="{cid}"]')
    assert httpx.get(f"{app.base}/v1/conversations/{cid}", cookies=session_cookie(driver)).status_code == 404


def test_admin_starts_an_ingest_watches_it_and_retries_failed_files(app, browser):
    driver = browser
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/ingest")
    assert driver.find_element(By.ID, "ingest-root").get_attribute("value") == str(app.drive.resolve())
    driver.find_element(By.ID, "ingest-sub").send_keys("incoming")
    collection = driver.find_element(By.ID, "ingest-collection")
    collection.clear()
    collection.send_keys("drive")
    driver.find_element(By.ID, "ingest-groups").send_keys("everyone")
    driver.find_element(By.ID, "ingest-start").click()
    wait(driver).until(lambda d: d.find_element(By.ID, "ingest-status").text.startswith("Started job"))
    job_id = driver.find_element(By.ID, "ingest-status").text.split()[2].rstrip(".")
    job = driver.find_element(By.ID, f"job-{job_id}")
    states = set()

    def done(_):
        states.add(job.get_attribute("data-state"))
        return job.get_attribute("data-state") in ("succeeded", "failed")

    wait(driver, 180).until(done)
    assert job.get_attribute("data-state") == "succeeded", job.text
    assert states & {"queued", "running"}  # followed live, not only shown at the end
    bar = job.find_element(By.CSS_SELECTOR, "progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "2"
    counts = job.find_element(By.CSS_SELECTOR, ".counts").text
    assert "2 of 2 files: 1 indexed" in counts and "1 failed" in counts
    failure = job.find_element(By.CSS_SELECTOR, ".failures li").text
    assert "tapir-notes.md" in failure and "invalid .rag-access.yaml" in failure
    shoot(driver, app, "admin-ingest")
    # the failure is listed among the documents too, with its reason
    driver.get(app.base + "/admin/documents?path=incoming")
    assert "tapir-notes.md" in driver.find_element(By.ID, "failures").text
    assert "okapi-care.md" in driver.find_element(By.CSS_SELECTOR, "main table.stack").text
    # the admin fixes the folder's policy and retries the failed files
    (app.drive / "incoming" / "broken" / ".rag-access.yaml").write_text("groups: [everyone]\n")
    driver.get(app.base + "/admin/ingest")
    driver.find_element(By.CSS_SELECTOR, f"#job-{job_id} button.retry").click()
    wait(driver).until(lambda d: "Retrying the failed files" in d.find_element(By.ID, "ingest-status").text)
    retry_id = driver.find_element(By.ID, "ingest-status").text.rsplit(" ", 1)[1].rstrip(".")
    retry = driver.find_element(By.ID, f"job-{retry_id}")
    wait(driver, 180).until(lambda d: retry.get_attribute("data-state") in ("succeeded", "failed"))
    counts = retry.find_element(By.CSS_SELECTOR, ".counts").text
    assert (
        retry.get_attribute("data-state") == "succeeded" and "1 indexed, 1 unchanged" in counts and "0 failed" in counts
    )
    driver.get(app.base + "/admin/documents?path=incoming")
    assert "tapir-notes.md" in driver.find_element(By.CSS_SELECTOR, "main table.stack").text
    assert not driver.find_elements(By.ID, "failures")  # its latest ingestion succeeded
    driver.find_element(By.ID, "f-path").send_keys(Keys.END, Keys.BACKSPACE * 8, "okapi")
    driver.find_element(By.ID, "filter-documents").click()
    wait(driver).until(lambda d: "path=okapi" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "main table.stack tbody tr")
    assert len(rows) == 1 and "okapi-care.md" in rows[0].text
    shoot(driver, app, "admin-documents-filtered")


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
    # the .txt file, under its hostile name; every sentence of it holds markup, so its quote is the filtered
    # text (not verbatim, nothing to highlight): check the passage as stored
    open_first_source(driver, answer, containing="onerror", quoted=False)
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
    driver.find_element(By.ID, "f-route").send_keys(ASK_ROUTE)
    driver.find_element(By.ID, "audit-filter").click()
    wait(driver).until(lambda d: "text=vacation" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert rows and all("alice" in row.text and ASK_ROUTE in row.text for row in rows)
    checkpoint = subprocess.run(  # the operator's `rag audit checkpoint`, as cron would run it
        [sys.executable, "-m", "cli", "audit", "checkpoint"], env=app.env, capture_output=True, text=True
    )
    assert checkpoint.returncode == 0, checkpoint.stderr
    head = json.loads(Path(app.env["RAG_AUDIT_CHECKPOINT_FILE"]).read_text())["head_seq"]
    driver.find_element(By.ID, "verify-chain").click()
    wait(driver).until(lambda d: d.find_element(By.ID, "verify-result").text.startswith("Chain"))
    verdict = driver.find_element(By.ID, "verify-result").text
    assert verdict.startswith("Chain intact: ") and f"last checkpoint #{head} " in verdict, verdict
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
    assert QUESTION in exported.text and ASK_ROUTE in exported.text


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
    Select(driver.find_element(By.CSS_SELECTOR, "#user-dora select[name='role']")).select_by_value("admin")
    driver.find_element(By.CSS_SELECTOR, "#user-dora form.user-edit button[type='submit']").click()
    wait(driver).until(lambda d: "Saved dora: role admin" in d.find_element(By.ID, "users-status").text)
    assert driver.find_element(By.CSS_SELECTOR, "#user-dora .user-role").get_attribute("textContent") == "admin"
    own = driver.find_element(By.CSS_SELECTOR, "#user-ada select[name='role']")
    assert not own.is_enabled()  # another admin changes yours
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
    assert "Manage documents" in driver.find_element(By.CSS_SELECTOR, "header nav").text  # her new role
    dora = session_cookie(driver)
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/users")
    driver.find_element(By.CSS_SELECTOR, "#user-dora .revoke").click()
    wait(driver).until(lambda d: "Revoked key" in d.find_element(By.ID, "users-status").text)
    assert httpx.get(app.base + "/v1/documents", cookies=dora).status_code == 401  # her session ended with the key


UNNAMED_CONTROLS = """
const named = function (node) {
  if (node.getAttribute("aria-label") || node.getAttribute("aria-labelledby")) return true;
  if (node.id && document.querySelector('label[for="' + node.id + '"]')) return true;
  if (node.closest("label")) return true;
  return ["BUTTON", "A"].includes(node.tagName) && node.textContent.trim() !== "";
};
return Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button, a[href]"))
  .filter(function (node) { return !named(node); })
  .map(function (node) { return node.outerHTML.slice(0, 120); });
"""


def focused(driver) -> str:
    return driver.execute_script(
        "const a = document.activeElement; return a.id || a.className || a.tagName.toLowerCase();"
    )


def tab_to(driver, wanted, limit: int = 40) -> None:
    """Presses Tab until the focused element matches (the keyboard user's way through the page)."""
    for _ in range(limit):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if wanted(driver.switch_to.active_element):
            return
    raise AssertionError(f"Tab never reached it; focus is on {focused(driver)}")


def test_pages_name_their_controls_fit_a_phone_and_work_with_the_keyboard(app, browser):
    driver = browser
    pages = {
        "alice": ("/ask", "/search", "/documents"),
        "ada": (
            "/admin/documents",
            "/admin/ingest",
            "/admin/routing",
            "/admin/status",
            "/admin/users",
            "/admin/feedback",
        ),
        "audra": ("/audit",),
    }
    for user, paths in pages.items():
        sign_in(driver, app, user)
        for path in paths:
            driver.get(app.base + path)
            assert driver.execute_script(UNNAMED_CONTROLS) == [], (user, path)
            driver.set_window_size(*PHONE)
            width = driver.execute_script("return document.documentElement.scrollWidth")
            driver.set_window_size(*DESKTOP)
            assert width <= PHONE[0], (user, path, width)  # no sideways scrolling on a 375-px phone
    # an employee asks and opens a source with the keyboard alone
    sign_in(driver, app, "alice")
    driver.get(app.base + "/ask")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"  # the first stop skips the navigation
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.current_url.endswith("#main")
    thread = driver.find_element(By.ID, "thread")
    assert thread.get_attribute("aria-live") == "polite"  # a screen reader hears each answer as it arrives
    tab_to(driver, lambda e: e.get_attribute("id") == "question")
    driver.switch_to.active_element.send_keys(QUESTION, Keys.ENTER)
    wait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".answer-box[aria-busy='false'] .chip"))
    assert focused(driver) == "question"  # focus is back in the question box for the next one
    tab_to(driver, lambda e: "chip" in (e.get_attribute("class") or ""))
    assert driver.switch_to.active_element.get_attribute("aria-label").startswith("Source ")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver).until(ec.visibility_of_element_located((By.ID, "passage")))
    wait(driver).until(lambda d: d.find_elements(By.ID, "passage-quote"))
    assert driver.execute_script("return document.getElementById('passage').contains(document.activeElement)")
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(driver).until(lambda d: not d.find_element(By.ID, "passage").is_displayed())
    assert "chip" in (driver.switch_to.active_element.get_attribute("class") or "")  # focus returns to the chip
    # an admin explains a route with the keyboard: a form like the others
    sign_in(driver, app, "ada")
    driver.get(app.base + "/admin/routing")
    tab_to(driver, lambda e: e.get_attribute("id") == "explain-question")
    driver.switch_to.active_element.send_keys("How many vacation days?")
    tab_to(driver, lambda e: e.get_attribute("id") == "explain-user")
    Select(driver.switch_to.active_element).select_by_value("alice")
    driver.find_element(By.ID, "explain-question").send_keys(Keys.ENTER)
    wait(driver).until(lambda d: d.find_element(By.ID, "explain-result").is_displayed())
    assert "alice" in driver.find_element(By.ID, "explain-for").text
    assert driver.find_element(By.ID, "explain-target").text.startswith("local")
    assert "time-off.md" in driver.find_element(By.ID, "explain-passages").text
    shoot(driver, app, "admin-routing")
    driver.get(app.base + "/admin/status")
    wait(driver).until(lambda d: d.find_element(By.ID, "ready-state").text != "Checking…")
    assert driver.find_element(By.ID, "ready-state").text == "Ready"
    assert int(driver.find_element(By.ID, "index-chunks").text) > 0
    assert "extractive" in driver.find_element(By.ID, "model-generator").text
    shoot(driver, app, "admin-status")


def test_artifacts_were_written(app):
    names = {p.name for p in app.shots.glob("*.png")}
    pages = ("signin", "ask", "ask-citation", "audit", "audit-record", "admin-documents", "admin-feedback")
    pages += ("admin-users", "forbidden", "ask-conversation", "admin-ingest", "admin-documents-filtered")
    pages += ("admin-routing", "admin-status")
    for page in pages:
        assert {f"{page}-desktop.png", f"{page}-phone.png"} <= names, page
