#!/usr/bin/env python3
"""The browser view's served assets (handlers/assets.c): GET /assets/{name}
answers a file of handlers/assets/ embedded at build time, with its type, a
strong ETag and a cache lifetime, behind the same key as every route; an
unknown name is a 404 problem naming `name`; a page's policy lets it load
procdiag's own assets and nothing from anywhere else."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import webdriver  # noqa: E402

PAGE = {"Accept": "text/html"}


def test_an_asset_is_served_with_its_type_and_etag():
    s = h.shared()
    with open(os.path.join(h.SRCDIR, "handlers", "assets", "procdiag.css"), "rb") as f:
        want = f.read()
    r = s.get("/assets/procdiag.css")
    assert r.status == 200 and r.content_type == "text/css", r
    assert r.body == want, "the served bytes are not the file's"
    etag = r.header("ETag")
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag or ""), etag  # strong: no W/
    assert "max-age=" in r.header("Cache-Control") and "no-store" not in r.header(
        "Cache-Control"), r.headers
    assert r.header("X-Content-Type-Options") == "nosniff", r.headers
    again = s.get("/assets/procdiag.css", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"", again
    assert s.get("/assets/procdiag.css", auth=False).status == 401
    # A page links it by a URL that changes with its bytes.
    page = s.get("/api/processes", headers=PAGE).body.decode()
    assert '/assets/procdiag.css?v=%s"' % etag.strip('"') in page, page[:800]


def test_an_unknown_asset_is_a_problem_naming_name():
    s = h.shared()
    for name in ("nope.js", "procdiag.css.js", "..%2Fprocdiag.css"):
        r = s.get("/assets/" + name)
        if r.status == 404 and r.content_type != "application/problem+json":
            continue  # nginx's own 404: not a name procdiag serves (the regex)
        assert r.status == 404 and r.content_type == "application/problem+json", (name, r)
        assert r.json()["parameter"] == "name", r.json()


def test_the_page_policy_allows_own_assets_and_nothing_external():
    s = h.shared()
    r = s.get("/api/processes", headers=PAGE)
    csp = r.header("Content-Security-Policy")
    for part in ("default-src 'none'", "script-src 'nonce-", "connect-src 'self'",
                 "frame-ancestors 'none'"):
        assert part in csp, (part, csp)
    assert "http" not in csp and "*" not in csp and "unsafe" not in csp, csp
    with webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver-assets.log")) as b:
        b.get(s.base.replace("http://", "http://procdiag:%s@" % s.key) + "/api/processes")
        b.wait(lambda: b.script(
            "return [...document.styleSheets].some(function(s){"
            "return s.href && s.href.indexOf('/assets/procdiag.css') > 0 && s.cssRules.length > 0})"),
            what="procdiag.css loaded")
        assert not b.csp_violations(), b.csp_violations()
        # Something from elsewhere is refused before any request is made.
        b.script("var s = document.createElement('script');"
                 "s.src = 'http://198.51.100.1/x.js'; document.head.appendChild(s);"
                 "fetch('http://198.51.100.1/y').catch(function(){});")
        b.wait(lambda: len(b.csp_violations()) or None, what="the CSP violation")


if __name__ == "__main__":
    h.main(globals())
