#!/usr/bin/env python3
"""GET /{id}/profile?seconds=&hz= through real nginx (folded stacks,
speedscope, errors, limits, a target that dies mid-profile), the CLI's
`procdiag profile`, and the flame graph pages (profile and stacks) in
headless Chromium: widths against the JSON's counts, hover, zoom, a hostile
thread name that stays text, no request leaving the page. The target is
tests/targets/hottarget: two threads spinning in hot_alpha_spin and
hot_beta_spin. Screenshots go to _test/flame-*.png."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import webdriver  # noqa: E402

HOTTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "hottarget")
# One thread's perf ring (lib/profile.c): a header page and RING_PAGES.
PERF_RING_PAGES = 1 + 16
OUT = os.path.join(h.BUILDDIR, "_test")
# A thread name (15 bytes, the kernel's limit) that is markup, holds the
# folded format's separator and spaces.
HOSTILE = "<img src=x;y z>"


class Hot:
    def __init__(self, a="pd-hot-a", b=HOSTILE):
        if not os.access(HOTTARGET, os.X_OK):
            raise AssertionError("%s is not built (make check builds it)" % HOTTARGET)
        self.proc = h.spawn([HOTTARGET, "pair", a, b])
        words = h.read_line(self.proc).split()
        assert words[0] == "ready", words
        self.pid = int(words[1])
        self.tids = [int(w) for w in words[2:]]

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def parse_folded(text):
    out = {}
    for line in text.splitlines():
        stack, count = line.rsplit(" ", 1)
        assert stack not in out, "a stack twice: %r" % line
        out[stack] = int(count)
    return out


def not_stopped(pid):
    """No thread of pid is in a ptrace or job-control stop."""
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, t), "rb") as f:
            st = f.read().rsplit(b")", 1)[1].split()[0]
        assert st not in (b"t", b"T"), (t, st)


def no_profile_helper():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    assert b"profile-helper" not in f.read(), "a profile helper is left: %s" % p
            except (FileNotFoundError, ProcessLookupError):
                pass


def check_speedscope(doc):
    """doc has speedscope's structure (its file format schema): returns
    {stack tuple of names: weight}."""
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    assert frames and all(isinstance(f["name"], str) for f in frames), frames
    assert all(isinstance(f.get("file", ""), str) for f in frames)
    assert len(doc["profiles"]) == 1 and doc["activeProfileIndex"] == 0
    p = doc["profiles"][0]
    assert p["type"] == "sampled" and p["unit"] == "none", p
    assert len(p["samples"]) == len(p["weights"]), p
    assert all(0 <= i < len(frames) for s in p["samples"] for i in s)
    assert all(isinstance(w, int) and w > 0 for w in p["weights"])
    assert p["startValue"] == 0 and p["endValue"] == sum(p["weights"]), p
    return {tuple(frames[i]["name"] for i in s): w for s, w in zip(p["samples"], p["weights"])}


def test_folded_has_both_hot_functions_and_counts_add_up():
    s = h.shared()
    t = Hot()
    r = s.get("/api/processes/%d/profile?seconds=2&hz=49" % t.pid)
    assert r.status == 200, r
    assert r.content_type == "text/plain", r
    stacks = parse_folded(r.body.decode())
    samples = int(r.header("X-Profile-Samples"))
    assert samples > 0 and sum(stacks.values()) == samples, (samples, stacks)
    assert r.header("X-Profile-Method") == "perf" and r.header("X-Profile-Complete") == "true"
    alpha = sum(c for k, c in stacks.items() if "hot_alpha_spin" in k.split(";"))
    beta = sum(c for k, c in stacks.items() if "hot_beta_spin" in k.split(";"))
    assert alpha > 0 and beta > 0, stacks
    for k in stacks:
        frames = k.split(";")
        if "hot_alpha_spin" in frames:
            assert frames[0] == "pd-hot-a", k
        if "hot_beta_spin" in frames:
            # The root is the thread's name, its ';' folded to ':', spaces kept;
            # hot_beta_outer calls hot_beta_spin.
            assert frames[0] == "<img src=x:y z>", k
            assert frames.index("hot_beta_outer") + 1 == frames.index("hot_beta_spin"), k
    not_stopped(t.pid)
    t.kill()


def test_speedscope_on_every_prefix():
    s = h.shared()
    t = Hot()
    for prefix in h.PREFIXES:
        r = s.get("%s/%d/profile?seconds=1&hz=29" % (prefix, t.pid),
                  headers={"Accept": "application/json"})
        assert r.status == 200 and r.content_type == "application/json", r
        doc = r.json()
        stacks = check_speedscope(doc)
        meta = doc["procdiag"]
        assert meta["samples"] == sum(stacks.values()) == int(r.header("X-Profile-Samples"))
        assert meta["hz"] == 29 and meta["seconds"] == 1 and meta["pid"] == t.pid, meta
        assert meta["complete"] is True and meta["ended"] is None, meta
        names = {n for k in stacks for n in k}
        assert "hot_alpha_spin" in names and "hot_beta_spin" in names, names
        assert HOSTILE in names, "the frame names are raw in speedscope"
    r = s.get("/api/processes/%d/profile?seconds=1" % t.pid,
              headers={"Accept": "application/speedscope+json"})
    assert r.status == 200 and r.content_type == "application/speedscope+json", r
    check_speedscope(r.json())
    t.kill()


def test_ptrace_method_samples_every_thread_each_tick():
    s = h.shared()
    t = Hot()
    r = s.get("/api/processes/%d/profile?seconds=1&hz=10&method=ptrace" % t.pid,
              headers={"Accept": "application/json"})
    assert r.status == 200, r
    doc = r.json()
    stacks = check_speedscope(doc)
    # 3 threads (main + 2), one sample each per tick; a tick may be skipped.
    assert doc["procdiag"]["method"] == "ptrace" and doc["procdiag"]["threads"] == 3, doc["procdiag"]
    assert 0 < sum(stacks.values()) <= 3 * 10 and sum(stacks.values()) % 3 == 0, stacks
    not_stopped(t.pid)
    t.kill()


def test_bad_input_is_400_naming_the_parameter_and_refusals_403():
    s = h.shared()
    t = Hot()
    for q, param in (("seconds=0", "seconds"), ("seconds=61", "seconds"), ("seconds=x", "seconds"),
                     ("seconds=", "seconds"), ("seconds=-1", "seconds"), ("hz=0", "hz"),
                     ("hz=100", "hz"), ("hz=1.5", "hz"), ("method=dtrace", "method")):
        r = s.get("/api/processes/%d/profile?%s" % (t.pid, q))
        h.assert_problem(r, 400, param)
    h.assert_problem(s.get("/api/processes/abc/profile"), 400, "id")
    h.assert_problem(s.get("/api/processes/%d/profile?seconds=1" % h.unused_pid()), 404)
    # procdiag itself is never profiled; nor is anything for another site's
    # page (the GET acts on the process, as stacks do).
    h.assert_problem(s.get("/api/processes/%d/profile?seconds=1" % s.pd.pid), 403, "id")
    for hdrs in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        h.assert_problem(s.get("/api/processes/%d/profile?seconds=1" % t.pid, headers=hdrs), 403)
    not_stopped(t.pid)
    t.kill()


def test_one_profile_per_process_and_the_target_dying_mid_profile():
    s = h.shared()
    t = Hot()
    got = {}

    def long_profile():
        got["r"] = s.get("/api/processes/%d/profile?seconds=4&hz=49" % t.pid, timeout=60)

    th = threading.Thread(target=long_profile)
    th.start()
    time.sleep(1.5)
    r = s.get("/api/processes/%d/profile?seconds=1" % t.pid)
    h.assert_problem(r, 409)
    assert r.header("Retry-After"), r
    # The target dies while profiled: what was sampled is answered.
    t.kill()
    th.join(30)
    r = got["r"]
    assert r.status == 200, r
    assert r.header("X-Profile-Complete") == "false", r
    stacks = parse_folded(r.body.decode())
    assert sum(stacks.values()) == int(r.header("X-Profile-Samples")) > 0
    assert s.get("/api/processes").status == 200
    no_profile_helper()


def test_cli():
    t = Hot()
    r = subprocess.run([h.PROCDIAG, "profile", str(t.pid), "--seconds", "1", "--hz", "49"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r
    stacks = parse_folded(r.stdout.decode())
    n = int(r.stderr.split()[2])
    assert sum(stacks.values()) == n > 0, (n, stacks)
    r = subprocess.run([h.PROCDIAG, "profile", str(t.pid), "--seconds", "1", "--format",
                        "speedscope", "--method", "ptrace"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r
    check_speedscope(json.loads(r.stdout))
    for argv in (["profile"], ["profile", str(t.pid), "--seconds", "0"],
                 ["profile", str(t.pid), "--hz", "100"], ["profile", str(t.pid), "--format", "svg"],
                 ["profile", "x"]):
        r = subprocess.run([h.PROCDIAG] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        assert r.returncode == 2, (argv, r)
    not_stopped(t.pid)
    t.kill()


def test_threads_beyond_the_locked_memory_limit_are_left_out():
    """Without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0, the perf rings fit for
    some threads (perf_event_mlock_kb): the others are counted as
    unsampled, the rest is profiled. The kernel's allowance is per user,
    perf_event_mlock_kb times the online CPUs, so the thread count is
    taken from this machine: eight threads more than the rings that fit."""
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        if int(f.read()) < 0:
            raise h.Skip("perf_event_paranoid is -1: the kernel applies no locked-memory limit")
    with open("/proc/sys/kernel/perf_event_mlock_kb") as f:
        allowance = int(f.read()) * 1024 * os.sysconf("SC_NPROCESSORS_ONLN")
    fit = allowance // (PERF_RING_PAGES * os.sysconf("SC_PAGE_SIZE"))
    workers = fit + 8
    if workers > 1000:
        raise h.Skip("%d perf rings fit the locked-memory allowance here: too many threads "
                     "to start for the test" % fit)
    proc = h.spawn([HOTTARGET, "bench", str(workers)])
    pid = int(h.read_line(proc).split()[1])
    r = subprocess.run(["setpriv", "--bounding-set", "-ipc_lock", "--inh-caps", "-ipc_lock",
                        "prlimit", "--memlock=0", h.PROCDIAG, "profile", str(pid), "--seconds",
                        "1", "--method", "perf", "--format", "speedscope"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    proc.kill()
    proc.wait()
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    meta = doc["procdiag"]
    assert meta["unsampled_threads"] > 0 and meta["samples"] > 0, meta
    assert meta["threads"] + meta["unsampled_threads"] <= workers + 1, meta
    assert sum(check_speedscope(doc).values()) == meta["samples"]


# ---- the flame graph pages in headless Chromium ------------------------------------

def login_url(s, path):
    return s.base.replace("http://", "http://procdiag:%s@" % s.key) + path


def shot(b, name):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "flame-%s.png" % name)
    b.screenshot(path)
    assert os.path.getsize(path) > 1000, path


FRAMES_JS = """
return Array.from(document.querySelectorAll('#flame-svg g.frame')).map(function (g) {
  var r = g.querySelector('rect');
  return {name: g.getAttribute('data-name'), module: g.getAttribute('data-module'),
          samples: +g.getAttribute('data-samples'), depth: +g.getAttribute('data-depth'),
          x: r.x.baseVal.value, w: r.width.baseVal.value,
          text: (g.querySelector('text') || {}).textContent || null};
});"""


def page_data(b):
    """The speedscope file the page carries, and each thread's and
    function's samples computed from it here (not by the page)."""
    doc = json.loads(b.script("return document.getElementById('flame-data').textContent"))
    stacks = check_speedscope(doc)
    by_thread, by_func = {}, {}
    for k, w in stacks.items():
        by_thread[k[0]] = by_thread.get(k[0], 0) + w
        for f in set(k[1:]):
            by_func[(k[0], f)] = by_func.get((k[0], f), 0) + w
    return doc, sum(stacks.values()), by_thread, by_func


