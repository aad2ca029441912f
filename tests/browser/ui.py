#!/usr/bin/python3
"""The status page in a real browser: headless Chromium driven through
WebDriver (Debian's chromium, chromium-driver and python3-selenium).

Run by tests/browser.rs against a running `autodial serve`; every step
asserts, and any failure exits non-zero. Screenshots (desktop and phone
width) go to --shots.
"""
import argparse
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--token", required=True)
p.add_argument("--spool", required=True)
p.add_argument("--autodial", required=True)
p.add_argument("--config", required=True)
p.add_argument("--fixture", required=True, help="an Alertmanager webhook body")
p.add_argument("--shots", required=True)
a = p.parse_args()
os.makedirs(a.shots, exist_ok=True)
for old in ("failure.png", "status-desktop.png", "status-phone.png", "oncall-desktop.png"):
    if os.path.exists(os.path.join(a.shots, old)):
        os.remove(os.path.join(a.shots, old))
STEP = ["start"]


T0 = time.time()


def step(name):
    STEP[0] = name
    print("browser: %5.1f s: %s" % (time.time() - T0, name), flush=True)


def post(path, body):
    req = urllib.request.Request(
        a.url + path,
        data=body,
        headers={"Authorization": "Bearer " + a.token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def api(path):
    req = urllib.request.Request(a.url + path, headers={"Authorization": "Bearer " + a.token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def autodial(*args):
    out = subprocess.run(
        [a.autodial, *args], env={**os.environ, "AUTODIAL_ALERTS": a.config},
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def no_dialog(d):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return
    raise AssertionError("a dialog opened: a script ran")


def console_errors(d, allowed=()):
    errs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    return [e for e in errs if not any(x in e["message"] for x in allowed)]


def browser(script=True):
    """Headless Chromium in Tokyo's time zone (the viewer's zone is not
    the server's), with or without JavaScript."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for o in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--lang=en-US"):
        opts.add_argument(o)
    if not script:
        opts.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service("/usr/bin/chromedriver", env={**os.environ, "TZ": "Asia/Tokyo"})
    b = webdriver.Chrome(service=svc, options=opts)
    b.set_page_load_timeout(30)
    return b


def waiting(b, secs=15):
    """A wait that looks again when the page's refresh replaced the
    element between finding and reading it."""
    return WebDriverWait(b, secs, ignored_exceptions=[StaleElementReferenceException])


def stable(fn, tries=3):
    """Runs `fn` again when the page's refresh (every 10 s) replaced an
    element it was reading."""
    for i in range(tries):
        try:
            return fn()
        except StaleElementReferenceException:
            if i == tries - 1:
                raise


def sign_in(b, name):
    b.get(a.url + "/")
    assert b.current_url.endswith("/ui/login"), b.current_url
    b.find_element(By.ID, "token").send_keys(a.token)
    Select(b.find_element(By.ID, "name")).select_by_value(name)
    b.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
    waiting(b).until(lambda b: "Signed in as" in b.page_source)


d = browser()
wait = waiting(d)
try:
    step("sign in")
    sign_in(d, "olga")
    assert "Signed in as olga" in d.find_element(By.TAG_NAME, "header").text
    # the script ran: times are the browser's, no longer "+00:00"
    first_time = d.find_element(By.ID, "updated").text
    assert "+00:00" not in first_time, first_time

    step("an alert raised through /alertmanager appears within one refresh")
    body = open(a.fixture, "rb").read()
    r = post("/alertmanager", body)
    am_id = r["id"]
    hostile = "<img src=x onerror=alert(1)> </script><script>alert(2)</script>"
    post("/alerts", json.dumps({"id": "xss", "text": hostile, "chain": "default"}).encode())
    t0 = time.time()
    waiting(d, 14).until(lambda d: am_id in d.find_element(By.ID, "live").text)
    print("browser: appeared after %.1f s without a reload" % (time.time() - t0))
    assert d.current_url.rstrip("/") == a.url, "no navigation: the page refreshed itself"

    step("times in the viewer's zone (Tokyo), with their age")
    shown = stable(lambda: d.find_element(By.CSS_SELECTOR, "#live time[data-t]").text)
    assert "GMT+9" in shown, shown
    assert "ago" in stable(lambda: d.find_element(By.CSS_SELECTOR, "#live .ago").text)

    step("hostile text shows as text and runs nothing")
    waiting(d, 14).until(lambda d: "onerror=alert(1)" in d.find_element(By.ID, "live").text)
    text, imgs = stable(lambda: (d.find_element(By.ID, "live").text,
                                 len(d.find_elements(By.CSS_SELECTOR, "#live img"))))
    assert hostile.split(" ")[0] in text, text
    assert imgs == 0, "an <img> was made"
    assert len(d.find_elements(By.TAG_NAME, "script")) == 1, "only the page's own script"
    time.sleep(1)
    no_dialog(d)
    errs = console_errors(d)
    assert not errs, errs

    step("acknowledge: acked by the signed-in name, pending calls gone")
    pending = [f for f in os.listdir(os.path.join(a.spool, "outgoing")) if am_id in f]
    assert pending, "the alert has pending call files before the ack"
    stable(lambda: d.find_element(
        By.CSS_SELECTOR, "form[action='/ui/alerts/%s/ack'] button" % am_id).click())
    wait.until(lambda d: "/ui/alerts/%s" % am_id in d.current_url)
    text = stable(lambda: d.find_element(By.ID, "live").text)
    assert "acknowledged by olga via web" in text, text
    left = [f for f in os.listdir(os.path.join(a.spool, "outgoing")) if am_id in f]
    assert not left, left
    v = api("/alerts/" + am_id)
    assert (v["state"], v["acked_by"], v["acked_via"]) == ("acked", "olga", "web"), v

    step("add an override on /ui/oncall: autodial oncall now agrees")
    d.get(a.url + "/ui/oncall")
    msk = timezone(timedelta(hours=3))
    now = datetime.now(msk)
    fmt = "%Y-%m-%dT%H:%M"
    Select(d.find_element(By.ID, "o-contact")).select_by_value("olga")
    Select(d.find_element(By.ID, "o-schedule")).select_by_value("dba")
    for el, v in (("o-from", (now - timedelta(minutes=5)).strftime(fmt)),
                  ("o-to", (now + timedelta(hours=2)).strftime(fmt))):
        d.execute_script("arguments[0].value = arguments[1]", d.find_element(By.ID, el), v)
    d.find_element(By.CSS_SELECTOR, "form[action='/ui/oncall/overrides'] button").click()
    wait.until(lambda d: "Override added." in d.page_source)
    now_json = autodial("oncall", "now", "--json")
    assert now_json[0]["contacts"] == ["olga"] and now_json[0]["why"] == "override", now_json
    assert d.find_elements(By.CSS_SELECTOR, "tr.override"), "the override is marked"

    step("screenshots: desktop and phone width")
    d.get(a.url + "/")
    time.sleep(0.5)
    d.save_screenshot(os.path.join(a.shots, "status-desktop.png"))
    d.get(a.url + "/ui/oncall")
    d.save_screenshot(os.path.join(a.shots, "oncall-desktop.png"))
    d.set_window_size(360, 800)
    d.get(a.url + "/")
    time.sleep(0.5)
    width = d.execute_script("return document.documentElement.scrollWidth")
    assert width <= 360, "no sideways scrolling at 360 px: %s" % width
    d.save_screenshot(os.path.join(a.shots, "status-phone.png"))
    d.set_window_size(1280, 900)
    errs = console_errors(d)
    assert not errs, errs

    step("a form posted from another origin is refused and changes nothing")
    csrf = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    evil_page = ("<!doctype html><title>evil</title><form method=post action='%s/ui/alerts/xss/resolve'>"
                 "<input type=hidden name=csrf value='%s'><button id=go>win a prize</button></form>"
                 % (a.url, csrf))

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            b = evil_page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *args):
            pass

    # (threads: a connection the browser opens and leaves idle never
    # holds the server up)
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    evil.daemon_threads = True
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    d.get("http://127.0.0.1:%d/" % evil.server_address[1])
    d.find_element(By.ID, "go").click()
    wait.until(lambda d: "Refused" in d.page_source)
    assert api("/alerts/xss")["state"] == "firing", "nothing changed"
    evil.shutdown()
    no_dialog(d)

    step("with scripting off: UTC with the offset, and Acknowledge works by reload")
    n = browser(script=False)
    try:
        sign_in(n, "ivan")
        t = n.find_element(By.CSS_SELECTOR, "#live time[data-t]").text
        assert t.endswith("+00:00"), t
        n.find_element(By.CSS_SELECTOR, "form[action='/ui/alerts/xss/ack'] button").click()
        waiting(n).until(lambda b: "/ui/alerts/xss" in b.current_url)
        assert "acknowledged by ivan via web" in n.find_element(By.ID, "live").text
        assert api("/alerts/xss")["acked_by"] == "ivan"
    finally:
        n.quit()
    print("browser: every step passed")
except Exception as e:  # noqa: BLE001 (report the step, then fail)
    try:
        d.save_screenshot(os.path.join(a.shots, "failure.png"))
    except Exception:  # noqa: BLE001
        pass
    print("browser: FAILED at %r: %s: %s" % (STEP[0], type(e).__name__, e), file=sys.stderr)
    sys.exit(1)
finally:
    d.quit()
