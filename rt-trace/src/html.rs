//! A [`Model`] as ONE self-contained HTML page: the timeline of [`crate::svg`] made
//! interactive (wheel zoom around the cursor, drag to pan, +/−/reset buttons and keys, a hover
//! card per run and per mark), drawn on a canvas by inline script from the model's data,
//! embedded as JSON in `<script type="application/json" id="trace-data">`.
//!
//! Invariants: the page loads nothing (no external script, style, font or image; the text
//! contains no "http" at all and no `src=`/`href=`): the embedded JSON has `<`, `>`, `&`, `=`
//! and the "h" of any "http" written as `\u` escapes, which JSON.parse turns back. The script
//! makes one `<div class="cpu-row" data-m="M">` per track (the row labels, DOM; the runs go on
//! the canvas, which stays fast for ~100k runs: each frame visits only the visible runs by
//! binary search and draws at most one sub-pixel run per pixel column), then sets
//! `document.body.dataset.rows` to the number of rows drawn. Row geometry and colours are the
//! SVG's ([`crate::svg::goroutine_color`]), carried in the data.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use serde_json::{json, Value};

use crate::format::SYSMON;
use crate::model::Model;
use crate::svg::{end_reason, escape_xml, goroutine_color, goroutine_label, mark_class, mark_text};

/// The data the page's script draws, as JSON. Times are nanoseconds from the trace's start;
/// each track's runs are columns (`s` start, `e` end, `g` goid, `p` P or -1, `r` an index
/// into `reasons`) sorted by start; `hs`/`he` halts and `ss`/`se` spins likewise; marks are
/// `mt` time, `mk` class (as [`crate::svg`] draws them), `mx` text, sorted by time; `gs`
/// maps a goid to its label and colour; `flows` are `[from track, from ns, to track, to ns]`.
pub fn data(m: &Model) -> Value {
    let mut reasons: Vec<String> = Vec::new();
    let mut reason_ix: BTreeMap<String, usize> = BTreeMap::new();
    let mut gs = serde_json::Map::new();
    let see_g = |goid: u64, gs: &mut serde_json::Map<String, Value>| {
        gs.entry(format!("{goid}"))
            .or_insert_with(|| json!([goroutine_label(m, goid), goroutine_color(goid)]));
    };
    let mut tracks = Vec::new();
    for t in &m.tracks {
        let mut sl: Vec<_> = t.slices.iter().collect();
        sl.sort_by_key(|s| s.start_ns);
        let (mut s, mut e, mut g, mut p, mut r) = (vec![], vec![], vec![], vec![], vec![]);
        for x in sl {
            s.push(x.start_ns);
            e.push(x.end_ns.max(x.start_ns));
            g.push(x.goid);
            p.push(x.p.map_or(-1, i64::from));
            let text = end_reason(x.end);
            let n = reasons.len();
            let ix = *reason_ix.entry(text.clone()).or_insert(n);
            if ix == n {
                reasons.push(text);
            }
            r.push(ix);
            see_g(x.goid, &mut gs);
        }
        let cols = |spans: &[crate::model::Span]| {
            let mut v: Vec<_> = spans
                .iter()
                .map(|s| (s.start_ns, s.end_ns.max(s.start_ns)))
                .collect();
            v.sort();
            (
                v.iter().map(|x| x.0).collect::<Vec<_>>(),
                v.iter().map(|x| x.1).collect::<Vec<_>>(),
            )
        };
        let (hs, he) = cols(&t.halts);
        let (ss, se) = cols(&t.spins);
        let mut mks: Vec<_> = t.marks.iter().collect();
        mks.sort_by_key(|k| k.ts_ns);
        let mt: Vec<u64> = mks.iter().map(|k| k.ts_ns).collect();
        let mk: Vec<u8> = mks.iter().map(|k| mark_class(&k.kind)).collect();
        let mx: Vec<String> = mks.iter().map(|k| mark_text(m, k)).collect();
        tracks.push(json!({
            "m": t.m, "label": t.label, "sysmon": t.m == SYSMON,
            "s": s, "e": e, "g": g, "p": p, "r": r,
            "hs": hs, "he": he, "ss": ss, "se": se,
            "mt": mt, "mk": mk, "mx": mx,
        }));
    }
    let row_of: BTreeMap<u16, usize> = m.tracks.iter().enumerate().map(|(i, t)| (t.m, i)).collect();
    let flows: Vec<Value> = m
        .flows
        .iter()
        .filter_map(|f| {
            let (a, b) = (row_of.get(&f.from_m)?, row_of.get(&f.to_m)?);
            Some(json!([a, f.from_ns, b, f.to_ns]))
        })
        .collect();
    json!({
        "title": crate::json::summary_line(m),
        "duration": m.duration_ns,
        "reasons": reasons,
        "gs": gs,
        "tracks": tracks,
        "flows": flows,
    })
}

