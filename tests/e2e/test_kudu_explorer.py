#!/usr/bin/env python3
"""The calls Kudu's Process Explorer page makes, replayed over a wide scope
(every uid: kernel threads, a zombie, another user's process), and the shape
the page needs of every answer.

What the page does with the answers, in our words (it throws, and stops
rendering, on anything else):
- the list: an array; it fetches each item's `href`.
- a detail: `threads`, `modules` and `open_file_handles` are arrays it walks
  by length; `environment_variables` an object it walks by key; `children`
  an array; `parent` a link whose last path segment is a process id;
  `file_name` a string it splits on a backslash (unless it is "N/A");
  `user_name` a string with a backslash, the part after it shown; the
  memory and count fields numbers it divides; `total_cpu_time` a TimeSpan
  string it splits on colons; `minidump` a link it adds `?dumpType=N` to;
  every value its Properties dialog shows is converted to text, so it may
  be missing but never null.
- a thread row: `id`, `state`, `href`; its detail's values are shown as text.
- a module row: `base_address` (also used in element ids), `file_name`;
  its detail's values are shown as text.
- kill: DELETE on the detail's `href`.
So: no null anywhere, and each of those fields of the type named."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import assert_kudu_dump_name  # noqa: E402

TIMESPAN = re.compile(r"^-?(\d+\.)?\d\d:\d\d:\d\d(\.\d{7})?$")
# Fields the page divides or formats as numbers.
NUMBERS = ("id", "thread_count", "handle_count", "module_count", "working_set",
           "peak_working_set", "private_memory", "virtual_memory", "peak_virtual_memory",
           "paged_memory", "peak_paged_memory", "paged_system_memory",
           "non_paged_system_memory")
# Fields the page shows as text in the Properties dialog.
TEXTS = ("name", "file_name", "command_line", "user_name", "start_time", "total_cpu_time",
         "user_cpu_time", "privileged_cpu_time")
# Flags the page tests; Kudu leaves them out when false.
FLAGS = ("is_scm_site", "is_webjob", "is_profile_running", "is_iis_profile_running")
HOST = socket.gethostname()


def no_null(doc, where):
    """Fails on the first null in doc, naming its path."""
    if doc is None:
        raise AssertionError("%s is null" % where)
    if isinstance(doc, dict):
        for k, v in doc.items():
            no_null(v, "%s.%s" % (where, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            no_null(v, "%s[%d]" % (where, i))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def id_of_link(s, href):
    """The page's reading of a process link: the number after the last '/'."""
    assert isinstance(href, str) and href.startswith(s.base + "/"), href
    last = href[href.rindex("/") + 1:]
    assert re.fullmatch(r"-?\d+", last), "no process id at the end of %r" % href
    return int(last)


def path_of(s, href):
    assert isinstance(href, str) and href.startswith(s.base + "/"), href
    return href[len(s.base):]


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


def get_or_gone(s, href, pid, refused=False):
    """GET a link of process pid: its JSON, or None when the process exited
    meanwhile (then the answer must be a 404 problem); "refused" when the
    kernel refuses it and the caller said it may (a 403 problem)."""
    r = s.get(path_of(s, href))
    if r.status == 404 and gone(pid):
        h.assert_problem(r, 404)
        return None
    if r.status == 403 and refused:
        h.assert_problem(r, 403)
        return "refused"
    assert r.status == 200 and r.content_type == "application/json", (href, r)
    doc = r.json()
    no_null(doc, href)
    return doc


def check_detail(s, d, item):
    """The shape the page needs of one detail."""
    where = item["href"]
    assert d["id"] == item["id"] and d["href"] == item["href"], (where, d["id"], d["href"])
    for k in NUMBERS:
        assert is_int(d[k]), "%s: %s must be a number, not %r" % (where, k, d.get(k))
    for k in TEXTS:
        assert isinstance(d.get(k, ""), str), "%s: %s = %r" % (where, k, d[k])
    for k in FLAGS:
        assert isinstance(d.get(k, False), bool), "%s: %s = %r" % (where, k, d[k])
    for k in ("threads", "modules", "open_file_handles", "children"):
        assert isinstance(d[k], list), "%s: %s must be an array, not %r" % (where, k, d.get(k))
    assert all(isinstance(x, str) for x in d["open_file_handles"]), where
    for c in d["children"]:
        id_of_link(s, c)
    env = d["environment_variables"]
    assert isinstance(env, dict), "%s: environment_variables = %r" % (where, env)
    assert all(isinstance(v, str) for v in env.values()), where
    assert isinstance(d["file_name"], str), where
    if d["file_name"] != "N/A":
        d["file_name"].split("\\")[-1]
    domain, sep, user = d["user_name"].partition("\\")
    assert sep and user and domain == HOST, "%s: user_name %r" % (where, d["user_name"])
    assert TIMESPAN.match(d["total_cpu_time"]), (where, d["total_cpu_time"])
    assert d["minidump"] == d["href"] + "/dump", (where, d["minidump"])
    for t in d["threads"]:
        assert is_int(t["id"]) and isinstance(t["state"], str), (where, t)
        assert t["href"] == "%s/threads/%d" % (d["href"], t["id"]), (where, t)
    for m in d["modules"]:
        assert isinstance(m["file_name"], str) and isinstance(m.get("file_version", ""), str)
        assert re.fullmatch(r"[0-9a-f]+", m["base_address"]), (where, m)
        assert m["href"] == "%s/modules/%s" % (d["href"], m["base_address"]), (where, m)
    # The link to the parent is always there and names ppid (-1: none).
    assert id_of_link(s, d["parent"]) == (d["ppid"] if d["ppid"] > 0 else -1), \
        (where, d["parent"], d["ppid"])


