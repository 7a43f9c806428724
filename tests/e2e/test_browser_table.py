#!/usr/bin/env python3
"""The live process table and the process page (issue 14), in headless
Chromium through nginx: the list sorts by any header (mouse and keyboard),
filters as one types, refreshes itself from GET /api/processes?view=table
without losing sort, filter or scroll (and pauses while the tab is hidden),
shows sizes in human units with the exact bytes in a title; the process
page's threads sort, its environment values stay out of the page until
Show fetches one; a process named like markup stays text everywhere; no
page makes a request anywhere but procdiag (no CSP violation). Also the
light JSON itself: CPU % of a spinning process is high, of a sleeping one
low. Screenshots go to _test/table-*.png."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import webdriver  # noqa: E402
from test_browser import login_url, shot  # noqa: E402

UNIT = re.compile(r"^(\d+ B|\d+(\.\d)? (KiB|MiB|GiB|TiB))$")


def browser(s):
    return webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver-table.log"))


def refreshes(b, sel="#procs"):
    return int(b.script("return document.querySelector(arguments[0]).dataset.refreshes || '0'",
                        sel))


def wait_refresh(b, sel="#procs", n=1):
    """Waits for n more refreshes of the table sel than it had."""
    start = refreshes(b, sel)
    b.wait(lambda: refreshes(b, sel) >= start + n, timeout=15, what="a refresh of %s" % sel)


def open_list(b, s, path="/api/processes"):
    b.get(login_url(s, path))
    b.wait(lambda: refreshes(b) >= 1, timeout=15, what="the table's first rows")


def column(b, key, sel="#procs"):
    """The texts of column key (its data-key) of the visible rows, in order."""
    return b.script(
        "var t = document.querySelector(arguments[0]);"
        "var i = [...t.tHead.rows[0].cells].findIndex(c => c.dataset.key === arguments[1]);"
        "return [...t.tBodies[0].rows].map(r => r.cells[i].textContent);", sel, key)


def header(b, key):
    return b.find('#procs th[data-key="%s"] button' % key)


def aria_sort(b, key):
    return b.find('#procs th[data-key="%s"]' % key).attr("aria-sort")


def filter_to(b, text):
    f = b.find("#filter")
    f.click()
    f.send_keys(text)
    return f


def row_pids(b):
    return [int(p) for p in column(b, "id")]


def test_sort_by_any_header_and_reverse():
    s = h.shared()
    sleepers = [h.spawn(["sleep", "600"]) for _ in range(3)]
    try:
        with browser(s) as b:
            open_list(b, s)
            # Default: CPU, biggest first.
            assert aria_sort(b, "cpu") == "descending"
            header(b, "id").click()
            pids = row_pids(b)
            assert len(pids) > 3 and pids == sorted(pids, reverse=True), pids
            assert aria_sort(b, "id") == "descending" and aria_sort(b, "cpu") == "none"
            header(b, "id").click()
            pids = row_pids(b)
            assert pids == sorted(pids), pids
            assert aria_sort(b, "id") == "ascending"
            # Memory: by the exact bytes (the titles), not the text.
            header(b, "rss").click()
            sizes = b.script(
                "return [...document.querySelectorAll('#procs tbody tr')]"
                ".map(r => r.cells[5].title ? parseInt(r.cells[5].title, 10) : -1)")
            known = [x for x in sizes if x >= 0]
            assert known == sorted(known, reverse=True), sizes
            # Text: A to Z first.
            header(b, "name").click()
            names = column(b, "name")
            assert names == b.script(
                "return arguments[0].slice().sort((a, b) => a.localeCompare(b))", names), names
            assert names[0].lower() <= names[-1].lower(), names
            # Sort holds across a refresh.
            wait_refresh(b)
            assert column(b, "name") == b.script(
                "return arguments[0].slice().sort((a, b) => a.localeCompare(b))",
                column(b, "name"))
            shot(b, "table-list-sorted")
    finally:
        for p in sleepers:
            h.kill_tree(p)


def test_filter_as_you_type():
    s = h.shared()
    p = h.spawn(["sleep", "6017"])
    try:
        with browser(s) as b:
            open_list(b, s)
            f = filter_to(b, "601")
            b.wait(lambda: str(p.pid) in column(b, "id"), what="the sleep in the filtered rows")
            cmds = column(b, "command_line")
            names = column(b, "name")
            assert all("601" in c or "601" in n for c, n in zip(cmds, names)), cmds
            f.send_keys("7")
            b.wait(lambda: column(b, "id") == [str(p.pid)], what="only the sleep left")
            assert "1 of" in b.find("#count").text, b.find("#count").text
            shot(b, "table-list-filtered")
            f.clear()
            f.send_keys("no-process-is-called-this")
            b.wait(lambda: column(b, "id") == [], what="no rows")
    finally:
        h.kill_tree(p)


def in_view(b):
    """The pid of the first row whose top is inside the scrolled box, and
    where (pixels below the box's top, rounded)."""
    return b.script(
        "var box = document.getElementById('scroll').getBoundingClientRect().top;"
        "for (var r of document.querySelectorAll('#procs tbody tr')) {"
        "  var y = r.getBoundingClientRect().top - box;"
        "  if (y >= 0) return [r.dataset.id, Math.round(y)]; }"
        "return null")


def test_refresh_keeps_sort_filter_scroll_and_shows_new_processes():
    s = h.shared()
    many = [h.spawn(["sleep", "7%03d" % i]) for i in range(40)]
    late = []
    try:
        with browser(s) as b:
            b.set_window_size(1200, 500)
            open_list(b, s)
            header(b, "id").click()  # biggest pid first
            f = filter_to(b, "sleep 7")
            b.wait(lambda: len(column(b, "id")) >= 40, what="the 40 sleeps")
            scroll = b.script("var e = document.getElementById('scroll');"
                              "e.scrollTop = 200; return e.scrollTop")
            assert scroll > 100, "the table does not scroll (%s)" % scroll
            before = in_view(b)
            late.append(h.spawn(["sleep", "7999"]))
            b.wait(lambda: str(late[0].pid) in column(b, "id"), timeout=15,
                   what="the new process in the table")
            # The view stays on the rows it showed: the row at its top is
            # still there (the browser's scroll anchoring moves scrollTop by
            # the row added above it, so the rows do not jump).
            after = in_view(b)
            assert after[0] == before[0] and abs(after[1] - before[1]) <= 2, (before, after)
            assert b.script("return document.getElementById('scroll').scrollTop") >= scroll
            assert f.attr("value") == "sleep 7" or b.script(
                "return document.getElementById('filter').value") == "sleep 7"
            assert aria_sort(b, "id") == "descending"
            pids = row_pids(b)
            assert pids == sorted(pids, reverse=True) and late[0].pid in pids, pids
            assert all(c.startswith("sleep 7") for c in column(b, "command_line"))
            shot(b, "table-list-refreshed")
            # A process that ends leaves the table.
            h.kill_tree(many[0])
            b.wait(lambda: str(many[0].pid) not in column(b, "id"), timeout=15,
                   what="the killed process gone")
    finally:
        for p in many + late:
            h.kill_tree(p)


def test_refresh_pauses_while_hidden():
    s = h.shared()
    with browser(s) as b:
        open_list(b, s)
        wait_refresh(b)
        b.script("Object.defineProperty(document, 'visibilityState',"
                 " {configurable: true, get: () => 'hidden'});"
                 "document.dispatchEvent(new Event('visibilitychange'))")
        # A fetch under way when it turned hidden may still land (however
        # slow the machine): one refresh at most, then none.
        n = refreshes(b)
        time.sleep(4.5)  # two periods and more
        m = refreshes(b)
        assert m - n <= 1, ("refreshed while hidden", n, m)
        time.sleep(4.5)
        assert refreshes(b) == m, "refreshed while hidden"
        n = m
        b.script("Object.defineProperty(document, 'visibilityState',"
                 " {configurable: true, get: () => 'visible'});"
                 "document.dispatchEvent(new Event('visibilitychange'))")
        b.wait(lambda: refreshes(b) > n, what="a refresh once visible")


def stat_rss(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def test_human_units_with_exact_bytes():
    s = h.shared()
    p = h.spawn(["sleep", "6021"])
    try:
        with browser(s) as b:
            open_list(b, s)
            filter_to(b, "sleep 6021")
            b.wait(lambda: column(b, "id") == [str(p.pid)], what="the sleep's row")
            cells = b.script("var r = document.querySelector('#procs tbody tr');"
                             "return [...r.cells].map(c => [c.textContent, c.title])")
            text, title = cells[5]
            assert UNIT.match(text), cells
            exact = int(re.fullmatch(r"(\d+) bytes", title).group(1))
            want = {"B": 1, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}[text.split()[1]]
            assert abs(float(text.split()[0]) * want - exact) <= want * 0.05 + 1, (text, exact)
            assert exact == stat_rss(p.pid), (exact, stat_rss(p.pid))
            assert re.fullmatch(r"\d+(\.\d\d)?s|\d+m \d\ds", cells[10][0]), cells[10]
            # The process page: the same units.
            b.find("#procs tbody a").click()
            b.wait(lambda: b.url.endswith("/api/processes/%d" % p.pid), what="the page")
            doc = s.json("/api/processes/%d" % p.pid)
            fig = b.script("return [...document.querySelectorAll('.figures div')]"
                           ".map(d => [d.lastChild.textContent, d.firstChild.textContent,"
                           " (d.querySelector('b span') || {}).title || ''])")
            res = [f for f in fig if f[0] == "resident"][0]
            assert UNIT.match(res[1]), fig
            assert abs(int(res[2].split()[0]) - doc["working_set"]) < 1 << 20, (res, doc)
            virt = [f for f in fig if f[0] == "virtual"][0]
            assert virt[2] == "%d bytes" % doc["virtual_memory"], (virt, doc["virtual_memory"])
            shot(b, "table-detail")
    finally:
        h.kill_tree(p)


def test_markup_in_a_name_stays_text_everywhere():
    s = h.shared()
    tmp = tempfile.mkdtemp(prefix="pd-e2e-table-")
    name = "<img src=x onerror=alert(1)>"
    try:
        path = os.path.join(tmp, name)
        shutil.copy("/bin/sleep", path)
        p = h.spawn([path, "60"], stdout=subprocess.DEVNULL)
        comm = name[:15]
        h.wait_until(lambda: (h.proc_stat(p.pid) or {}).get("comm") == comm.encode(), 5,
                     "the oddly named process")
        with browser(s) as b:
            open_list(b, s)
            f = filter_to(b, "<img")
            b.wait(lambda: str(p.pid) in column(b, "id"), what="its row")
            i = column(b, "id").index(str(p.pid))
            assert column(b, "name")[i] == comm
            assert column(b, "command_line")[i] == path + " 60"
            assert not b.find_all("main img"), "a name became markup"
            assert b.alert_text() is None, "a script ran"
            shot(b, "table-list-markup")
            b.find('#procs a[href$="/api/processes/%d"]' % p.pid).click()
            b.wait(lambda: b.url.endswith("/api/processes/%d" % p.pid), what="the page")
            b.wait(lambda: refreshes(b, "#threads") >= 1, what="the threads' refresh")
            assert b.find("h1").text == "%s (%d)" % (comm, p.pid)
            assert path in b.find("main").text
            assert b.find("#threads tbody tr td:nth-child(2)").text == comm
            assert not b.find_all("main img") and b.alert_text() is None
            b.get(login_url(s, "/api/processes?view=tree"))
            assert b.find('ul.tree a[href$="/api/processes/%d"]' % p.pid).text == comm
            assert not b.find_all("main img") and b.alert_text() is None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_no_request_leaves_procdiag():
    s = h.shared()
    t = h.target("threads", 2)
    with browser(s) as b:
        for path, table in (("/api/processes", "#procs"),
                            ("/api/processes/%d" % t.pid, "#threads")):
            b.get(login_url(s, path))
            b.wait(lambda: refreshes(b, table) >= 2, timeout=15, what="two refreshes")
            urls = b.script("return performance.getEntriesByType('resource').map(e => e.name)")
            assert urls and all(u.startswith(s.base + "/") for u in urls), urls
            assert any("/assets/table.js" in u for u in urls), urls
            assert not b.csp_violations(), path
        # The policy holds: a script from elsewhere is refused.
        b.script("var s = document.createElement('script'); s.src = 'http://192.0.2.1/x.js';"
                 "document.head.appendChild(s)")
        b.wait(lambda: b.csp_violations() or None, what="the refusal")


def test_keyboard_sorts_and_rows_link():
    s = h.shared()
    with browser(s) as b:
        open_list(b, s)
        b.find("#filter").click()
        assert b.script("return document.activeElement.id") == "filter"
        b.keys(webdriver.TAB)  # past the filter, the links, to the headers
        for _ in range(8):
            if b.script("return !!document.activeElement.closest('#procs th')"):
                break
            b.keys(webdriver.TAB)
        assert b.script("return document.activeElement.closest('th').dataset.key") == "name"
        b.keys(webdriver.TAB)  # PID
        b.keys(webdriver.ENTER)
        pids = row_pids(b)
        assert pids == sorted(pids, reverse=True) and aria_sort(b, "id") == "descending", pids
        b.keys(webdriver.SPACE)
        pids = row_pids(b)
        assert pids == sorted(pids) and aria_sort(b, "id") == "ascending", pids
        # Every row's name is a link to its process page. Pids and links are
        # read in one script call: a refresh between two calls may change the
        # rows (other processes come and go).
        t = b.script(
            "var t = document.querySelector('#procs');"
            "var i = [...t.tHead.rows[0].cells].findIndex(c => c.dataset.key === 'id');"
            "return [...t.tBodies[0].rows].map(r => [r.cells[i].textContent,"
            " r.cells[0].querySelector('a').getAttribute('href')]);")
        assert t, "no rows"
        assert [h_ for _, h_ in t] == ["%s/api/processes/%d" % (s.base, int(p)) for p, _ in t], t[:3]
        # "/" goes to the filter.
        b.script("document.activeElement.blur()")
        b.keys("/")
        assert b.script("return document.activeElement.id") == "filter"


def test_environment_values_masked_until_shown():
    s = h.shared()
    secret = "s3cr3t-%d" % os.getpid()
    p = h.spawn(["sleep", "60"], extra_env={"PD_TABLE_SECRET": secret, "PD_TABLE_SECRETX": "x2"})
    try:
        r = s.get("/api/processes/%d" % p.pid, headers={"Accept": "text/html"})
        assert b"PD_TABLE_SECRET" in r.body and secret.encode() not in r.body
        with browser(s) as b:
            b.get(login_url(s, "/api/processes/%d" % p.pid))
            assert secret not in b.source
            button = b.find('#env button.reveal[data-name="PD_TABLE_SECRET"]')
            cell = b.script("return arguments[0].closest('td')", {webdriver.ELEMENT: button.id})
            cell = webdriver.Element(b, cell[webdriver.ELEMENT])
            assert secret not in cell.text
            button.click()
            b.wait(lambda: secret in cell.text, what="the revealed value")
            assert "x2" not in cell.text  # the exact name's value only
            assert button.text == "Hide"
            shot(b, "table-detail-env")
            button.click()
            b.wait(lambda: secret not in b.source, what="the value gone again")
    finally:
        h.kill_tree(p)


def test_threads_table_sorts_and_links_stacks():
    s = h.shared()
    t = h.target("threads", 3)
    with browser(s) as b:
        b.get(login_url(s, "/api/processes/%d" % t.pid))
        tids = lambda: [int(x) for x in b.script(  # noqa: E731
            "return [...document.querySelectorAll('#threads tbody tr')]"
            ".map(r => r.cells[0].textContent)")]
        assert sorted(tids()) == sorted(int(x) for x in os.listdir("/proc/%d/task" % t.pid))
        b.find("#threads th:nth-child(1) button").click()
        assert tids() == sorted(tids(), reverse=True)
        b.find("#threads th:nth-child(1) button").click()
        assert tids() == sorted(tids())
        wait_refresh(b, "#threads")
        assert tids() == sorted(tids()), "the sort was lost in a refresh"
        tids_last = tids()[-1]
        stacks = b.script("return [...document.querySelectorAll('#threads tbody tr')]"
                          ".map(r => r.cells[5].querySelector('a').getAttribute('href'))")
        assert stacks == ["%s/api/processes/%d/stacks#thread-%d" % (s.base, t.pid, x)
                          for x in tids()], stacks
        # The link's target is there: the stacks page has the thread's row.
        b.get(stacks[-1])
        b.wait(lambda: b.script("return !!document.getElementById('thread-%d')" % tids_last),
               what="the thread's row on the stacks page")


def test_charts_draw_the_points_of_the_json():
    """The process page's charts: the responder records a point of a watched
    process at each poll of its threads (lib/top.h's ring); the page draws
    them, and what it drew is the JSON's history, point for point."""
    s = h.shared()
    spin = h.spawn([sys.executable, "-c", "while True: pass"])
    os.setpriority(os.PRIO_PROCESS, spin.pid, -10)
    try:
        with browser(s) as b:
            b.get(login_url(s, "/api/processes/%d" % spin.pid))
            b.wait(lambda: len(b.script(
                "return JSON.parse(document.getElementById('chart-cpu').dataset.values"
                " || '[]')")) >= 3, timeout=20, what="three points on the CPU chart")
            drawn = {k: b.script(
                "var s = document.getElementById('chart-' + arguments[0]);"
                "return [JSON.parse(s.dataset.values), parseFloat(s.dataset.max),"
                " s.viewBox.baseVal.height,"
                " s.querySelector('polyline').getAttribute('points')]", k)
                for k in ("cpu", "rss", "threads", "fds")}
            hist = s.json("/api/processes/%d/threads?view=table" % spin.pid)["history"]
            for key, (vals, top, height, points) in drawn.items():
                assert vals == [p[key] for p in hist[:len(vals)]], (key, vals, hist)
                ys = [float(xy.split(",")[1]) for xy in points.split()]
                assert len(ys) == len([v for v in vals if v is not None]), (key, points)
                want = [height - 2 - v / top * (height - 4) for v in vals if v is not None]
                assert all(abs(a - w) < 0.11 for a, w in zip(ys, want)), (key, ys, want)
            # busy at every point (how busy is the loaded machine's business)
            assert all(v > 5 for v in drawn["cpu"][0]), drawn["cpu"][0]
            assert all(v == 1 for v in drawn["threads"][0]), drawn["threads"][0]
            shot(b, "table-detail-charts")
    finally:
        h.kill_tree(spin)


def test_phone_width():
    s = h.shared()
    with browser(s) as b:
        b.set_window_size(390, 844)
        open_list(b, s)
        assert b.script("return document.documentElement.scrollWidth") <= 420
        shot(b, "table-list-phone")


def test_light_json_cpu_of_a_spinner_and_a_sleeper():
    s = h.shared()
    spin = h.spawn([sys.executable, "-c", "while True: pass"])
    os.setpriority(os.PRIO_PROCESS, spin.pid, -10)
    sleeper = h.spawn(["sleep", "60"])
    t = h.target("threads", 3)
    try:
        s.json("/api/processes?view=table")
        time.sleep(1.5)
        d = s.json("/api/processes?view=table")
        assert d["interval_ms"] and d["interval_ms"] >= 250, d["interval_ms"]
        assert d["cpus"] == os.cpu_count() and d["memory_total"] > 0
        rows = {p["id"]: p for p in d["processes"]}
        assert set(rows[spin.pid]) == {
            "id", "name", "user", "command_line", "cpu", "cpu_machine", "rss", "rss_share",
            "threads", "fds", "state", "uptime_seconds", "href"}, rows[spin.pid]
        # A spinner, favoured, is busy whatever else runs; a sleeper is not.
        assert rows[spin.pid]["cpu"] > 10, rows[spin.pid]
        assert abs(rows[spin.pid]["cpu_machine"] - rows[spin.pid]["cpu"] / d["cpus"]) < 0.2
        assert rows[sleeper.pid]["cpu"] < 5, rows[sleeper.pid]
        assert rows[t.pid]["threads"] == 4 and rows[t.pid]["state"] == "Sleeping"
        assert rows[t.pid]["fds"] == len(os.listdir("/proc/%d/fd" % t.pid))
        assert rows[sleeper.pid]["command_line"] == "sleep 60"
        assert rows[sleeper.pid]["rss"] == stat_rss(sleeper.pid)
        # The threads' light JSON: the spinner's one thread is busy.
        s.json("/api/processes/%d/threads?view=table" % spin.pid)
        time.sleep(1)
        th = s.json("/api/processes/%d/threads?view=table" % spin.pid)
        assert th["threads"][0]["cpu"] > 10, th
        # Bad input; and the list's JSON is what it was.
        r = s.get("/api/processes?view=bogus")
        assert r.status == 400 and r.json()["parameter"] == "view", r
        r = s.get("/api/processes/%d/threads?view=bogus" % t.pid)
        assert r.status == 400 and r.json()["parameter"] == "view", r
        for path in ("/api/processes", "/api/processes?view=tree"):
            items = s.json(path)
            assert set(items[0]) == {"id", "name", "machineName", "href", "user_name"}, items[0]
    finally:
        h.kill_tree(spin)
        h.kill_tree(sleeper)


if __name__ == "__main__":
    h.main(globals())
