"""The stylesheet and the script every yolotal HTML report inlines (no file, font or library is fetched)."""

CSS = r"""
:root{--ink:#1d2733;--dim:#5b6673;--line:#dde3ea;--bg:#f5f7fa;--card:#fff;--bad:#c62828;--warn:#b26a00;--ok:#2e7d32;
--accent:#1f63b5;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink)}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);font-size:14px;line-height:1.45}
header{background:#17212c;color:#fff;padding:18px 28px 14px}
header h1{margin:0;font-size:21px;font-weight:600;letter-spacing:.2px}
header .sub{color:#b9c4cf;margin-top:4px;font-size:13px;word-break:break-all}
nav{position:sticky;top:0;z-index:5;background:#223041;padding:0 28px;display:flex;gap:2px;flex-wrap:wrap}
nav a{color:#d5dee8;text-decoration:none;padding:8px 12px;font-size:13px}
nav a:hover{background:#2f4258;color:#fff}
main{max-width:1280px;margin:0 auto;padding:18px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 18px}
section>h2{margin:0 0 12px;font-size:17px;font-weight:600}
h2 .count{color:var(--dim);font-weight:400;font-size:14px;margin-left:6px}
.muted{color:var(--dim)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.stat{border:1px solid var(--line);border-radius:6px;padding:9px 12px;background:#fbfcfd}
.stat .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.stat .k{color:var(--dim);font-size:12px}
.settings{margin:12px 0 0;color:var(--dim);font-size:13px}
.alerts{list-style:none;margin:0;padding:0}
.alert{border-left:4px solid var(--ok);background:#f6fbf6;padding:8px 12px;margin:0 0 8px;border-radius:0 6px 6px 0}
.alert.bad{border-color:var(--bad);background:#fdf4f4}.alert.warn{border-color:var(--warn);background:#fff9ef}
.alert b{font-variant-numeric:tabular-nums}
.alert details{margin-top:4px}.alert summary{cursor:pointer;color:var(--accent)}
.alert ol{margin:6px 0 0;padding-left:22px;max-height:260px;overflow:auto;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.25fr);gap:18px;align-items:start}
.grid2.even{grid-template-columns:minmax(0,1fr) minmax(0,1fr);margin-top:14px}
@media (max-width:900px){.grid2,.grid2.even{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.l{text-align:left}
th{font-weight:600;font-size:12.5px;color:#34404d;background:#f0f3f7}
.tablewrap{overflow:auto}
svg.chart{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--dim);font-size:12.5px;margin:0 0 12px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:5px;vertical-align:-1px}
.legend i.ring{background:none;border:2px solid currentColor}
.legend i.box{border-radius:0;border:2px solid var(--ok);background:none}
.legend i.bad{border-color:var(--bad)}.legend i.unknown{border-color:#f0b400}.legend i.dash{border-style:dashed}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fbfcfd}
figure img{width:100%;height:auto;image-rendering:auto;display:block;border-radius:3px;background:#727272}
figcaption{font-size:12px;margin-top:6px}
figcaption .t{font-weight:600;font-size:12.5px;word-break:break-all}
figcaption table td{padding:1px 2px;border:0;font-size:12px}
figcaption table td:first-child{color:var(--dim)}
.flag{display:inline-block;background:#fdecea;color:var(--bad);border-radius:9px;padding:0 7px;margin:1px 3px 1px 0;font-size:11.5px;white-space:nowrap}
.flag.tiny{background:#fff3e0;color:var(--warn)}
.toolbar{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin:0 0 10px}
.toolbar input{flex:1 1 280px;max-width:420px;padding:6px 10px;border:1px solid #c5ced8;border-radius:5px;font:inherit}
.toolbar button{padding:5px 11px;border:1px solid #c5ced8;background:#fff;border-radius:5px;font:inherit;cursor:pointer}
.toolbar button:disabled{opacity:.45;cursor:default}
#gt-table th{cursor:pointer;user-select:none;position:sticky;top:0}
#gt-table th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
#gt-table th[aria-sort=descending]::after{content:" ▼";font-size:10px}
#gt-table td.file{text-align:left;max-width:360px;overflow:hidden;text-overflow:ellipsis}
#gt-table tbody tr:hover{background:#f4f8fd}
.gtscroll{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:6px}
footer{color:var(--dim);font-size:12px;text-align:center;padding:0 0 30px}
"""