def follow_parent(s, d):
    """The parent link answers the parent, or a problem (404: none, or
    outside the scope)."""
    r = s.get(path_of(s, d["parent"]))
    if r.status == 200:
        p = r.json()
        no_null(p, d["parent"])
        assert p["id"] == d["ppid"], (d["parent"], p["id"])
        return "ok"
    h.assert_problem(r, 404)
    return "404"


def sub_resources(s, d, details=False):
    """The threads, modules and environment of a process, as the page's
    tabs (and dialogs, with details) ask for them."""
    pid = d["id"]
    # The routes may refuse (403) only what the detail could not read
    # either: Kudu's -1 count, or an empty environment there.
    threads = get_or_gone(s, d["href"] + "/threads", pid, refused=d["thread_count"] == -1)
    modules = get_or_gone(s, d["href"] + "/modules", pid, refused=d["module_count"] == -1)
    env = get_or_gone(s, d["href"] + "/environments/all", pid,
                      refused=d["environment_variables"] == {})
    if None in (threads, modules, env):
        return False
    threads = [] if threads == "refused" else threads
    modules = [] if modules == "refused" else modules
    assert isinstance(threads, list) and isinstance(modules, list), d["href"]
    if env != "refused":
        assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values()), env
    if details:
        for t in threads:
            td = get_or_gone(s, t["href"], pid)
            assert td is not None, t["href"]
            assert td["id"] == t["id"] and isinstance(td["state"], str), td
            for k in ("current_priority", "base_priority"):
                assert is_int(td[k]), (t["href"], k, td[k])
            for k in ("priority_level", "start_time", "total_processor_time",
                      "user_processor_time", "priviledged_processor_time", "wait_reason",
                      "start_address"):
                assert isinstance(td.get(k, ""), str), (t["href"], k, td[k])
        for m in modules:
            md = get_or_gone(s, m["href"], pid)
            assert md is not None, m["href"]
            assert md["base_address"] == m["base_address"], md
            assert isinstance(md["file_path"], str) and is_int(md["module_memory_size"]), md
    return True


def test_explorer_calls_over_every_uid():
    """scope = all: the page's list, then every detail, every parent link,
    and every process's threads, modules and environment."""
    t = h.target("zombie", "threads", 2)
    nobody = h.sleep_as_nobody()
    with h.Stack(config_lines=["scope = all"]) as s:
        # The page's own call has no query: the site's processes (root's
        # here, kernel threads among them). allUsers adds the others.
        mine = s.json("/api/processes")
        items = s.json("/api/processes?allUsers=true")
        no_null(items, "list")
        assert isinstance(items, list) and isinstance(mine, list), (items, mine)
        ids = {it["id"] for it in items}
        kthreads = [i for i in ids if h.is_kernel_thread(i)]
        assert 2 in kthreads and {t.pid, t.zombie, nobody.pid} <= ids, \
            (kthreads[:5], t.pid, t.zombie, nobody.pid)
        mine_ids = {it["id"] for it in mine}
        assert {t.pid, t.zombie, 2} <= mine_ids and nobody.pid not in mine_ids, nobody.pid
        seen, parents = {}, {"ok": 0, "404": 0}
        for it in items:
            d = get_or_gone(s, it["href"], it["id"])
            if d is None:
                continue
            check_detail(s, d, it)
            parents[follow_parent(s, d)] += 1
            seen[it["id"]] = d
            sub_resources(s, d, details=it["id"] in (t.pid, t.zombie, 2, nobody.pid))
        assert {t.pid, t.zombie, 2, nobody.pid} <= set(seen), "a detail went missing"
        # The cases the page used to trip on, by name.
        z, k, n = seen[t.zombie], seen[2], seen[nobody.pid]
        assert z["state"] == "Zombie" and z["file_name"] == "N/A", z
        assert z["modules"] == [] and z["open_file_handles"] == [], z
        assert k["file_name"] == "N/A" and k["parent"].endswith("/-1"), k
        assert n["user_name"] == HOST + "\\nobody", n["user_name"]
        assert parents["404"] >= 2 and parents["ok"] > 0, parents  # init, kthreadd
        # The dump links of the page's menu (HEAD: the name, not the dump)
        # and its kill.
        d = seen[t.pid]
        for q, ext in (("?dumpType=1", "dmp"), ("?dumpType=2", "dmp"),
                       ("?dumpType=2&format=zip", "zip")):
            r = s.head(path_of(s, d["minidump"]) + q)
            assert r.status == 200, (q, r)
            assert_kudu_dump_name(r, "pdtarget", ext)
        r = s.delete(path_of(s, d["href"]))
        assert r.status == 204, r
        h.wait_until(lambda: not h.alive(t.pid), 5, "the killed target to be gone")


def test_parent_outside_the_scope_is_a_link_to_a_404():
    """scope = nobody only: the sleeper's parent (this test, root) is
    outside the scope; its link is still there, and answers 404."""
    nobody = h.sleep_as_nobody()
    with h.Stack(config_lines=["scope = 65534"]) as s:
        items = s.json("/api/processes?allUsers=true")
        assert nobody.pid in {it["id"] for it in items}, items
        for it in items:
            assert it["user_name"] == HOST + "\\nobody", it
        d = s.json("/api/processes/%d" % nobody.pid)
        no_null(d, "detail")
        check_detail(s, d, {"id": nobody.pid, "href": "%s/api/processes/%d" % (s.base,
                                                                                nobody.pid)})
        assert d["ppid"] == os.getpid(), d["ppid"]
        assert follow_parent(s, d) == "404"


if __name__ == "__main__":
    h.main(globals())
