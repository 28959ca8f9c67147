"""The HTTP listener with --http-security SASL_PLAINTEXT and --authorizer acl: Basic
credentials, dashboard sessions (cookie or Bearer token) against the SASL users; the
same ACLs as the Kafka API; the dashboard shows a login form and works after it."""
from __future__ import annotations

import base64
import shutil
import time

import pytest
from http_client import JSON_V2, Http

from pylog.security.acls import AclBinding, Authorizer
from pylog.security.users import UserStore
from pylog.testing import PylogServer

USERS = {"admin": "admin-pw", "alice": "alice-pw"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("httpauth") / "data"
    store = UserStore(data)
    for name, pw in USERS.items():
        store.set_password(name, pw, mechanisms=("SCRAM-SHA-256",))
    s = PylogServer(data, args=["--http-security", "SASL_PLAINTEXT", "--authorizer", "acl",
                                "--super-users", "User:admin",
                                "--connection-failed-authentication-delay-ms", "0"]).start()
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def basic(user, password=None):
    raw = f"{user}:{password if password is not None else USERS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_credentials_are_required_except_on_public_routes(srv):
    h = Http(srv.http_port)
    status, headers, body = h.get("/metrics")
    assert status == 401 and body["error_code"] == 40101
    assert headers["WWW-Authenticate"].startswith("Basic")
    status, headers, _ = h.get("/metrics", headers={"X-Pylog-Dashboard": "1"})
    assert status == 401 and "WWW-Authenticate" not in headers
    assert h.get("/metrics", headers=basic("admin", "wrong"))[0] == 401
    assert h.get("/metrics", headers=basic("admin"))[0] == 200
    for path in ("/healthz", "/", "/openapi.json"):
        assert h.get(path)[0] in (200, 503), path


def test_acls_apply_to_rest_produce(srv):
    h = Http(srv.http_port)
    assert h.post("/topics", {"topic": "h-auth"}, headers=basic("admin"))[0] in (200, 201)
    rec = {"records": [{"value": {"n": 1}}]}
    status, _, body = h.post("/topics/h-auth", rec, ctype=JSON_V2, headers=basic("alice"))
    assert status == 403 and body["error_code"] == 40301
    Authorizer(srv.data_dir).create([AclBinding(2, "h-auth", 3, "User:alice", "*", 4, 3)])
    time.sleep(1.2)
    status, _, body = h.post("/topics/h-auth", rec, ctype=JSON_V2, headers=basic("alice"))
    assert status == 200 and body["offsets"][0]["offset"] == 0
    assert h.get("/api/overview", headers=basic("alice"))[0] == 403   # no cluster DESCRIBE


def test_login_session_cookie_and_bearer_token(srv):
    h = Http(srv.http_port)
    assert h.post("/auth/login", {"user": "alice", "password": "nope"})[0] == 401
    status, headers, body = h.post("/auth/login", {"user": "alice", "password": "alice-pw"})
    assert status == 200 and body["principal"] == "User:alice"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = body["token"]
    session = cookie.split(";")[0]
    assert h.get("/auth/whoami", headers={"Cookie": session})[2] == {"principal": "User:alice"}
    auth = {"Authorization": f"Bearer {token}"}
    assert h.get("/auth/whoami", headers=auth)[2] == {"principal": "User:alice"}
    assert h.post("/auth/logout", headers=auth)[0] == 200
    assert h.get("/auth/whoami", headers=auth)[0] == 401


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver")
def test_the_dashboard_asks_for_a_login(srv, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=webdriver.ChromeService(
        executable_path=shutil.which("chromedriver")), options=opts)
    try:
        d.get(f"http://127.0.0.1:{srv.http_port}/")
        from selenium.common.exceptions import StaleElementReferenceException
        # The page reloads after the login: elements found before it go stale.
        wait = WebDriverWait(d, 15, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(EC.visibility_of_element_located((By.ID, "login-user")))
        d.find_element(By.ID, "login-user").send_keys("admin")
        d.find_element(By.ID, "login-password").send_keys("admin-pw")
        d.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(lambda drv: drv.find_element(By.ID, "login").get_attribute("hidden"))
        wait.until(lambda drv: "h-auth" in drv.page_source or "Topics" in drv.page_source)
        d.get(f"http://127.0.0.1:{srv.http_port}/#/topics")
        wait.until(lambda drv: "h-auth" in drv.find_element(By.ID, "page").text)
        d.save_screenshot(str(tmp_path / "after-login.png"))
    finally:
        d.quit()
