/* The comparison pages of pnp.report_html: sortable tables and a synchronised image viewer.
   Plain browser JavaScript, no dependencies, inlined into every page (it works opened from disk). */
(function () {
  "use strict";

  // ------------------------------------------------------------------ sortable tables
  function cellValue(row, col) {
    const cell = row.cells[col];
    if (!cell || cell.dataset.value === undefined || cell.dataset.value === "") return null;
    const v = cell.dataset.value;
    return isNaN(Number(v)) ? v : Number(v);
  }

  function sortTable(table, col, th) {
    const first = th.dataset.first || "desc";
    const order = th.dataset.sort ? (th.dataset.sort === "desc" ? "asc" : "desc") : first;
    table.querySelectorAll("thead th").forEach(function (o) { delete o.dataset.sort; });
    th.dataset.sort = order;
    const sign = order === "desc" ? -1 : 1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellValue(a, col), y = cellValue(b, col);
      if (x === null || y === null) return (x === null) - (y === null);  // empty cells last
      if (typeof x === "number" && typeof y === "number") return sign * (x - y);
      return sign * String(x).localeCompare(String(y));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      const button = th.querySelector("button.sort");
      if (button) button.addEventListener("click", function () { sortTable(table, col, th); });
    });
  });

  // ------------------------------------------------------------------ image viewer
  const dataElement = document.getElementById("viewer-data");
  if (dataElement) viewer(JSON.parse(dataElement.textContent));

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function viewer(data) {
    const grid = document.getElementById("grid");
    const picker = document.getElementById("images");
    const toggle = document.getElementById("error-toggle");
    const reset = document.getElementById("reset");
    const size = document.getElementById("size");
    const zoomText = document.getElementById("zoom");
    const legend = document.getElementById("legend");
    const state = { s: 1, tx: 0, ty: 0, error: false, image: 0 };
    const pointers = new Map();
    let pinch = null;

    function boxSize() {
      const box = grid.querySelector(".box");
      return box ? [box.clientWidth, box.clientHeight] : [1, 1];
    }

    function clamp() {
      const wh = boxSize();
      state.s = Math.min(64, Math.max(1, state.s));
      state.tx = Math.min(0, Math.max(wh[0] * (1 - state.s), state.tx));
      state.ty = Math.min(0, Math.max(wh[1] * (1 - state.s), state.ty));
    }

    function apply() {
      clamp();
      const t = "translate(" + state.tx + "px, " + state.ty + "px) scale(" + state.s + ")";
      grid.querySelectorAll(".box img").forEach(function (img) {
        img.style.transform = t;
        const magnification = img.naturalWidth ? state.s * img.clientWidth / img.naturalWidth : 0;
        img.classList.toggle("pixelated", magnification > 1.001);
      });
      zoomText.textContent = "zoom " + state.s.toFixed(state.s < 10 ? 2 : 1) + "x";
    }

    function zoomAt(x, y, factor) {
      const s = Math.min(64, Math.max(1, state.s * factor));
      state.tx = x - (x - state.tx) * s / state.s;
      state.ty = y - (y - state.ty) * s / state.s;
      state.s = s;
      apply();
    }

    function sources() {
      grid.querySelectorAll(".box img").forEach(function (img) {
        const err = img.dataset.err;
        const want = state.error && err ? err : img.dataset.src;
        if (img.getAttribute("src") !== want) img.setAttribute("src", want);
      });
      grid.querySelectorAll(".panel .note").forEach(function (n) { n.hidden = !state.error; });
      toggle.setAttribute("aria-pressed", String(state.error));
      const item = data.images[state.image];
      legend.classList.toggle("on", state.error && item.vmax !== null);
      legend.querySelector(".max").textContent = item.vmax === null ? "" : item.vmax + "/255 (and above)";
    }

    function render() {
      const item = data.images[state.image];
      document.documentElement.style.setProperty("--aspect", String(item.aspect || 1));
      grid.textContent = "";
      item.panels.forEach(function (p) {
        const fig = el("figure", "panel" + (p.best ? " best" : ""));
        const cap = el("figcaption");
        cap.appendChild(el("b", "", p.label));
        if (p.psnr !== null && p.psnr !== undefined) cap.appendChild(document.createTextNode(" \u00b7 " + p.psnr.toFixed(2) + " dB"));
        cap.title = p.label + (p.psnr !== null && p.psnr !== undefined ? " \u00b7 " + p.psnr.toFixed(2) + " dB" : "");
        fig.appendChild(cap);
        if (p.missing) {
          fig.appendChild(el("div", "box missing", "missing: " + p.missing));
        } else {
          const box = el("div", "box");
          const img = el("img");
          img.alt = p.label;
          img.draggable = false;
          img.dataset.src = p.src;
          img.dataset.err = p.err || "";
          img.setAttribute("src", state.error && p.err ? p.err : p.src);
          img.addEventListener("load", apply);
          box.appendChild(img);
          fig.appendChild(box);
          if (!p.err) fig.appendChild(el("div", "note", p.no_err || "no error map"));
        }
        grid.appendChild(fig);
      });
      if (picker) picker.querySelectorAll("button.pick").forEach(function (b, i) {
        b.setAttribute("aria-pressed", String(i === state.image));
      });
      sources();
      apply();
    }

    function boxOf(target) { return target && target.closest ? target.closest(".box:not(.missing)") : null; }

    grid.addEventListener("wheel", function (e) {
      const box = boxOf(e.target);
      if (!box) return;
      e.preventDefault();
      const r = box.getBoundingClientRect();
      zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.002));
    }, { passive: false });

    grid.addEventListener("pointerdown", function (e) {
      const box = boxOf(e.target);
      if (!box) return;
      box.setPointerCapture(e.pointerId);
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, box: box });
      pinch = null;
    });
    grid.addEventListener("pointermove", function (e) {
      const p = pointers.get(e.pointerId);
      if (!p) return;
      if (pointers.size === 1) {
        state.tx += e.clientX - p.x;
        state.ty += e.clientY - p.y;
        p.x = e.clientX; p.y = e.clientY;
        apply();
        return;
      }
      p.x = e.clientX; p.y = e.clientY;
      const two = Array.from(pointers.values()).slice(0, 2);
      const d = Math.hypot(two[0].x - two[1].x, two[0].y - two[1].y);
      const r = two[0].box.getBoundingClientRect();
      const mx = (two[0].x + two[1].x) / 2 - r.left, my = (two[0].y + two[1].y) / 2 - r.top;
      if (pinch && pinch.d > 0) zoomAt(mx, my, d / pinch.d);
      pinch = { d: d };
    });
    function release(e) { pointers.delete(e.pointerId); pinch = null; }
    grid.addEventListener("pointerup", release);
    grid.addEventListener("pointercancel", release);
    grid.addEventListener("dblclick", function () { state.s = 1; apply(); });

    toggle.addEventListener("click", function () { state.error = !state.error; sources(); });
    reset.addEventListener("click", function () { state.s = 1; state.tx = 0; state.ty = 0; apply(); });
    size.addEventListener("input", function () {
      document.documentElement.style.setProperty("--box", size.value + "px");
      state.s = 1; state.tx = 0; state.ty = 0;
      apply();
    });
    if (picker) picker.querySelectorAll("button.pick").forEach(function (b, i) {
      b.addEventListener("click", function () { state.image = i; render(); });
    });
    document.addEventListener("keydown", function (e) {
      if (e.target.closest && e.target.closest("input, textarea")) return;
      if (e.key === "e") toggle.click();
      else if (e.key === "0") reset.click();
    });
    render();
  }
})();
