"""The dashboard in a real headless browser (Debian's chromium + chromium-driver through
Selenium) against a real server: every page loads without console errors; records kcat
produced, with ``<script>`` in key and value, are shown as text and never run; the live
tail shows a record produced after the page opened; a group's lag drops after a commit;
a dead letter is requeued from the queue page.  Screenshots of each page go to the
test's tmp dir (and to $PYLOG_SCREENSHOTS, if set, for docs/screenshots/)."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time

import pytest

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver")

EVIL_KEY = "<script>window.pwned='key'</script>"
EVIL_VALUE = "<img src=x onerror=\"window.pwned='img'\"><script>window.pwned='value'</script>"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                              options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    out = tmp_path_factory.mktemp("screenshots")
    yield out
    keep = os.environ.get("PYLOG_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for png in out.glob("*.png"):
            shutil.copy(png, keep)


def kcat(server, *args, input: bytes | None = None):
    proc = subprocess.run(["kcat", "-b", server.bootstrap, *args], input=input,
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()


def wait(driver, cond, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(cond)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_page(driver, server, hash_: str, ready_css: str):
    driver.get(f"http://127.0.0.1:{server.http_port}/{hash_}")
    wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ready_css)))


def test_dashboard_pages_in_chromium(server, http, browser, shots):
    from confluent_kafka import Consumer, Producer, TopicPartition

    from pylog.broker.dead_letters import DeadLetterOrigin, dlq_headers
    http.post("/topics", {"topic": "web", "partitions": 2})
    for i in range(60):
        http.post("/topics", {"topic": f"bulk-{i:03d}", "partitions": 1})
    kcat(server, "-P", "-t", "web", "-p", "0", "-K", "|", "-H", "trace=<b>h</b>",
         input=f"{EVIL_KEY}|{EVIL_VALUE}\nplain|{{\"n\": 1}}\n".encode())
    for i in range(8):
        kcat(server, "-P", "-t", "web", "-p", "0", input=f"filler-{i}\n".encode())

    # Overview and the topic list (paged: 61 topics, 50 a page).
    open_page(browser, server, "#/", "#overview-cards .card")
    time.sleep(2.5)                               # two metrics ticks for the chart
    browser.save_screenshot(str(shots / "overview.png"))
    open_page(browser, server, "#/topics", "#topic-table table")
    assert "1-50 of 61" in text_of(browser, "#topic-pager")
    browser.save_screenshot(str(shots / "topics.png"))

    # Topic page: kcat's records, <script> shown as text and not run.
    open_page(browser, server, "#/topic/web", "table.records tr.record")
    values = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.records td.value")]
    keys = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.records td.key")]
    assert EVIL_VALUE in values and EVIL_KEY in keys
    assert "trace=<b>h</b>" in text_of(browser, "table.records td.headers")
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('#page script, #page img')"
                                  ".length") == 0
    # Live tail: a record produced after the page opened shows up.
    browser.find_element(By.ID, "live-start").click()
    wait(browser, lambda d: d.find_element(By.ID, "live-start").get_attribute("data-open"))
    kcat(server, "-P", "-t", "web", "-p", "0", input=b"after-open\n")
    wait(browser, lambda d: "after-open" in d.find_element(By.ID, "live-rows").text)
    browser.save_screenshot(str(shots / "topic.png"))
    # Hex view, and the produce form (a value with markup, shown back as text).
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.ID, "browse-format")).select_by_value("hex")
    wait(browser, lambda d: "66 69 6c 6c 65 72 2d 30" in d.find_element(By.ID, "records").text)
    browser.find_element(By.ID, "produce-key").send_keys("<i>form</i>")
    browser.find_element(By.ID, "produce-value").send_keys("<script>window.pwned='form'</script>")
    browser.find_element(By.ID, "produce-partition").send_keys("1")
    browser.find_element(By.ID, "produce").click()
    wait(browser, lambda d: "produced at 1@0" in d.find_element(By.ID, "toast").text)
    form = http.get("/api/topics/web/messages?partition=1")[2]["records"][0]
    assert form["key"] == "<i>form</i>"
    assert base64.b64decode(form["value"]) == b"<script>window.pwned='form'</script>"

    # Groups: lag drops on the page after a commit.
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "web-readers"})
    c.commit(offsets=[TopicPartition("web", 0, 2)], asynchronous=False)
    evil = Consumer({"bootstrap.servers": server.bootstrap, "group.id": EVIL_KEY})
    evil.commit(offsets=[TopicPartition("web", 0, 1)], asynchronous=False)
    evil.close()
    open_page(browser, server, "#/groups", "#group-table table")
    assert "web-readers" in text_of(browser, "#group-table")
    assert EVIL_KEY in text_of(browser, "#group-table")       # a group id, as text
    browser.save_screenshot(str(shots / "groups.png"))
    open_page(browser, server, "#/group/web-readers", "#group-partitions table")
    wait(browser, lambda d: d.find_element(By.ID, "group-lag").text == "9")
    c.commit(offsets=[TopicPartition("web", 0, 10)], asynchronous=False)
    c.close()
    wait(browser, lambda d: d.find_element(By.ID, "group-lag").text == "1")
    time.sleep(2.2)
    browser.save_screenshot(str(shots / "group.png"))
    # Reset offsets from the page, with confirmation: every partition of web to
    # earliest, so the lag is every record: 11 in partition 0, 1 in partition 1.
    Select(browser.find_element(By.ID, "reset-to")).select_by_value("earliest")
    browser.find_element(By.ID, "reset").click()
    wait(browser, EC.alert_is_present()).dismiss()
    time.sleep(0.5)
    assert http.get("/api/groups/web-readers")[2]["lag"] == 1       # said no: unchanged
    browser.find_element(By.ID, "reset").click()
    wait(browser, EC.alert_is_present()).accept()
    wait(browser, lambda d: d.find_element(By.ID, "group-lag").text == "12")

    # Queues: a share group's figures and a dead letter requeued from the panel.
    http.get("/consume?topic=web&group=web-workers&max=3")
    origin = DeadLetterOrigin("web-workers", "web", 1, 0, 5, "delivery-limit",
                              int(time.time() * 1000))
    http.post("/topics", {"topic": "web.dlq", "partitions": 1})
    p = Producer({"bootstrap.servers": server.bootstrap})
    p.produce("web.dlq", key=b"dead-key", value=b"dead <script>letter</script>",
              headers=[("own", b"1")] + dlq_headers(origin), partition=0)
    p.flush(10)
    end_before = http.get("/topics/web/partitions/1/offsets")[2]["end_offset"]
    open_page(browser, server, "#/queues", "#queue-table table")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "tr.dead-letter")))
    row = browser.find_element(By.CSS_SELECTOR, "tr.dead-letter")
    assert "web-1@0" in row.text and "delivery-limit" in row.text
    assert "dead <script>letter</script>" in row.text
    browser.save_screenshot(str(shots / "queues.png"))
    row.find_element(By.CSS_SELECTOR, "button.requeue").click()
    wait(browser, EC.alert_is_present()).accept()
    wait(browser, lambda d: "requeued to web-1@" in d.find_element(By.ID, "toast").text)
    assert http.get("/topics/web/partitions/1/offsets")[2]["end_offset"] == end_before + 1
    doc = http.get(f"/api/topics/web/messages?partition=1&offset={end_before}")[2]
    back = doc["records"][0]
    assert back["key"] == "dead-key" and ["own", "1"] in back["headers"]
    assert not [h for h, _ in back["headers"] if h.startswith("pylog-dlq-")]

    assert browser.execute_script("return window.pwned === undefined")
    assert console_errors(browser) == []


def test_topic_create_and_delete_ask_for_confirmation(server, http, browser):
    open_page(browser, server, "#/topics", "#topic-table table")
    browser.find_element(By.ID, "new-topic").send_keys("from-browser")
    browser.find_element(By.ID, "create-topic").click()
    wait(browser, EC.alert_is_present()).dismiss()          # said no: nothing created
    time.sleep(0.3)
    assert http.get("/topics/from-browser")[0] == 404
    browser.find_element(By.ID, "create-topic").click()
    wait(browser, EC.alert_is_present()).accept()
    wait(browser, lambda d: http.get("/topics/from-browser")[0] == 200)
    browser.find_element(By.ID, "topic-filter").send_keys("from-browser")
    wait(browser, lambda d: "1-1 of 1" in d.find_element(By.ID, "topic-pager").text)
    browser.find_element(By.CSS_SELECTOR, "#topic-table button.danger").click()
    wait(browser, EC.alert_is_present()).accept()
    wait(browser, lambda d: http.get("/topics/from-browser")[0] == 404)
    assert console_errors(browser) == []
