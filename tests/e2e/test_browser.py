#!/usr/bin/env python3
"""The browser view, in headless Chromium (Debian's chromium and
chromedriver) through nginx: log in with the key as the Basic password, load
the list, click through to a process, its parent, threads and modules, kill
with the button (which asks first), and check that names are escaped.
Screenshots go to _test/browser-*.png."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import webdriver  # noqa: E402

OUT = os.path.join(h.BUILDDIR, "_test")


def login_url(s, path):
    return s.base.replace("http://", "http://procdiag:%s@" % s.key) + path


def shot(b, name):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "browser-%s.png" % name)
    b.screenshot(path)
    assert os.path.getsize(path) > 1000, path


def browser(s):
    return webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver.log"))


def test_click_from_the_list_to_a_process_and_around():
    s = h.shared()
    t = h.target("threads", 3)
    with browser(s) as b:
        b.get(login_url(s, "/api/processes?view=tree"))
        assert b.find("h1").text == "Processes", b.source[:300]
        link = b.find('ul.tree a[href$="/api/processes/%d"]' % t.pid)
        assert link.text == "pdtarget"
        # The tree is by parent: the target sits under this test's process.
        parent_li = b.script("return arguments[0].closest('ul').closest('li')"
                             ".querySelector('a').getAttribute('href')",
                             {webdriver.ELEMENT: link.id})
        assert parent_li.endswith("/api/processes/%d" % os.getpid()), parent_li
        shot(b, "list")
        link.click()
        b.wait(lambda: b.url.endswith("/api/processes/%d" % t.pid), what="the detail page")
        assert b.find("h1").text == "pdtarget (%d)" % t.pid
        actions = {a.text: a.attr("href") for a in b.find_all("nav.actions a")}
        base = "%s/api/processes/%d" % (s.base, t.pid)
        assert actions["Stacks"] == base + "/stacks", actions
        assert actions["mini"] == base + "/dump", actions
        assert actions["full"] == base + "/dump?dumpType=2", actions
        assert actions["full + binaries (zip)"] == base + "/dump?dumpType=2&format=zip", actions
        rows = b.find_all('a[href^="%s/threads/"]' % base)
        assert len(rows) == 4, [r.text for r in rows]
        shot(b, "detail")
        # Threads, then back, then the parent.
        b.find('nav.actions a[href$="/threads"]').click()
        b.wait(lambda: b.url.endswith("/threads"), what="the threads page")
        assert b.find("h1").text == "Threads"
        assert len(b.find_all("table tr")) == 1 + 4
        b.get(login_url(s, "/api/processes/%d" % t.pid))
        b.find('nav.actions a[href$="/modules"]').click()
        b.wait(lambda: b.url.endswith("/modules"), what="the modules page")
        cells = [td.text for td in b.find_all("table td")]
        assert "pdtarget" in cells and "libc.so.6" in cells, cells[:20]
        b.get(login_url(s, "/api/processes/%d" % t.pid))
        b.find('a[href="%s/api/processes/%d"]' % (s.base, os.getpid())).click()
        b.wait(lambda: b.url.endswith("/api/processes/%d" % os.getpid()), what="the parent")
        assert b.find("h1").text.endswith("(%d)" % os.getpid())
        assert b.find_all('a[href="%s"]' % base), "the parent does not link its child"


def test_kill_button_asks_first():
    s = h.shared()
    t = h.target("tree", 2)
    with browser(s) as b:
        b.get(login_url(s, "/api/processes/%d" % t.pid))
        b.find("button.kill").click()
        text = b.wait(b.alert_text, what="the confirmation")
        assert "Kill pdtarget (%d) and all its descendants?" % t.pid == text, text
        b.dismiss_alert()
        assert all(h.alive(p, st) for p, st in t.starttimes.items()), "killed without a yes"
        b.find("button.kill").click()
        b.wait(b.alert_text, what="the confirmation")
        b.accept_alert()
        b.wait(lambda: b.url.endswith("/api/processes"), what="the list after the kill")
        # Killed children are zombies until their parent (this test) reaps
        # them; once reaped, the list has them no more.
        assert not h.wait_gone(t.chain)
        t.proc.wait(5)
        b.get(login_url(s, "/api/processes?view=tree"))
        assert not b.find_all('a[href$="/api/processes/%d"]' % t.pid)
        shot(b, "after-kill")


def test_names_are_escaped():
    s = h.shared()
    tmp = tempfile.mkdtemp(prefix="pd-e2e-html-")
    try:
        name = "<i>x\"'&y"
        path = os.path.join(tmp, name)
        shutil.copy("/bin/sleep", path)
        p = h.spawn([path, "60"], stdout=subprocess.DEVNULL)
        h.wait_until(lambda: (h.proc_stat(p.pid) or {}).get("comm") == name.encode(), 5,
                     "the oddly named process")
        with browser(s) as b:
            b.get(login_url(s, "/api/processes?view=tree"))
            link = b.find('ul.tree a[href$="/api/processes/%d"]' % p.pid)
            assert link.text == name, link.text
            assert not b.find_all("ul.tree i"), "a process name became markup"
            link.click()
            b.wait(lambda: b.url.endswith("/%d" % p.pid), what="the detail page")
            assert b.find("h1").text == "%s (%d)" % (name, p.pid)
            assert not b.find_all("main i")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_scripts_still_get_json():
    """JSON stays the default: no Accept, */*, application/json; a page only
    for text/html, with a policy that forbids any external request."""
    s = h.shared()
    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        r = s.get("/api/processes", headers={"Accept": accept} if accept else {})
        assert r.content_type == "application/json", (accept, r)
        assert r.header("Vary") == "Accept", r.headers
        r.json()
    t = h.target("threads", 1)
    r = s.get("/api/processes/%d" % t.pid,
              headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status == 200 and r.content_type == "text/html", r
    csp = r.header("Content-Security-Policy")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    # Scripts only from procdiag's own assets; no other address in the page.
    assert all(src.startswith(s.base.encode() + b"/assets/")
               for src in re.findall(rb'<script src="([^"]*)"', r.body)), r.body
    assert b"http://" not in r.body.replace(s.base.encode(), b""), \
        "an external reference in the page"
    # Every resource the page links to renders as a page, stacks too.
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/api/processes/%d/stacks" % t.pid, "/api/processes/%d/threads" % t.pid):
        r = s.get(path, headers=page)
        assert r.status == 200 and r.content_type == "text/html", (path, r)
        assert r.header("Vary") == "Accept", r.headers
    r = s.head("/api/processes", headers={"Accept": "text/html"})
    assert r.status == 200 and r.body == b"" and r.content_type == "text/html", r


def test_only_the_pages_own_scripts_run():
    """The policy allows no inline script but the page's own, by a nonce
    made for each response ('unsafe-inline' nowhere); markup from a process
    stays text, and an inline script put into the page (what escaping would
    let through if it failed) does not run."""
    s = h.shared()
    page = {"Accept": "text/html"}
    nonces = set()
    for path in ("/api/processes", "/api/processes/%d" % os.getpid(),
                 "/api/processes/%d/threads" % os.getpid()):
        r = s.get(path, headers=page)
        csp = r.header("Content-Security-Policy")
        assert "unsafe-inline" not in csp and "unsafe-hashes" not in csp, csp
        nonce = re.search(r"script-src 'nonce-([0-9a-f]{32})'", csp)
        assert nonce and "style-src 'nonce-%s'" % nonce.group(1) in csp, csp
        nonces.add(nonce.group(1))
        assert r.body.count(b"<script") == r.body.count(
            b'<script nonce="%s">' % nonce.group(1).encode()) + r.body.count(
            b'<script src="%s/assets/' % s.base.encode()), r.body
        assert b" on" not in re.sub(rb">[^<]*<", b"><", r.body), "an inline event handler"
    assert len(nonces) == 3, "a nonce was used twice"
    bad = "<script>window.pdPwned=1</script><img src=x onerror=window.pdPwned=2>"
    p = h.spawn(["sh", "-c", "sleep 60; :", bad], stdout=subprocess.DEVNULL)
    h.wait_until(lambda: bad.encode() in open("/proc/%d/cmdline" % p.pid, "rb").read(), 5,
                 "the process with markup in its arguments")
    with browser(s) as b:
        b.get(login_url(s, "/api/processes/%d" % p.pid))
        assert bad in b.find("main").text, b.find("main").text[:500]
        assert b.script("return typeof window.pdPwned") == "undefined"
        injected = b.script(
            "var s = document.createElement('script');"
            "s.textContent = 'window.pdInjected = 1';"
            "document.body.appendChild(s);"
            "document.body.setAttribute('onclick', 'window.pdInjected = 2');"
            "document.body.click();"
            "return typeof window.pdInjected")
        assert injected == "undefined", "an injected inline script ran"


if __name__ == "__main__":
    h.main(globals())
