/* procdiag's flame graph (an icicle: the root at the top), drawn as SVG
 * from the speedscope file (lib/fold.h) in the page's
 * <script type="application/json" id="flame-data"> into <section id="flame">.
 * Each rect's width is its samples' share of the frame zoomed into; hover
 * or focus shows the frame's name, module and samples; a click (or Enter)
 * zooms into a frame, a click on an ancestor (or "all", or Escape) zooms
 * back out. Names only ever go through textContent and setAttribute, never
 * markup; nothing is fetched. */
(function () {
	'use strict';
	var SVGNS = 'http://www.w3.org/2000/svg';
	var ROW = 18;
	var host = document.getElementById('flame');
	var data = document.getElementById('flame-data');
	if (!host || !data) return;
	var ss;
	try { ss = JSON.parse(data.textContent); } catch (e) { return; }
	var frames = ss.shared.frames, prof = ss.profiles[0];

	/* The tree: children merged by frame index. */
	function node(parent, f) {
		return { f: f, name: f < 0 ? 'all' : frames[f].name,
			 module: f < 0 ? null : (frames[f].file || null),
			 value: 0, kids: new Map(), parent: parent,
			 depth: parent ? parent.depth + 1 : 0 };
	}
	var root = node(null, -1), maxDepth = 0;
	prof.samples.forEach(function (stack, i) {
		var w = prof.weights[i], n = root;
		root.value += w;
		stack.forEach(function (f) {
			var c = n.kids.get(f);
			if (!c) { c = node(n, f); n.kids.set(f, c); }
			c.value += w;
			n = c;
		});
		if (n.depth > maxDepth) maxDepth = n.depth;
	});

	function el(name, attrs, parent) {
		var e = document.createElementNS(SVGNS, name);
		Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
		if (parent) parent.appendChild(e);
		return e;
	}
	/* A warm colour from the name (the same frame, the same colour);
	 * threads (the roots' children) blue. */
	function colour(n) {
		if (n.depth === 0) return 'rgb(200,200,200)';
		if (n.depth === 1) return 'rgb(150,180,230)';
		var h = 0;
		for (var i = 0; i < n.name.length; i++) h = (h * 31 + n.name.charCodeAt(i)) >>> 0;
		return 'rgb(' + (205 + h % 50) + ',' + (80 + (h >> 8) % 130) + ',' + (40 + (h >> 16) % 40) + ')';
	}

	var tip = document.createElement('div');
	tip.id = 'flame-tip';
	tip.setAttribute('role', 'status');
	var ts = tip.style;
	ts.position = 'fixed'; ts.pointerEvents = 'none'; ts.background = '#222'; ts.color = '#fff';
	ts.padding = '4px 8px'; ts.borderRadius = '4px'; ts.font = '12px ui-monospace,monospace';
	ts.whiteSpace = 'pre'; ts.display = 'none'; ts.zIndex = '10'; ts.maxWidth = '90vw';
	ts.overflow = 'hidden';
	var bar = document.createElement('p');
	bar.id = 'flame-zoom';
	var svg = el('svg', { id: 'flame-svg', role: 'img', 'aria-label': 'flame graph' });
	svg.style.display = 'block'; svg.style.width = '100%'; svg.style.background = '#fff';
	svg.style.border = '1px solid #ddd';
	host.appendChild(bar);
	host.appendChild(svg);
	document.body.appendChild(tip);

	function describe(n) {
		var pct = root.value ? (100 * n.value / root.value) : 0;
		return n.name + '\n' + (n.module ? n.module : (n.depth === 1 ? '(thread)' : '')) +
			(n.module || n.depth === 1 ? '\n' : '') +
			n.value + ' sample' + (n.value === 1 ? '' : 's') + ' (' + pct.toFixed(1) + ' %)';
	}
	function showTip(n, x, y) {
		tip.textContent = describe(n);
		ts.display = 'block';
		ts.left = Math.min(x + 12, window.innerWidth - tip.offsetWidth - 4) + 'px';
		ts.top = (y + 14) + 'px';
	}
	function hideTip() { ts.display = 'none'; }

	var zoomed = root;
	function draw() {
		var W = Math.max(svg.clientWidth || host.clientWidth || 800, 100);
		while (svg.firstChild) svg.removeChild(svg.firstChild);
		svg.setAttribute('height', String((maxDepth + 1) * ROW + 2));
		svg.setAttribute('viewBox', '0 0 ' + W + ' ' + ((maxDepth + 1) * ROW + 2));
		bar.textContent = zoomed === root
			? root.value + ' samples. Click a frame to zoom into it.'
			: 'Zoomed into ' + zoomed.name + ' (' + zoomed.value + ' of ' + root.value +
			  ' samples). Click all or a frame above it, or press Escape, to zoom out.';
		/* The path from the root to the zoomed frame: full width. */
		for (var a = zoomed.parent; a; a = a.parent) rect(a, 0, W, true);
		layout(zoomed, 0, W);
	}
	function layout(n, x, w) {
		rect(n, x, w, false);
		var kids = Array.from(n.kids.values()).sort(function (p, q) {
			return p.name < q.name ? -1 : p.name > q.name ? 1 : 0;
		});
		var cx = x;
		kids.forEach(function (k) {
			var kw = w * k.value / n.value;
			if (kw >= 0.5) layout(k, cx, kw);
			cx += kw;
		});
	}
	function rect(n, x, w, ancestor) {
		var g = el('g', { 'class': 'frame', tabindex: 0, role: 'button',
				   'data-name': n.name, 'data-module': n.module || '',
				   'data-samples': n.value, 'data-depth': n.depth,
				   'aria-label': describe(n).replace(/\n/g, ', ') }, svg);
		el('rect', { x: x, y: n.depth * ROW, width: Math.max(w - 0.5, 0.1), height: ROW - 1,
			     fill: colour(n), 'fill-opacity': ancestor ? 0.55 : 1, rx: 1 }, g);
		var chars = Math.floor((w - 6) / 7);
		if (chars >= 3) {
			var t = el('text', { x: x + 3, y: n.depth * ROW + ROW - 5, 'font-size': 12,
					     'font-family': 'ui-monospace,monospace', fill: '#000' }, g);
			var label = n.depth === 0 ? 'all (' + n.value + ' samples)' : n.name;
			t.textContent = label.length > chars ? label.slice(0, chars - 2) + '..' : label;
		}
		g.addEventListener('mousemove', function (e) { showTip(n, e.clientX, e.clientY); });
		g.addEventListener('mouseleave', hideTip);
		g.addEventListener('focus', function () {
			var b = g.getBoundingClientRect();
			showTip(n, b.left, b.top);
		});
		g.addEventListener('blur', hideTip);
		g.addEventListener('click', function () { zoom(n); });
		g.addEventListener('keydown', function (e) {
			if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); zoom(n); }
		});
	}
	function zoom(n) {
		zoomed = n === zoomed && n.parent ? n.parent : n;
		hideTip();
		draw();
		var again = svg.querySelector('g.frame[data-depth="' + zoomed.depth + '"]');
		if (again && document.activeElement && document.activeElement.closest &&
		    document.activeElement.closest('#flame-svg')) again.focus();
	}
	document.addEventListener('keydown', function (e) {
		if (e.key === 'Escape' && zoomed !== root) zoom(root);
	});
	var last = 0;
	window.addEventListener('resize', function () {
		var W = svg.clientWidth;
		if (W !== last) { last = W; draw(); }
	});
	draw();
	last = svg.clientWidth;
	host.setAttribute('data-ready', 'true');
})();
