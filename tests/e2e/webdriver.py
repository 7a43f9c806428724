"""A minimal W3C WebDriver client over http.client, for Debian's chromium and
chromedriver (packages chromium, chromium-driver): enough to load a page,
find elements, click, answer a confirm() and take a screenshot. No
third-party Python modules."""
import base64
import http.client
import json
import os
import socket
import subprocess
import time

CHROMEDRIVER = os.environ.get("PD_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("PD_CHROMIUM", "/usr/bin/chromium")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ENTER, SPACE, TAB = "\ue007", " ", "\ue004"


class WebDriverError(AssertionError):
    pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Browser:
    """Headless Chromium driven by chromedriver. Use as a context manager."""

    def __init__(self, log_path=None):
        for tool in (CHROMEDRIVER, CHROMIUM):
            if not os.access(tool, os.X_OK):
                raise AssertionError("%s is missing (./dev test installs chromium and "
                                     "chromium-driver)" % tool)
        self.port = _free_port()
        log = open(log_path or os.devnull, "wb")
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=%d" % self.port, "--verbose"],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["value"].get("ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError("chromedriver did not start")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900",
                         "--no-first-run", "--disable-extensions"],
            },
            # A confirm() stays open until the test answers it.
            "unhandledPromptBehavior": "ignore",
            # The console (CSP violations among it), for Browser.logs().
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        # On a loaded machine Chromium sometimes dies while it starts
        # ("Chrome instance exited"); a second start works.
        for attempt in range(3):
            try:
                self.session = self._call("POST", "/session", caps)["value"]["sessionId"]
                break
            except WebDriverError as e:
                if attempt == 2 or "session not created" not in str(e):
                    self.proc.kill()
                    self.proc.wait()
                    raise
                time.sleep(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self._call("DELETE", "/session/%s" % self.session)
        except Exception:  # noqa: BLE001  (best effort: the process goes below)
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            doc = json.loads(r.read() or b"{}")
        finally:
            c.close()
        if r.status != 200:
            v = doc.get("value", {})
            raise WebDriverError("%s %s -> %d %s: %s" % (method, path, r.status,
                                                         v.get("error"), v.get("message")))
        return doc

    def _s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.session, path), body)["value"]

    # -- navigation and the DOM --------------------------------------------
    def get(self, url):
        self._s("POST", "/url", {"url": url})

    @property
    def url(self):
        return self._s("GET", "/url")

    @property
    def title(self):
        return self._s("GET", "/title")

    @property
    def source(self):
        return self._s("GET", "/source")

    def find_all(self, css):
        return [Element(self, e[ELEMENT])
                for e in self._s("POST", "/elements", {"using": "css selector", "value": css})]

    def find(self, css):
        found = self.find_all(css)
        if not found:
            raise AssertionError("no element matches %r on %s" % (css, self.url))
        return found[0]

    def script(self, js, *args):
        return self._s("POST", "/execute/sync", {"script": js, "args": list(args)})

    def wait(self, cond, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s (at %s)" % (what, self.url))
            time.sleep(0.05)

    def logs(self):
        """The browser console's entries since the last call ({level,
        message}): CSP violations are among them ("Refused to ...")."""
        return self._s("POST", "/se/log", {"type": "browser"})

    def csp_violations(self):
        return [e["message"] for e in self.logs()
                if "Content Security Policy" in e.get("message", "")]

    def set_window_size(self, width, height):
        self._s("POST", "/window/rect", {"width": width, "height": height})

    def keys(self, text):
        """Types text (WebDriver key codes too: ENTER, SPACE, TAB below)
        into the element that has the focus."""
        actions = [{"type": "keyDown", "value": c} for c in text]
        ups = [{"type": "keyUp", "value": c} for c in text]
        seq = [a for pair in zip(actions, ups) for a in pair]
        self._s("POST", "/actions", {"actions": [{"type": "key", "id": "kb", "actions": seq}]})
        self._s("DELETE", "/actions")

    # -- dialogs and screenshots -------------------------------------------
    def alert_text(self):
        try:
            return self._s("GET", "/alert/text")
        except WebDriverError:
            return None

    def accept_alert(self):
        self._s("POST", "/alert/accept", {})

    def dismiss_alert(self):
        self._s("POST", "/alert/dismiss", {})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._s("GET", "/screenshot")))


class Element:
    def __init__(self, browser, eid):
        self.b, self.id = browser, eid

    def _e(self, method, what, body=None):
        return self.b._s(method, "/element/%s/%s" % (self.id, what), body)

    def click(self):
        self._e("POST", "click", {})

    @property
    def text(self):
        return self._e("GET", "text")

    def attr(self, name):
        return self._e("GET", "attribute/%s" % name)

    def send_keys(self, text):
        self._e("POST", "value", {"text": text})

    def clear(self):
        self._e("POST", "clear", {})
