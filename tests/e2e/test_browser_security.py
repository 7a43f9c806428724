#!/usr/bin/env python3
"""The browser view's security review (docs/SECURITY.md): every answer, not
only the pages, forbids framing and loading anything (a policy of its own,
X-Frame-Options, a Referrer-Policy) and the pages keep their own nonce
policy; the kill button still posts with an Origin the server takes as its
own; text a process controls (its environment, its command line) is never
made into a link, even when it spells one of procdiag's own URLs (a link
to a full dump planted in a page the operator reads), while procdiag's own
links stay links. Real nginx, real responder, headless Chromium."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import webdriver  # noqa: E402
from test_browser import login_url  # noqa: E402

PAGE = {"Accept": "text/html"}
BASE_POLICY = "default-src 'none'; frame-ancestors 'none'"


def browser(s):
    return webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver-security.log"))


def headers_of(r):
    return [(k.lower(), v) for k, v in r.headers.items()]


def check_common(r, what):
    hs = headers_of(r)
    assert ("x-content-type-options", "nosniff") in hs, (what, r.headers)
    assert ("x-frame-options", "DENY") in hs, (what, r.headers)
    assert ("referrer-policy", "same-origin") in hs, (what, r.headers)
    csp = [v for k, v in hs if k == "content-security-policy"]
    assert len(csp) == 1, (what, csp)  # one policy: a page's, or the default
    assert "frame-ancestors 'none'" in csp[0] and "default-src 'none'" in csp[0], (what, csp)
    return csp[0]


def test_every_answer_forbids_framing_and_loading():
    s = h.shared()
    t = h.target("threads", 2)
    pid = t.pid
    answers = {
        "list json": s.get("/api/processes"),
        "table json": s.get("/api/processes?view=table"),
        "threads json": s.get("/api/processes/%d/threads?view=table" % pid),
        "env json": s.get("/api/processes/%d/environments/all" % pid),
        "problem 404": s.get("/api/processes/%d" % h.unused_pid()),
        "problem 400": s.get("/api/processes/%d/profile?hz=0" % pid),
        "no route": s.get("/api/processes/1/nothing-here"),
        "401": s.get("/api/processes", auth=False),
        "asset js": s.get("/assets/table.js"),
        "asset css": s.get("/assets/procdiag.css"),
        "folded text": s.get("/api/processes/%d/profile?seconds=1&hz=10" % pid),
    }
    etag = answers["asset js"].header("ETag")
    answers["asset 304"] = s.get("/assets/table.js", headers={"If-None-Match": etag})
    for what, r in answers.items():
        if what in ("401", "no route") and r.content_type != "application/problem+json":
            continue  # nginx's own answer, not procdiag's
        csp = check_common(r, what)
        assert csp == BASE_POLICY, (what, csp)
    assert answers["no route"].content_type == "application/problem+json", answers["no route"]
    assert answers["401"].status == 401, answers["401"]
    assert answers["folded text"].status == 200 and answers["asset 304"].status == 304
    assert answers["asset js"].content_type == "text/javascript", answers["asset js"]
    # Pages keep their own policy (nonce'd inline style and script).
    for path in ("/api/processes", "/api/processes/%d" % pid,
                 "/api/processes/%d/environments/all" % pid, "/api/processes?view=tree"):
        r = s.get(path, headers=PAGE)
        assert r.status == 200 and r.content_type.startswith("text/html"), (path, r)
        csp = check_common(r, path)
        assert "script-src 'nonce-" in csp and "unsafe" not in csp, (path, csp)
    # The kill form's answer (a 303 with a small page) too.
    victim = h.spawn(["sleep", "60"])
    r = s.post("/api/processes/%d/stop" % victim.pid,
               headers={"Accept": "text/html", "Origin": s.base,
                        "Sec-Fetch-Site": "same-origin"})
    assert r.status == 303, r
    check_common(r, "303")
    h.wait_gone([victim.pid])


def test_kill_button_still_works_with_the_referrer_policy():
    """Referrer-Policy must not blank the Origin of the kill form's POST
    (no-referrer would send Origin: null, which the server refuses)."""
    s = h.shared()
    victim = h.spawn(["sleep", "60"])
    with browser(s) as b:
        b.get(login_url(s, "/api/processes/%d" % victim.pid))
        b.find("#kill button").click()
        b.wait(lambda: b.alert_text() is not None, what="the confirmation")
        b.accept_alert()
        b.wait(lambda: b.url.rstrip("/").endswith("/api/processes"), timeout=15,
               what="the list after the kill")
    h.wait_gone([victim.pid])
    assert not h.alive(victim.pid)


def links(html):
    return re.findall(r'<a href="([^"]*)"', html)


def test_text_a_process_controls_never_becomes_a_link():
    s = h.shared()
    sleeper = h.spawn(["sleep", "60"])
    planted = "%s/api/processes/%d/dump?dumpType=2" % (s.base, sleeper.pid)
    planted_html = planted.replace("&", "&amp;")
    # A shell whose command line ($0) and environment spell the URL (a
    # second command: the shell forks sleep rather than exec it).
    p = h.spawn(["sh", "-c", "sleep 60; :", planted], extra_env={"PD_PLANTED": planted},
                stdout=subprocess.DEVNULL)
    try:
        h.wait_until(lambda: (h.proc_stat(p.pid) or {}).get("comm") == b"sh", 5, "the shell")
        for path in ("/api/processes/%d/environments/all" % p.pid,
                     "/api/processes/%d/environments/PD_PLANTED" % p.pid,
                     "/env?pid=%d" % p.pid, "/process?pid=%d" % p.pid,
                     "/api/processes/%d" % p.pid):
            r = s.get(path, headers=PAGE)
            assert r.status == 200 and r.content_type.startswith("text/html"), (path, r)
            html = r.body.decode()
            assert planted_html in html or "/process?" in path, (path, html[:600])
            assert planted_html not in links(html) and planted not in links(html), (
                path, links(html))
        # procdiag's own links are still links (the href members).
        html = s.get("/api/processes/%d/threads" % p.pid, headers=PAGE).body.decode()
        assert "%s/api/processes/%d/threads/%d" % (s.base, p.pid, p.pid) in links(html), html[:800]
        html = s.get("/", headers=PAGE).body.decode()
        assert s.base + "/api/processes" in links(html), html[:800]
        with browser(s) as b:
            b.get(login_url(s, "/api/processes/%d/environments/all" % p.pid))
            assert planted in b.find("main").text
            assert not b.find_all('main a[href*="/dump"]'), "a planted link"
    finally:
        h.kill_tree(p)
        h.kill_tree(sleeper)


def test_show_fetches_that_variable_and_no_other():
    """The Show button's fetch carries the variable shown and no other
    secret (the route's filter is Kudu's substring match: Show on
    PD_REVEAL used to fetch PD_REVEAL_KEY and XPD_REVEAL too)."""
    s = h.shared()
    mine, other = "pd-mine-%d" % os.getpid(), "pd-other-%d" % os.getpid()
    p = h.spawn(["sleep", "60"], extra_env={"PD_REVEAL": mine, "PD_REVEAL_KEY": other,
                                            "XPD_REVEAL": other, "pd_reveal": other})
    try:
        base = "/api/processes/%d/environments/" % p.pid
        assert s.json(base + "PD_REVEAL?exact=true") == {"PD_REVEAL": mine}
        assert s.json(base + "pd_reveal?exact=1") == {"pd_reveal": other}
        assert s.json(base + "NOPE?exact=true") == {}
        assert s.json(base + "all?exact=true") == {}
        # Without it, Kudu's filter as before: every name containing it.
        assert set(s.json(base + "PD_REVEAL")) == {"PD_REVEAL", "PD_REVEAL_KEY", "XPD_REVEAL",
                                                  "pd_reveal"}
        assert set(s.json(base + "PD_REVEAL?exact=false")) == set(s.json(base + "PD_REVEAL"))
        r = s.get(base + "PD_REVEAL?exact=maybe")
        assert r.status == 400 and r.content_type == "application/problem+json", r
        assert r.json()["parameter"] == "exact" and other not in r.body.decode(), r
        with browser(s) as b:
            b.get(login_url(s, "/api/processes/%d" % p.pid))
            b.script("window.__got = []; var f = window.fetch;"
                     "window.fetch = function (u, o) { return f(u, o).then(function (r) {"
                     "r.clone().text().then(function (t) { window.__got.push([String(u), t]); });"
                     "return r; }); }")
            button = b.find('#env button.reveal[data-name="PD_REVEAL"]')
            button.click()
            b.wait(lambda: mine in b.find("#env").text, what="the revealed value")
            got = b.wait(lambda: [g for g in b.script("return window.__got")
                                  if "/environments/" in g[0]] or None, what="the fetch")
            assert len(got) == 1 and mine in got[0][1], got
            assert other not in got[0][1], got
            assert other not in b.source
    finally:
        h.kill_tree(p)


if __name__ == "__main__":
    h.main(globals())