/// JSON text made safe to sit inside a `<script>` element of a page that must not mention
/// "http", `src=` or `href=`: outside strings JSON has none of these characters, and inside
/// strings a `\u` escape means the same character.
fn embed_json(v: &Value) -> String {
    let s = v.to_string();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut i = 0;
    for (j, c) in s.char_indices() {
        if j < i {
            continue;
        }
        let http =
            (c == 'h' || c == 'H') && b.len() >= j + 4 && b[j..j + 4].eq_ignore_ascii_case(b"http");
        match c {
            '<' | '>' | '&' | '=' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            _ if http => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push(c),
        }
        i = j + c.len_utf8();
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:13px/1.35 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;background:#fff}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;padding:10px 16px;border-bottom:1px solid #ddd}
h1{font-size:16px;margin:0}
#summary{color:#555}
.tools{display:flex;gap:6px;align-items:center;margin-left:auto}
button{font:inherit;min-width:32px;padding:3px 9px;border:1px solid #bbb;border-radius:4px;background:#f7f7f7;cursor:pointer}
button:hover{background:#eee}
#range{color:#555;font-variant-numeric:tabular-nums;min-width:200px;text-align:right}
#view{position:relative;margin:8px 16px;user-select:none}
#labels{position:absolute;left:0;top:0;width:140px;height:100%}
.cpu-row{position:absolute;left:0;width:140px;padding-right:10px;text-align:right;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;display:flex;align-items:flex-end;justify-content:flex-end;padding-bottom:6px}
.cpu-row.sysmon{color:#777;font-size:12px;padding-bottom:2px}
#cv{position:absolute;left:140px;top:0;cursor:grab}
#cv.drag{cursor:grabbing}
#card{position:absolute;pointer-events:none;background:#fff;border:1px solid #aaa;border-radius:5px;box-shadow:0 2px 8px rgba(0,0,0,.18);padding:6px 9px;font-size:12px;max-width:360px;z-index:2}
#card b{display:block;margin-bottom:2px}
#card .k{color:#666}
#legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:4px 16px 16px 156px;color:#444;font-size:12px}
#legend span{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:18px;height:11px}
.hatch{background:repeating-linear-gradient(45deg,#e4e4e4 0 3px,#b8b8b8 3px 5px)}
.spin{height:4px;background:#f2b134}
.g{font-style:normal;font-size:11px}
.hint{color:#777;margin:0 16px 12px 156px;font-size:12px}
"#;

const SCRIPT: &str = r#"
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('trace-data').textContent);
  var LABEL_W = 140, AXIS_H = 26, MARK_H = 7, LANE_H = 18, GAP = 7, SYS_H = 16, SPIN_H = 4;
  var MIN_SPAN = 10, FULL = Math.max(D.duration, 1);
  var view = document.getElementById('view'), cv = document.getElementById('cv');
  var ctx = cv.getContext('2d'), labels = document.getElementById('labels');
  var card = document.getElementById('card'), rangeEl = document.getElementById('range');
  var GS = new Map();
  Object.keys(D.gs).forEach(function (k) { GS.set(Number(k), D.gs[k]); });
  function gLabel(g) { var v = GS.get(g); return v ? v[0] : 'G' + g; }
  function gColor(g) { var v = GS.get(g); return v ? v[1] : '#888888'; }

  var rows = [], y = AXIS_H;
  D.tracks.forEach(function (t) {
    var h = t.sysmon ? SYS_H + 6 : MARK_H + LANE_H + GAP;
    var el = document.createElement('div');
    el.className = 'cpu-row' + (t.sysmon ? ' sysmon' : '');
    el.dataset.m = String(t.m);
    el.style.top = y + 'px';
    el.style.height = h + 'px';
    el.textContent = t.label;
    el.title = t.label;
    labels.appendChild(el);
    rows.push({ t: t, y: y, h: h });
    y += h;
  });
  var H = y + 6;
  view.style.height = H + 'px';

  var W = 200, t0 = 0, span = FULL, pending = false;
  function X(ns) { return (ns - t0) * W / span; }
  function T(x) { return t0 + x * span / W; }
  function lowerBound(a, v) {
    var lo = 0, hi = a.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < v) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function fmt(ns) {
    ns = Math.round(ns);
    if (Math.abs(ns) < 1000) return ns + ' ns';
    var u = Math.abs(ns) < 1e6 ? ['\u00b5s', 1e3] : Math.abs(ns) < 1e9 ? ['ms', 1e6] : ['s', 1e9];
    var v = ns / u[1], a = Math.abs(v);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2) + ' ' + u[0];
  }
  function niceStep(raw) {
    raw = Math.max(raw, 1);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var ks = [1, 2, 5, 10];
    for (var i = 0; i < ks.length; i++) if (ks[i] * p >= raw) return ks[i] * p;
    return 10 * p;
  }
  function tickLabel(t, step) {
    if (t === 0) return '0';
    var u = step < 1e3 ? ['ns', 0] : step < 1e6 ? ['\u00b5s', 3] : step < 1e9 ? ['ms', 6] : ['s', 9];
    var dec = Math.max(0, u[1] - Math.floor(Math.log10(step) + 1e-9));
    return (t / Math.pow(10, u[1])).toFixed(dec) + ' ' + u[0];
  }

  var hatch = (function () {
    var c = document.createElement('canvas'); c.width = 6; c.height = 6;
    var g = c.getContext('2d');
    g.fillStyle = '#e4e4e4'; g.fillRect(0, 0, 6, 6);
    g.strokeStyle = '#b8b8b8'; g.lineWidth = 1.6;
    g.beginPath(); g.moveTo(-1, 7); g.lineTo(7, -1); g.moveTo(-1, 1); g.lineTo(1, -1);
    g.moveTo(5, 7); g.lineTo(7, 5); g.stroke();
    return ctx.createPattern(c, 'repeat');
  })();

  function spans(a, b, ly, h, style) {
    var i = lowerBound(b, t0), end = t0 + span;
    ctx.fillStyle = style;
    for (; i < a.length && a[i] < end; i++) {
      var x0 = Math.max(X(a[i]), 0), x1 = Math.min(X(b[i]), W);
      ctx.fillRect(x0, ly, Math.max(x1 - x0, 0.5), h);
    }
  }
  var MARK = ['#2ca02c', '#1f77b4', '#d62728', '#d62728', '#999999', '#d62728', '#9467bd', '#ff7f0e', '#17becf'];
  function mark(k, x, y) {
    ctx.fillStyle = MARK[k]; ctx.strokeStyle = MARK[k]; ctx.lineWidth = 1.2;
    ctx.beginPath();
    if (k === 2 || k === 3 || k === 4) {
      ctx.moveTo(x - 3.5, y); ctx.lineTo(x + 3.5, y); ctx.lineTo(x, y + 6.5); ctx.closePath();
      if (k === 3) { ctx.fillStyle = '#ffffff'; ctx.fill(); ctx.stroke(); } else ctx.fill();
    } else if (k === 1) {
      ctx.moveTo(x, y); ctx.lineTo(x + 3.5, y + 3.5); ctx.lineTo(x, y + 7); ctx.lineTo(x - 3.5, y + 3.5);
      ctx.closePath(); ctx.fill();
    } else if (k === 0) {
      ctx.arc(x, y + 3.5, 2.2, 0, 7); ctx.fill();
    } else if (k === 5) {
      ctx.moveTo(x, y); ctx.lineTo(x, y + SYS_H - 4); ctx.lineWidth = 1.5; ctx.stroke();
    } else if (k === 6) {
      ctx.fillRect(x - 3, y + 0.5, 6, 6);
    } else if (k === 7) {
      ctx.arc(x, y + 3.5, 2.5, 0, 7); ctx.stroke();
    } else {
      ctx.moveTo(x - 3.5, y + 6.5); ctx.lineTo(x + 3.5, y + 6.5); ctx.lineTo(x, y); ctx.closePath();
      ctx.fill();
    }
  }
  function marks(t, y) {
    var pad = 4 * span / W, i = lowerBound(t.mt, t0 - pad), end = t0 + span + pad;
    var last = [];
    for (; i < t.mt.length && t.mt[i] < end; i++) {
      var x = X(t.mt[i]), k = t.mk[i], c = Math.round(x);
      if (last[k] === c) continue;
      last[k] = c;
      mark(k, x, y);
    }
  }
  function runs(t, ly) {
    var s = t.s, e = t.e, g = t.g, end = t0 + span, lastCol = -1;
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (var i = lowerBound(e, t0); i < s.length && s[i] < end; i++) {
      var x0 = Math.max(X(s[i]), 0), x1 = Math.min(X(e[i]), W), w = x1 - x0, col = Math.floor(x0);
      if (w < 1) {
        if (col === lastCol) continue;
        lastCol = col;
        ctx.fillStyle = gColor(g[i]);
        ctx.fillRect(col, ly, 1, LANE_H);
        continue;
      }
      lastCol = Math.floor(x1);
      var color = gColor(g[i]);
      ctx.fillStyle = color;
      ctx.fillRect(x0, ly, w, LANE_H);
      if (w > 28) {
        var label = gLabel(g[i]), tw = ctx.measureText(label).width;
        if (tw > w - 6) {
          var n = Math.floor(label.length * (w - 6) / tw) - 1;
          label = n > 1 ? label.slice(0, n) + '\u2026' : '';
        }
        if (label) {
          var r = parseInt(color.slice(1, 3), 16), gg = parseInt(color.slice(3, 5), 16), b = parseInt(color.slice(5, 7), 16);
          ctx.fillStyle = 0.299 * r + 0.587 * gg + 0.114 * b > 150 ? '#111' : '#fff';
          ctx.fillText(label, x0 + 3, ly + LANE_H / 2 + 0.5);
        }
      }
    }
  }
  function laneY(r) { return r.t.sysmon ? r.y + SYS_H / 2 : r.y + MARK_H + LANE_H / 2; }
  function flows() {
    var end = t0 + span, drawn = 0;
    ctx.strokeStyle = 'rgba(70,70,70,0.55)'; ctx.lineWidth = 0.9;
    ctx.beginPath();
    for (var i = 0; i < D.flows.length && drawn < 3000; i++) {
      var f = D.flows[i];
      if (f[0] === f[2] || f[3] < t0 || f[1] > end) continue;
      var x0 = X(f[1]), x1 = X(f[3]), y0 = laneY(rows[f[0]]), y1 = laneY(rows[f[2]]), ym = (y0 + y1) / 2;
      ctx.moveTo(x0, y0); ctx.bezierCurveTo(x0, ym, x1, ym, x1, y1);
      drawn++;
    }
    ctx.stroke();
  }
  function draw() {
    pending = false;
    ctx.clearRect(0, 0, W, H);
    var step = niceStep(span / Math.max(2, Math.floor(W / 110)));
    ctx.font = '10px system-ui, sans-serif'; ctx.textBaseline = 'alphabetic';
    ctx.strokeStyle = '#ececec'; ctx.lineWidth = 1;
    ctx.beginPath();
    for (var t = Math.ceil(t0 / step) * step; t <= t0 + span; t += step) {
      var x = Math.round(X(t)) + 0.5;
      ctx.moveTo(x, AXIS_H - 6); ctx.lineTo(x, H);
    }
    ctx.stroke();
    ctx.fillStyle = '#555';
    for (t = Math.ceil(t0 / step) * step; t <= t0 + span; t += step) {
      var lx = X(t);
      ctx.textAlign = lx < 20 ? 'left' : lx > W - 30 ? 'right' : 'center';
      ctx.fillText(tickLabel(t, step), lx, AXIS_H - 10);
    }
    ctx.textAlign = 'left';
    rows.forEach(function (r) {
      var t = r.t;
      if (t.sysmon) {
        ctx.fillStyle = '#cccccc'; ctx.fillRect(0, r.y + SYS_H - 2, W, 1);
        marks(t, r.y + 1);
        return;
      }
      var ly = r.y + MARK_H;
      ctx.fillStyle = '#f6f6f6'; ctx.fillRect(0, ly, W, LANE_H);
      spans(t.hs, t.he, ly, LANE_H, hatch);
      runs(t, ly);
      spans(t.ss, t.se, ly + LANE_H - SPIN_H, SPIN_H, '#f2b134');
      marks(t, r.y);
    });
    flows();
    rangeEl.textContent = fmt(t0) + ' \u2013 ' + fmt(t0 + span) + '  (' + fmt(span) + ')';
  }
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
  function clamp() {
    span = Math.min(FULL, Math.max(MIN_SPAN, span));
    t0 = Math.min(Math.max(0, t0), FULL - span);
  }
  function zoomAt(x, factor) {
    var tc = T(x), ns = Math.min(FULL, Math.max(MIN_SPAN, span * factor));
    t0 = tc - (tc - t0) * ns / span; span = ns; clamp(); schedule();
  }
  function resize() {
    W = Math.max(200, view.clientWidth - LABEL_W);
    var dpr = window.devicePixelRatio || 1;
    cv.width = Math.round(W * dpr); cv.height = Math.round(H * dpr);
    cv.style.width = W + 'px'; cv.style.height = H + 'px';
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  function hideCard() { card.hidden = true; }
  function showCard(ev, title, lines) {
    card.textContent = '';
    var b = document.createElement('b'); b.textContent = title; card.appendChild(b);
    lines.forEach(function (l) {
      var d = document.createElement('div');
      var k = document.createElement('span'); k.className = 'k'; k.textContent = l[0] + ': ';
      d.appendChild(k); d.appendChild(document.createTextNode(l[1])); card.appendChild(d);
    });
    card.hidden = false;
    var vr = view.getBoundingClientRect();
    var x = ev.clientX - vr.left + 14, yy = ev.clientY - vr.top + 14;
    if (x + card.offsetWidth > vr.width) x = ev.clientX - vr.left - card.offsetWidth - 10;
    card.style.left = x + 'px'; card.style.top = yy + 'px';
  }
  function hover(ev) {
    var rc = cv.getBoundingClientRect(), x = ev.clientX - rc.left, yy = ev.clientY - rc.top;
    var r = null;
    for (var i = 0; i < rows.length; i++) if (yy >= rows[i].y && yy < rows[i].y + rows[i].h) { r = rows[i]; break; }
    if (!r) return hideCard();
    var t = r.t, at = T(x), tol = 4 * span / W;
    if (r.t.sysmon || yy < r.y + MARK_H) {
      var j = lowerBound(t.mt, at - tol), best = -1;
      for (; j < t.mt.length && t.mt[j] <= at + tol; j++) {
        if (best < 0 || Math.abs(t.mt[j] - at) < Math.abs(t.mt[best] - at)) best = j;
      }
      if (best >= 0) return showCard(ev, t.mx[best], [['at', fmt(t.mt[best])], ['on', t.label]]);
    }
    var k = lowerBound(t.e, at - tol / 4);
    if (k < t.s.length && t.s[k] <= at + tol / 4) {
      return showCard(ev, gLabel(t.g[k]), [
        ['start', fmt(t.s[k])], ['duration', fmt(t.e[k] - t.s[k])],
        ['ended', D.reasons[t.r[k]]], ['P', t.p[k] < 0 ? 'none' : 'P' + t.p[k]], ['on', t.label]]);
    }
    var h = lowerBound(t.he, at);
    if (h < t.hs.length && t.hs[h] <= at) return showCard(ev, 'halted', [['from', fmt(t.hs[h])], ['for', fmt(t.he[h] - t.hs[h])]]);
    var sp = lowerBound(t.se, at);
    if (sp < t.ss.length && t.ss[sp] <= at) return showCard(ev, 'spinning', [['from', fmt(t.ss[sp])], ['for', fmt(t.se[sp] - t.ss[sp])]]);
    hideCard();
  }

  var drag = null;
  cv.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var rc = cv.getBoundingClientRect();
    var d = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaMode === 2 ? ev.deltaY * 400 : ev.deltaY;
    zoomAt(ev.clientX - rc.left, Math.exp(d * 0.0015));
  }, { passive: false });
  cv.addEventListener('mousedown', function (ev) {
    drag = { x: ev.clientX, t0: t0 }; cv.classList.add('drag'); hideCard(); ev.preventDefault();
  });
  window.addEventListener('mousemove', function (ev) {
    if (drag) { t0 = drag.t0 - (ev.clientX - drag.x) * span / W; clamp(); schedule(); }
    else if (ev.target === cv) hover(ev);
  });
  window.addEventListener('mouseup', function () { drag = null; cv.classList.remove('drag'); });
  cv.addEventListener('mouseleave', function () { if (!drag) hideCard(); });
  document.getElementById('zin').addEventListener('click', function () { zoomAt(W / 2, 0.5); });
  document.getElementById('zout').addEventListener('click', function () { zoomAt(W / 2, 2); });
  document.getElementById('zreset').addEventListener('click', function () { t0 = 0; span = FULL; schedule(); });
  window.addEventListener('keydown', function (ev) {
    if (ev.key === '+' || ev.key === '=') zoomAt(W / 2, 0.5);
    else if (ev.key === '-') zoomAt(W / 2, 2);
    else if (ev.key === '0') { t0 = 0; span = FULL; schedule(); }
  });
  window.addEventListener('resize', resize);
  resize();
  document.body.dataset.rows = String(rows.length);
})();
"#;

/// The whole trace as one self-contained HTML page.
pub fn html(m: &Model) -> String {
    let d = data(m);
    let summary = escape_xml(&crate::json::summary_line(m));
    let mut out = String::with_capacity(
        16 * 1024 + m.tracks.iter().map(|t| t.slices.len() * 40).sum::<usize>(),
    );
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>Execution trace: {summary}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    ));
    out.push_str(&format!(
        concat!(
            "<header><h1>Execution trace</h1><span id=\"summary\">{}</span>",
            "<div class=\"tools\"><span id=\"range\"></span>",
            "<button id=\"zin\" title=\"Zoom in (+)\">+</button>",
            "<button id=\"zout\" title=\"Zoom out (\u{2212})\">\u{2212}</button>",
            "<button id=\"zreset\" title=\"Show everything (0)\">reset</button></div></header>\n",
        ),
        summary
    ));
    out.push_str("<div id=\"view\"><div id=\"labels\"></div><canvas id=\"cv\"></canvas><div id=\"card\" hidden></div></div>\n");
    out.push_str(concat!(
        "<div id=\"legend\">",
        "<span><i class=\"sw\" style=\"background:linear-gradient(90deg,#c0504d 33%,#4f81bd 33% 66%,#9bbb59 66%)\"></i>goroutine runs (a colour each)</span>",
        "<span><i class=\"sw hatch\"></i>halted</span>",
        "<span><i class=\"sw spin\"></i>spinning</span>",
        "<span><i class=\"g\" style=\"color:#d62728\">▼</i>preempted by the timer interrupt</span>",
        "<span><i class=\"g\" style=\"color:#d62728\">▽</i>preempted at a safe point</span>",
        "<span><i class=\"g\" style=\"color:#1f77b4\">◆</i>steal</span>",
        "<span><i class=\"g\" style=\"color:#2ca02c\">●</i>create</span>",
        "<span><i class=\"g\" style=\"color:#ff7f0e\">○</i>timers ran</span>",
        "<span><i class=\"g\" style=\"color:#17becf\">▲</i>took from the global queue</span>",
        "<span><i class=\"sw\" style=\"height:1px;background:#555\"></i>wake-up (across CPUs)</span>",
        "</div>\n<p class=\"hint\">Wheel: zoom around the cursor. Drag: pan. Hover a run or a mark for details.</p>\n",
    ));
    out.push_str("<script type=\"application/json\" id=\"trace-data\">");
    out.push_str(&embed_json(&d));
    out.push_str("</script>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::sample_model;

    const OPEN: &str = r#"<script type="application/json" id="trace-data">"#;

    fn embedded(page: &str) -> Value {
        let start = page.find(OPEN).expect("the data script is there") + OPEN.len();
        let len = page[start..].find("</script>").expect("it is closed");
        serde_json::from_str(&page[start..start + len]).expect("the embedded JSON parses")
    }

    #[test]
    fn the_page_loads_nothing_and_mentions_no_http_even_when_labels_do() {
        let m = sample_model();
        assert!(
            m.goroutines[&19].label.contains("http://"),
            "the sample tests this"
        );
        let page = html(&m);
        let lower = page.to_ascii_lowercase();
        for bad in [
            "http", "src=", "href=", "@import", "url(", "<link", "<img", "<iframe",
        ] {
            assert!(!lower.contains(bad), "the page contains {bad:?}");
        }
        assert_eq!(
            lower.matches("<script").count(),
            2,
            "the data and the inline script"
        );
        assert!(!lower.contains("<script src"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn the_embedded_data_parses_back_to_the_model() {
        let m = sample_model();
        let d = embedded(&html(&m));
        assert_eq!(d, data(&m), "escaping changed nothing JSON.parse would see");
        let tracks = d["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), m.tracks.len());
        for (t, j) in m.tracks.iter().zip(tracks) {
            assert_eq!(j["label"], t.label.as_str());
            assert_eq!(j["m"], t.m);
            assert_eq!(j["s"].as_array().unwrap().len(), t.slices.len());
            assert_eq!(j["mt"].as_array().unwrap().len(), t.marks.len());
        }
        assert_eq!(d["gs"]["19"][0], m.goroutines[&19].label.as_str());
        assert_eq!(d["gs"]["17"][1], goroutine_color(17).as_str());
        let cpu0 = &tracks[0];
        let r0 = cpu0["r"][0].as_u64().unwrap() as usize;
        assert_eq!(d["reasons"][r0], "blocked: chan receive");
        assert_eq!(d["flows"].as_array().unwrap().len(), m.flows.len());
        assert_eq!(d["flows"][0], json!([2, 250_000, 0, 310_000]));
        assert_eq!(tracks[1]["p"][2], -1, "a run without a P");
        assert_eq!(tracks[3]["sysmon"], true);
    }

    #[test]
    fn the_script_builds_a_row_per_track_and_reports_them() {
        let page = html(&sample_model());
        assert!(page.contains("el.className = 'cpu-row'"));
        assert!(page.contains("el.dataset.m = String(t.m)"));
        assert!(page.contains("document.body.dataset.rows = String(rows.length)"));
        for id in ["zin", "zout", "zreset", "cv", "card"] {
            assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(page.contains("addEventListener('wheel'"));
    }

    #[test]
    fn embedding_escapes_only_inside_strings_and_round_trips() {
        let v = json!({"a": "</script><b>&x=1 HTTP http Http", "n": [1, 2]});
        let e = embed_json(&v);
        assert!(!e.contains('<') && !e.contains('=') && !e.to_ascii_lowercase().contains("http"));
        assert_eq!(serde_json::from_str::<Value>(&e).unwrap(), v);
    }
}