def hover(b, element_id):
    b._s("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "actions": [
        {"type": "pointerMove", "duration": 0, "origin": {webdriver.ELEMENT: element_id},
         "x": 0, "y": 0}]}]})


def no_external_requests(b, s):
    urls = b.script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(login_url(s, "/")) or u.startswith(s.base + "/")
                        for u in urls), urls
    assert any("/assets/flame.js" in u for u in urls), urls
    assert not b.csp_violations()


def check_widths(b, total, by_thread, by_func):
    frames = b.script(FRAMES_JS)
    root = [f for f in frames if f["depth"] == 0]
    assert len(root) == 1 and root[0]["samples"] == total, root
    W = root[0]["w"] + 0.5  # each rect is 0.5 px narrower than its share
    threads = {f["name"]: f for f in frames if f["depth"] == 1}
    assert {k: f["samples"] for k, f in threads.items()} == by_thread, (threads, by_thread)
    for name, f in threads.items():
        assert abs(f["w"] + 0.5 - W * by_thread[name] / total) < 0.01, (f, W, total)
    return frames, W


def test_profile_page_in_chromium():
    s = h.shared()
    t = Hot()
    with webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver-flame.log")) as b:
        b.get(login_url(s, "/api/processes/%d/profile?seconds=2&hz=49" % t.pid))
        b.wait(lambda: b.script("return document.getElementById('flame') && "
                                "document.getElementById('flame').dataset.ready"),
               timeout=30, what="the flame graph")
        doc, total, by_thread, by_func = page_data(b)
        assert total > 0 and doc["procdiag"] if "procdiag" in doc else total > 0
        frames, W = check_widths(b, total, by_thread, by_func)
        # Each hot function's rect is its samples' share of the whole.
        for thread, func in (("pd-hot-a", "hot_alpha_spin"), (HOSTILE, "hot_beta_spin")):
            f = [x for x in frames if x["name"] == func]
            assert len(f) == 1, (func, f)
            assert f[0]["samples"] == by_func[(thread, func)], (f, by_func)
            assert abs(f[0]["w"] + 0.5 - W * f[0]["samples"] / total) < 0.01, f
            assert f[0]["module"] == HOTTARGET, f
        # The hostile thread name is text: in the SVG's text and data, no
        # element made of it, no alert.
        hostile = [x for x in frames if x["name"] == HOSTILE]
        assert hostile and hostile[0]["depth"] == 1, frames
        assert not b.find_all("#flame img") and not b.find_all("img")
        assert b.alert_text() is None
        # Hover: the tip names the frame, its module and samples.
        g = b.find('#flame-svg g.frame[data-name="hot_beta_spin"]')
        hover(b, g.id)
        tip = b.wait(lambda: b.script("var t=document.getElementById('flame-tip');"
                                      "return t.style.display==='block' && t.textContent"),
                     what="the tip")
        assert tip.startswith("hot_beta_spin\n" + HOTTARGET + "\n"), tip
        assert "%d samples" % by_func[(HOSTILE, "hot_beta_spin")] in tip, tip
        hover(b, b.find('#flame-svg g.frame[data-depth="1"][data-name="%s"]' % HOSTILE).id)
        tip = b.script("return document.getElementById('flame-tip').textContent")
        assert tip.startswith(HOSTILE + "\n(thread)\n"), tip
        shot(b, "profile")
        # Click zooms: the thread becomes the whole width, the other thread
        # is gone; clicking "all" zooms back out.
        b.find('#flame-svg g.frame[data-depth="1"][data-name="%s"]' % HOSTILE).click()
        frames = b.script(FRAMES_JS)
        zt = [x for x in frames if x["depth"] == 1]
        assert [x["name"] for x in zt] == [HOSTILE], zt
        assert abs(zt[0]["w"] - root_w(frames)) < 0.01, zt
        beta = [x for x in frames if x["name"] == "hot_beta_spin"][0]
        assert abs(beta["w"] + 0.5 - W * beta["samples"] / by_thread[HOSTILE]) < 0.01, beta
        assert "Zoomed into " + HOSTILE in b.find("#flame-zoom").text
        assert not [x for x in frames if x["name"] == "hot_alpha_spin"]
        shot(b, "profile-zoomed")
        b.find('#flame-svg g.frame[data-depth="0"]').click()
        frames = b.script(FRAMES_JS)
        assert {x["name"] for x in frames if x["depth"] == 1} == set(by_thread), frames
        # The keyboard: Enter zooms a focused frame, Escape zooms out.
        b.script("document.querySelector('#flame-svg g.frame[data-name=\"hot_alpha_spin\"]').focus()")
        b.keys(webdriver.ENTER)
        assert b.find("#flame-zoom").text.startswith("Zoomed into hot_alpha_spin")
        b.keys("\ue00c")  # Escape
        assert not b.find("#flame-zoom").text.startswith("Zoomed")
        no_external_requests(b, s)
    t.kill()


def root_w(frames):
    return [x for x in frames if x["depth"] == 0][0]["w"]


def test_stacks_page_draws_every_thread_as_one_sample():
    s = h.shared()
    t = Hot()
    with webdriver.Browser(log_path=os.path.join(s.dir, "chromedriver-flame2.log")) as b:
        b.set_window_size(390, 844)
        b.get(login_url(s, "/api/processes/%d/stacks" % t.pid))
        b.wait(lambda: b.script("return document.getElementById('flame') && "
                                "document.getElementById('flame').dataset.ready"),
               timeout=30, what="the flame graph")
        doc, total, by_thread, by_func = page_data(b)
        # Three threads (main and two), each one sample.
        assert total == 3 and by_thread == {"hottarget": 1, "pd-hot-a": 1, HOSTILE: 1}, by_thread
        check_widths(b, total, by_thread, by_func)
        # The existing tables stay below it.
        assert b.find("h1").text == "Stacks"
        assert b.find_all("table td"), "the stacks document's tables"
        assert not b.find_all("img") and b.alert_text() is None
        shot(b, "stacks-390px")
        no_external_requests(b, s)
    t.kill()


h.main(globals())