# The per-GT table: rows are embedded as JSON (columns + arrays); one page of rows is in the DOM at a time.
# Sorting reorders an index array (stable: ties keep the file order), filtering keeps the rows whose text holds
# every word typed. Built for 100 000 rows: the text index is made on the first filter only.
JS = r"""
"use strict";
(function () {
  var src = document.getElementById("gt-data");
  if (!src) { document.body.setAttribute("data-ready", "1"); return; }
  var D = JSON.parse(src.textContent);
  var cols = D.columns, rows = D.rows, files = D.files || [], PAGE = D.page || 100;
  var all = new Array(rows.length);
  for (var i = 0; i < rows.length; i++) all[i] = i;
  var view = all, sortCol = -1, sortDir = 1, page = 0, text = null, renders = 0;
  var tbody = document.querySelector("#gt-table tbody");
  var status = document.getElementById("gt-status");
  var prev = document.getElementById("gt-prev"), next = document.getElementById("gt-next");
  var esc = function (s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  };
  var nf = new Intl.NumberFormat("en-US", {maximumFractionDigits: 4});
  function plain(c, v) {
    if (v === null || v === undefined) return "";
    if (c.t === "file") return files[v];
    if (c.t === "l" || c.t === "flags") return v.join(c.t === "l" ? " " : ", ");
    return String(v);
  }
  function cell(c, v) {
    if (v === null || v === undefined) return '<td class="muted">—</td>';
    if (c.t === "file") return '<td class="file" title="' + esc(files[v]) + '">' + esc(files[v]) + "</td>";
    if (c.t === "n") return "<td>" + (typeof v === "number" ? nf.format(v) : esc(v)) + "</td>";
    if (c.t === "l") return "<td>" + esc(v.join(" · ")) + "</td>";
    if (c.t === "flags") {
      return '<td style="text-align:left">' + v.map(function (f) {
        return '<span class="flag' + (f === "tiny" ? " tiny" : "") + '">' + esc(f) + "</span>";
      }).join("") + "</td>";
    }
    return '<td style="text-align:left">' + esc(v) + "</td>";
  }
  function key(c, v) {
    if (v === null || v === undefined) return null;
    if (c.t === "file") return files[v];
    if (c.t === "l") { var s = 0; for (var k = 0; k < v.length; k++) s += v[k]; return s; }
    if (c.t === "flags") return v.length ? v.join(",") : "";
    return v;
  }
  function render() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    if (page >= pages) page = pages - 1;
    var lo = page * PAGE, hi = Math.min(view.length, lo + PAGE), out = [];
    for (var r = lo; r < hi; r++) {
      var row = rows[view[r]], h = "<tr>";
      for (var c = 0; c < cols.length; c++) h += cell(cols[c], row[c]);
      out.push(h + "</tr>");
    }
    tbody.innerHTML = out.join("");
    var shown = view.length ? (lo + 1).toLocaleString("en-US") + "–" + hi.toLocaleString("en-US") : "0";
    status.textContent = "rows " + shown + " of " + view.length.toLocaleString("en-US") +
      (view.length !== rows.length ? " (filtered from " + rows.length.toLocaleString("en-US") + ")" : "") +
      " · page " + (page + 1) + " of " + pages;
    status.setAttribute("data-shown", String(hi - lo));
    status.setAttribute("data-matching", String(view.length));
    status.setAttribute("data-renders", String(++renders));
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  function sortView() {
    if (sortCol < 0) return;
    var c = cols[sortCol], ks = new Array(rows.length);
    for (var k = 0; k < view.length; k++) ks[view[k]] = key(c, rows[view[k]][sortCol]);
    var dir = sortDir;
    view = view.slice().sort(function (a, b) {
      var x = ks[a], y = ks[b];
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir || a - b;
    });
  }
  var heads = document.querySelectorAll("#gt-table thead th");
  function sortBy(i) {
    if (sortCol === i) sortDir = -sortDir; else { sortCol = i; sortDir = 1; }
    for (var k = 0; k < heads.length; k++) heads[k].setAttribute("aria-sort", k === sortCol ? (sortDir > 0 ? "ascending" : "descending") : "none");
    sortView();
    page = 0;
    render();
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener("click", function () { sortBy(i); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(i); } });
  });
  function filter(q) {
    var words = q.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) { view = all; }
    else {
      if (text === null) {
        text = new Array(rows.length);
        for (var r = 0; r < rows.length; r++) {
          var parts = [];
          for (var c = 0; c < cols.length; c++) parts.push(plain(cols[c], rows[r][c]));
          text[r] = parts.join(" \u0001 ").toLowerCase();
        }
      }
      view = all.filter(function (r) {
        for (var w = 0; w < words.length; w++) if (text[r].indexOf(words[w]) < 0) return false;
        return true;
      });
    }
    sortView();
    page = 0;
    render();
  }
  var timer = null, box = document.getElementById("gt-filter");
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { filter(box.value); }, 120);
  });
  prev.addEventListener("click", function () { page--; render(); });
  next.addEventListener("click", function () { page++; render(); });
  render();
  document.body.setAttribute("data-ready", "1");
})();
"""
