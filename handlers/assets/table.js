/* procdiag's tables (served as /assets/table.js, docs/API.md "The browser view").
 *
 * - The process list (table#procs): rows from the light JSON at its
 *   data-src (GET /api/processes?view=table), fetched at once and every
 *   2 s while the tab is visible; sorted by a header's button (again to
 *   reverse), filtered by name or command line as one types. A refresh
 *   updates the rows in place (keyed by pid), so sort, filter, scroll and
 *   focus stay.
 * - The process page: table.sortable tables sort the same way; the threads
 *   table (table#threads) refreshes its rows from its data-src
 *   (/{id}/threads?view=table); the environment's values are not in the
 *   page: a Show button fetches that one variable and no other
 *   (/{id}/environments/{name}?exact=true) and Hide takes it out of the
 *   page again.
 *
 * Everything from a process goes into the page as text (textContent,
 * never markup). No request leaves procdiag (the page's policy:
 * connect-src 'self'). */
(function () {
  'use strict';

  var UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];
  var DASH = '\u2014';
  var PERIOD_MS = 2000;

  /* Bytes in powers of 1024; handlers/procpage.c writes the same. */
  function fmtBytes(n) {
    if (n === null || n === undefined || n < 0) return DASH;
    if (n < 1024) return n + ' B';
    var x = n, u = -1;
    while (x >= 1024 && u < UNITS.length - 1) { x /= 1024; u++; }
    return x.toFixed(x < 10 ? 1 : 0) + ' ' + UNITS[u];
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  /* Seconds as 45s, 3m 12s, 5h 07m, 2d 04h. */
  function fmtDur(secs) {
    if (secs === null || secs === undefined || secs < 0) return DASH;
    var s = Math.floor(secs);
    if (s < 60) return secs < 10 && s !== secs ? secs.toFixed(2) + 's' : s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s / 60) % 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + pad(Math.floor(s / 3600) % 24) + 'h';
  }

  function fmtPct(v) { return v === null || v === undefined ? DASH : v.toFixed(1); }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin',
                        cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      });
  }

  /* Calls fn now and every PERIOD_MS while the tab is visible (and at once
   * when it becomes visible again); fn returns a promise, and a call never
   * overlaps the last. */
  function every(fn) {
    var busy = false;
    function tick() {
      if (busy || document.visibilityState === 'hidden') return;
      busy = true;
      fn().then(function () { busy = false; }, function () { busy = false; });
    }
    tick();
    setInterval(tick, PERIOD_MS);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') tick();
    });
  }

  function cell(tr, i, cls) {
    while (tr.cells.length <= i) tr.insertCell(-1);
    var td = tr.cells[i];
    if (cls !== undefined && td.className !== cls) td.className = cls;
    return td;
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function setTitle(el, title) {
    if (title) { if (el.title !== title) el.title = title; } else if (el.title) el.removeAttribute('title');
  }

  function linkIn(td, href, text) {
    var a = td.firstChild;
    if (!a || a.nodeName !== 'A') {
      td.textContent = '';
      a = td.appendChild(document.createElement('a'));
    }
    if (a.getAttribute('href') !== href) a.setAttribute('href', href);
    setText(a, text);
    return a;
  }

  /* Puts rows (in order) into body, moving only those out of place, so
   * that a row with the focus in it stays where it is when it can. */
  function place(body, rows) {
    var ref = body.firstChild;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i] === ref) ref = ref.nextSibling;
      else body.insertBefore(rows[i], ref);
    }
    while (ref) { var next = ref.nextSibling; body.removeChild(ref); ref = next; }
  }

  /* Header buttons: click (Enter and Space on a button are clicks) sorts
   * by that column, numbers biggest first and text A to Z; again reverses.
   * state: {col, dir}; onSort() redraws. */
  function sortHeaders(table, state, onSort) {
    var ths = table.tHead.rows[0].cells;
    function show() {
      for (var i = 0; i < ths.length; i++) {
        if (!ths[i].querySelector('button')) continue;
        ths[i].setAttribute('aria-sort', i !== state.col ? 'none'
          : state.dir > 0 ? 'ascending' : 'descending');
      }
    }
    Array.prototype.forEach.call(ths, function (th, i) {
      var b = th.querySelector('button');
      if (!b) return;
      b.addEventListener('click', function () {
        if (state.col === i) state.dir = -state.dir;
        else { state.col = i; state.dir = th.classList.contains('num') ? -1 : 1; }
        show();
        onSort();
      });
    });
    show();
  }

  /* null and missing sort last either way. */
  function compare(x, y, dir) {
    var nx = x === null || x === undefined, ny = y === null || y === undefined;
    if (nx || ny) return nx === ny ? 0 : nx ? 1 : -1;
    if (typeof x === 'string') return dir * x.localeCompare(y);
    return dir * (x < y ? -1 : x > y ? 1 : 0);
  }

  /* ---- the process list --------------------------------------------- */

  function processList(table) {
    var body = table.tBodies[0];
    var keys = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
      return th.dataset.key;
    });
    var state = { col: keys.indexOf('cpu'), dir: -1 };
    var filter = document.getElementById('filter');
    var count = document.getElementById('count');
    var basis = document.getElementById('basis');
    var rows = new Map();
    var data = [], refreshes = 0;

    function fill(tr, p) {
      linkIn(cell(tr, 0, ''), p.href, p.name);
      setText(cell(tr, 1, 'num'), String(p.id));
      setText(cell(tr, 2, ''), p.user);
      setText(cell(tr, 3, 'num'), fmtPct(p.cpu));
      setText(cell(tr, 4, 'num'), fmtPct(p.cpu_machine));
      var rss = cell(tr, 5, 'num');
      setText(rss, fmtBytes(p.rss));
      setTitle(rss, p.rss === null ? '' : p.rss + ' bytes');
      setText(cell(tr, 6, 'num'), fmtPct(p.rss_share));
      setText(cell(tr, 7, 'num'), String(p.threads));
      setText(cell(tr, 8, 'num'), p.fds === null ? DASH : String(p.fds));
      setText(cell(tr, 9, ''), p.state);
      setText(cell(tr, 10, 'num'), fmtDur(p.uptime_seconds));
      var cmd = cell(tr, 11, 'cmd');
      setText(cmd, p.command_line);
      setTitle(cmd, p.command_line);
    }

    function render() {
      var q = filter.value.trim().toLowerCase();
      var key = keys[state.col], dir = state.dir;
      var shown = data.filter(function (p) {
        return !q || p.name.toLowerCase().indexOf(q) >= 0 ||
          p.command_line.toLowerCase().indexOf(q) >= 0;
      });
      shown.sort(function (a, b) {
        return compare(a[key], b[key], dir) || a.id - b.id;
      });
      var next = new Map();
      var trs = shown.map(function (p) {
        var tr = rows.get(p.id);
        if (!tr) { tr = document.createElement('tr'); tr.dataset.id = p.id; }
        fill(tr, p);
        next.set(p.id, tr);
        return tr;
      });
      place(body, trs);
      rows = next;
      count.textContent = shown.length === data.length ? data.length + ' processes'
        : shown.length + ' of ' + data.length + ' processes';
    }

    function refresh() {
      return getJSON(table.dataset.src).then(function (d) {
        data = d.processes;
        render();
        basis.textContent = (d.interval_ms ? 'CPU over ' + (d.interval_ms / 1000).toFixed(1) + ' s, '
          : 'CPU: the next refresh, ') + d.cpus + ' CPUs; memory % of the ' +
          (d.memory_basis === 'cgroup' ? 'cgroup limit ' + fmtBytes(d.memory_limit)
            : 'machine ' + fmtBytes(d.memory_total));
        table.dataset.refreshes = ++refreshes;
        table.removeAttribute('data-error');
      }, function (e) {
        table.dataset.error = e.message;
        count.textContent = 'refresh failed (' + e.message + '), retrying';
      });
    }

    filter.addEventListener('input', render);
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' && document.activeElement !== filter) { e.preventDefault(); filter.focus(); }
    });
    sortHeaders(table, state, render);
    every(refresh);
  }

  /* ---- the process page --------------------------------------------- */

  function cellValue(td) {
    if (!td) return null;
    var v = td.dataset.v;
    if (v !== undefined) return v === '-1' ? null : parseFloat(v);
    return td.textContent.toLowerCase();
  }

  function sortable(table) {
    var state = { col: -1, dir: 1 };
    var body = table.tBodies[0];
    function render() {
      if (state.col < 0) return;
      var trs = Array.prototype.slice.call(body.rows);
      trs.sort(function (a, b) {
        return compare(cellValue(a.cells[state.col]), cellValue(b.cells[state.col]), state.dir);
      });
      place(body, trs);
    }
    sortHeaders(table, state, render);
    return render;
  }

  /* A chart of history's key (oldest first) as an SVG polyline in the
   * svg's viewBox: x by time (equal steps), y from 0 at the bottom to the
   * largest value (at least floor) at the top. The values drawn are kept
   * in data-values, the scale in data-max. */
  var SVGNS = 'http://www.w3.org/2000/svg';
  function chart(id, history, key, floor, label) {
    var svg = document.getElementById('chart-' + id);
    if (!svg) return;
    var vb = svg.viewBox.baseVal, w = vb.width, hgt = vb.height;
    var vals = history.map(function (p) { return p[key]; });
    var max = Math.max.apply(null, [floor].concat(vals.filter(function (v) { return v !== null; })));
    var pts = [];
    vals.forEach(function (v, i) {
      if (v === null) return;
      var x = vals.length > 1 ? i * w / (vals.length - 1) : w;
      var y = hgt - 2 - (v / max) * (hgt - 4);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
    });
    var line = svg.querySelector('polyline') || svg.appendChild(document.createElementNS(SVGNS, 'polyline'));
    line.setAttribute('points', pts.join(' '));
    svg.dataset.values = JSON.stringify(vals);
    svg.dataset.max = max;
    var last = vals.length ? vals[vals.length - 1] : null;
    setText(document.getElementById('c-' + id), last === null ? '' : label(last));
  }

  function charts(history) {
    chart('cpu', history, 'cpu', 1, function (v) { return fmtPct(v); });
    chart('rss', history, 'rss', 1, fmtBytes);
    chart('threads', history, 'threads', 1, String);
    chart('fds', history, 'fds', 1, String);
  }

  function threads(table, resort) {
    var body = table.tBodies[0];
    every(function () {
      return getJSON(table.dataset.src).then(function (d) {
        var have = new Map();
        Array.prototype.forEach.call(body.rows, function (tr) { have.set(tr.dataset.id, tr); });
        var trs = d.threads.map(function (t) {
          var tr = have.get(String(t.id));
          if (!tr) { tr = document.createElement('tr'); tr.dataset.id = t.id; }
          var id = cell(tr, 0, 'num');
          id.dataset.v = t.id;
          linkIn(id, t.href, String(t.id));
          setText(cell(tr, 1, ''), t.name);
          setText(cell(tr, 2, ''), t.state);
          var cpu = cell(tr, 3, 'num');
          cpu.dataset.v = t.cpu === null ? -1 : t.cpu;
          setText(cpu, fmtPct(t.cpu));
          var time = cell(tr, 4, 'num');
          time.dataset.v = t.cpu_time_seconds;
          setText(time, fmtDur(t.cpu_time_seconds));
          linkIn(cell(tr, 5, ''), t.stack, 'stack');
          return tr;
        });
        place(body, trs);
        resort();
        if (d.history) charts(d.history);
        table.dataset.refreshes = (parseInt(table.dataset.refreshes || '0', 10) + 1);
      });
    });
  }

  function environment(table) {
    table.addEventListener('click', function (e) {
      var b = e.target.closest('button.reveal');
      if (!b) return;
      var span = b.previousElementSibling;
      var name = b.dataset.name;
      if (b.getAttribute('aria-pressed') === 'true') {
        span.textContent = '\u2022\u2022\u2022\u2022\u2022\u2022';
        span.className = 'masked';
        b.textContent = 'Show';
        b.setAttribute('aria-pressed', 'false');
        return;
      }
      b.disabled = true;
      getJSON(table.dataset.src + encodeURIComponent(name) + '?exact=true').then(function (o) {
        span.textContent = Object.prototype.hasOwnProperty.call(o, name) ? o[name] : DASH;
        span.className = 'value';
        b.textContent = 'Hide';
        b.setAttribute('aria-pressed', 'true');
      }, function (err) {
        span.textContent = 'cannot read (' + err.message + ')';
      }).then(function () { b.disabled = false; });
    });
  }

  var list = document.getElementById('procs');
  if (list) processList(list);
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (t) {
    var resort = sortable(t);
    if (t.id === 'threads' && t.dataset.src) threads(t, resort);
  });
  var env = document.getElementById('env');
  if (env) environment(env);
})();
