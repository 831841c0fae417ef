"""Interactive comparison pages: a sweep's ``report/index.html`` and a single run's ``compare.html``.

A page is self-contained: its script and style (``pnp/assets/report.js`` and ``report.css``)
are inlined, nothing is fetched from the network, and it works opened from disk. Images are
linked files, never embedded: the runs' own PNGs by relative path, plus what is derived here
into the page's files folder (absolute-error maps, on one colour scale per problem and image
shared by every method, and thumbnails). A sweep of hundreds of jobs is a small index page
(the methods x problems table, sortable, thumbnails in the cells) and one page per problem:

- every method's result beside the ground truth and the observation, with synchronised zoom
  and pan (wheel, pinch, drag; nearest-neighbour once zoomed in), each labelled with its
  method and PSNR; a toggle between the images and their error maps; a sampler's
  uncertainty map and first samples where the run wrote them;
- PSNR versus iteration (inline SVG, the mean over the problem's images);
- each method's run parameters, collapsed.

Missing or unreadable files, and jobs without results, are named on the page instead of
breaking it.

The input is neutral: rows, one per (method, problem, image), with ``method``, ``problem``,
``image``, ``psnr``, ``ssim``, ``_dir`` (the folder holding restored.png, ...) and optionally
``job``, ``overrides``, ``params`` (or ``_params``), ``psnr_observed``, ``baseline``.
``pnp.report`` builds them for a sweep and ``pnp.runner`` for a single run: this module
depends on ``pnp.io`` only.
"""
from __future__ import annotations

import csv
import functools
import html
import json
import math
import os
import re
import sys
from collections import defaultdict
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from pnp.io import atomic_write
from pnp.records import distinct

SCALE_STEPS = (1, 2, 5, 10, 20, 50, 100, 255)  # ceilings of the error colour scale, 0-255 units
MAX_SAMPLES = 3  # sampler samples shown per method
THUMB = 64
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
HELP = ("Wheel or pinch to zoom, drag to pan: every image follows. Double-click zooms out; "
        "<kbd>E</kbd> toggles the error maps, <kbd>0</kbd> resets.")


# ----------------------------------------------------------------------------- small functions

def _asset(name: str) -> str:
    return (files("pnp") / "assets" / name).read_text(encoding="utf-8")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text).replace("σ", "sigma")).strip("_.") or "x"


def _href(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path, base)).as_posix())


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _json_script(data, element_id: str) -> str:
    text = json.dumps(data, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _document(title: str, body: str, script: bool = True) -> str:
    js = f"<script>\n{_asset('report.js')}</script>\n" if script else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title>\n<style>\n{_asset('report.css')}</style></head>\n"
            f"<body>\n{body}\n{js}</body></html>\n")


def _write_text(text: str, path: Path) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def _save_derived(im: Image.Image, path: Path) -> None:
    """A derived picture (error map, thumbnail): atomic (temporary name, then rename), without the
    fsync of ``pnp.io.atomic_write``: it is rebuilt from the run's files whenever the page is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        im.save(tmp, format="PNG", compress_level=3)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _error_png(err: np.ndarray, vmax: float, path: Path) -> None:
    """An H x W error map (0-255 units) as a palette PNG through the colour map, clipped at ``vmax``."""
    im = Image.fromarray(np.clip(err * (255.0 / vmax), 0, 255).astype(np.uint8), "L").convert("P")
    im.putpalette(_lut().flatten().tolist())
    _save_derived(im, path)


def _load(path: Path) -> np.ndarray | None:
    """H x W x C float32 in 0-255 (C = 1 or 3), or None when missing or unreadable."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if im.mode in ("1", "L", "LA", "I", "I;16") else "RGB")
            arr = np.asarray(im, dtype=np.float32)
    except (OSError, ValueError):
        return None
    return arr[..., None] if arr.ndim == 2 else arr


def _thumb(src: Path, dst: Path) -> bool:
    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB), Image.Resampling.BOX)
            _save_derived(im, dst)
        return True
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """256 x 3 uint8: the inferno colour map (black, purple, orange, yellow)."""
    from matplotlib import colormaps  # here: only a page with error maps pays matplotlib's start-up

    return (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def _gradient() -> str:
    stops = ", ".join(f"rgb({r},{g},{b}) {i / 2.55:.0f}%" for i, (r, g, b) in
                      ((i, _lut()[i]) for i in range(0, 256, 17)))
    return f"linear-gradient(to right, {stops})"


def _abs_error(x: np.ndarray, ref: np.ndarray) -> np.ndarray | None:
    """H x W mean absolute error over the channels, 0-255 units; None when the sizes differ."""
    if x.shape[:2] != ref.shape[:2]:
        return None
    if x.shape[2] != ref.shape[2]:
        x, ref = (np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in (x, ref))
    return np.abs(x - ref).mean(axis=2)


def _scale(errors: list[np.ndarray]) -> int:
    """The smallest step of SCALE_STEPS at or above the largest 99.5th error percentile."""
    top = max((float(np.percentile(e[::2, ::2], 99.5)) for e in errors), default=0.0)  # a quarter suffices
    return next((s for s in SCALE_STEPS if s >= top), SCALE_STEPS[-1])


def read_curve(csv_path: Path) -> dict[int, float]:
    """iteration -> PSNR from a run's convergence.csv; empty when missing, unreadable or without PSNR."""
    try:
        with open(csv_path, newline="") as f:
            return {int(r["iteration"]): float(r["psnr"]) for r in csv.DictReader(f)
                    if r.get("psnr") not in (None, "")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ----------------------------------------------------------------------------- curves

def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def curves_svg(curves: dict[str, list[tuple[int, float]]], width: int = 680, height: int = 300) -> str:
    """PSNR versus iteration, one polyline per method, as an inline SVG with its legend."""
    points = [p for line in curves.values() for p in line]
    if not points:
        return '<p class="muted">No PSNR recorded per iteration (no convergence.csv with a psnr column).</p>'
    left, right, top, bottom = 52, 14, 10, 36
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = max((y1 - y0) * 0.06, 0.05)
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="PSNR versus iteration">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
             'fill="#fff" stroke="#ccc"/>']
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in _ticks(x0, x1):
        if float(t).is_integer():
            parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{height - bottom}" '
                         f'y2="{height - bottom + 4}" stroke="#999"/>'
                         f'<text x="{sx(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle">iteration</text>'
                 f'<text transform="translate(13 {(top + height - bottom) / 2}) rotate(-90)" '
                 'text-anchor="middle">PSNR (dB)</text>')
    legend = []
    for i, (method, line) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(f'<polyline class="curve" fill="none" stroke="{colour}" stroke-width="1.8" points="{coords}">'
                     f'<title>{_e(method)}: {line[-1][1]:.2f} dB at iteration {line[-1][0]}</title></polyline>')
        if len(line) < 30:
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{colour}"/>' for x, y in line]
        legend.append(f'<span style="color:{colour}">&#9632;</span> {_e(method)} '
                      f'<span class="muted">({line[-1][1]:.2f} dB)</span>')
    parts.append("</svg>")
    return "".join(parts) + '<div class="legend-list">' + " &nbsp; ".join(legend) + "</div>"


def _curves(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Per method: (iteration, mean PSNR over its images)."""
    out = {}
    for method in distinct(r["method"] for r in rows):
        sums: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            if r["method"] == method:
                for it, value in read_curve(Path(r["_dir"]) / "convergence.csv").items():
                    sums[it].append(value)
        if sums:
            out[method] = sorted((it, sum(v) / len(v)) for it, v in sums.items())
    return out


# ----------------------------------------------------------------------------- one problem

def _label_of(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return str(path)


def _image_view(rows: list[dict], page_dir: Path, files_dir: Path, root: Path, missing: list[str]) -> dict:
    """The panels of one (problem, image): ground truth, observation, every method, sampler outputs."""
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], r)
    rows = list(by_method.values())
    dirs = [Path(r["_dir"]) for r in rows]
    gt_path = next((d / "ground_truth.png" for d in dirs if (d / "ground_truth.png").is_file()), None)
    gt = _load(gt_path) if gt_path else None
    panels, errors = [], {}
    if gt is not None:
        panels.append({"label": "ground truth", "src": _href(gt_path, page_dir), "psnr": None,
                       "no_err": "the reference"})
        aspect = gt.shape[0] / gt.shape[1]
    else:
        what = "ground_truth.png" + (" (unreadable)" if gt_path else "")
        panels.append({"label": "ground truth", "missing": f"{what}: no error maps", "psnr": None})
        missing.append(f"{_label_of(dirs[0] / 'ground_truth.png', root)}{' (unreadable)' if gt_path else ''}")
        aspect = None
    obs_path = next((d / "observed.png" for d in dirs if (d / "observed.png").is_file()), None)
    if obs_path:
        first = rows[0]
        name = str(first.get("baseline") or "")
        panels.append({"label": "observed" + (f" ({name})" if name and name != "observed" else ""),
                       "src": _href(obs_path, page_dir), "psnr": _num(first.get("psnr_observed")), "key": "observed"})
    else:
        panels.append({"label": "observed", "missing": "observed.png", "psnr": None})
        missing.append(_label_of(dirs[0] / "observed.png", root))
    best = max((_num(r.get("psnr")) for r in rows if _num(r.get("psnr")) is not None), default=None)
    extras = []
    for i, r in enumerate(rows):
        d = Path(r["_dir"])
        psnr = _num(r.get("psnr"))
        panel = {"label": r["method"], "psnr": psnr, "best": psnr is not None and psnr == best and len(rows) > 1,
                 "key": f"m{i}"}
        restored = d / "restored.png"
        arr = _load(restored) if restored.is_file() else None
        if arr is None:
            state = " (unreadable)" if restored.is_file() else ""
            panel["missing"] = "restored.png" + state
            missing.append(f"{_label_of(restored, root)}{state} ({r['method']})")
        else:
            panel["src"] = _href(restored, page_dir)
            aspect = aspect or arr.shape[0] / arr.shape[1]
            if gt is not None:
                errors[panel["key"]] = _abs_error(arr, gt)
        panels.append(panel)
        if (d / "uncertainty.png").is_file():
            scale = _num(r.get("uncertainty_scale"))
            extras.append({"label": f"{r['method']}: uncertainty"
                           + (f" (std, yellow = {scale * 255:.3g}/255)" if scale else ""),
                           "src": _href(d / "uncertainty.png", page_dir), "psnr": None,
                           "no_err": "an uncertainty map"})
        samples = sorted((d / "samples").glob("*.png")) if (d / "samples").is_dir() else []
        for k, s in enumerate(samples[:MAX_SAMPLES]):
            extras.append({"label": f"{r['method']}: sample {k + 1} of {len(samples)}",
                           "src": _href(s, page_dir), "psnr": None, "no_err": "a sample"})
    if obs_path and gt is not None:
        obs = _load(obs_path)
        if obs is not None:
            errors["observed"] = _abs_error(obs, gt)
    vmax = _scale([e for k, e in errors.items() if e is not None and k != "observed"]
                  or [e for e in errors.values() if e is not None])
    for panel in panels:
        err = errors.get(panel.get("key"))
        if err is None:
            panel.setdefault("no_err", "no error map: no ground truth" if gt is None
                             else "no error map: another size than the ground truth")
            continue
        target = files_dir / f"error_{_slug(panel['key'])}.png"
        _error_png(err, vmax, target)
        panel["err"] = _href(target, page_dir)
    for panel in panels:
        panel.pop("key", None)
    return {"panels": panels + extras, "aspect": round(aspect or 1.0, 5), "vmax": vmax if errors else None}


def _params_html(rows: list[dict]) -> str:
    out = []
    for method in distinct(r["method"] for r in rows):
        r = next(r for r in rows if r["method"] == method)
        params = r.get("_params") or r.get("params")
        if isinstance(params, dict) and params:
            title, body = "parameters", params
        else:
            title = "metrics keys (the run recorded no parameters)"
            body = {k: v for k, v in r.items() if not k.startswith("_") and k not in ("method", "problem", "params")}
        overrides = f'<p class="muted">overrides: <code>{_e(r["overrides"])}</code></p>' if r.get("overrides") else ""
        job = f" (job {_e(r['job'])})" if r.get("job") not in (None, "") else ""
        out.append(f'<details class="params"><summary><b>{_e(method)}</b>{job}: {title}</summary>{overrides}'
                   f"<pre>{_e(json.dumps(body, indent=2, default=str))}</pre></details>")
    return "\n".join(out)


def _missing_html(missing: list[str]) -> str:
    if not missing:
        return ""
    items = "".join(f"<li><code>{_e(m)}</code></li>" for m in distinct(missing))
    return f'<div class="warning missing-list"><b>Missing or unreadable files</b> (shown as empty panels):<ul>{items}</ul></div>'


def problem_body(problem: str, rows: list[dict], page_dir: Path, files_dir: Path, root: Path,
                 header: str = "", footer: str = "") -> tuple[str, list[str]]:
    """The body of one problem's page and the files it found missing."""
    images = distinct(str(r.get("image", "")) for r in rows)
    missing: list[str] = []
    views, picks = [], []
    for i, image in enumerate(images):
        mine = [r for r in rows if str(r.get("image", "")) == image]
        sub = files_dir / (f"{i:03d}_{_slug(Path(image).stem)}" if len(images) > 1 else "")
        view = _image_view(mine, page_dir, sub, root, missing)
        view["name"] = Path(image).name or image
        views.append(view)
        thumb = next((p["src"] for p in view["panels"] if p.get("src")), None)
        gt = next((Path(r["_dir"]) / "ground_truth.png" for r in mine if (Path(r["_dir"]) / "ground_truth.png").is_file()),
                  None)
        if gt and _thumb(gt, sub / "thumb_gt.png"):
            thumb = _href(sub / "thumb_gt.png", page_dir)
        picks.append(f'<button class="pick" type="button" title="{_e(view["name"])}">'
                     + (f'<img src="{thumb}" alt="{_e(view["name"])}" loading="lazy">' if thumb else _e(view["name"]))
                     + "</button>")
    methods = distinct(r["method"] for r in rows)
    picker = (f'<span id="images" class="images">image: {"".join(picks)}</span>' if len(images) > 1
              else f'<span class="muted">{_e(views[0]["name"])}</span>' if views else "")
    body = f"""{header}
<h1>{_e(problem)}</h1>
<p class="muted">{len(images)} image{'s' if len(images) != 1 else ''}, {len(methods)} method{'s' if len(methods) != 1 else ''}. {HELP}</p>
{_missing_html(missing)}
<div class="toolbar">{picker}
<button id="error-toggle" type="button" aria-pressed="false" title="absolute error |x - ground truth|, one colour scale for every panel">show |error|</button>
<span id="legend" class="legend">|error| 0 <span class="bar" style="background:{_gradient()}"></span><span class="max"></span></span>
<button id="reset" type="button">reset zoom</button>
<label class="muted">size <input id="size" type="range" min="120" max="720" step="8" value="256"></label>
<span id="zoom" class="muted">zoom 1.00x</span></div>
<div id="grid" class="grid"></div>
<h2>PSNR versus iteration</h2>
<p class="muted">Mean over the problem's images.</p>
<div class="curves">{curves_svg(_curves(rows))}</div>
<h2>Run parameters</h2>
{_params_html(rows)}
{footer}
{_json_script({"problem": problem, "images": views}, "viewer-data")}"""
    return body, missing


# ----------------------------------------------------------------------------- pages

def write_compare(run_dir: str | Path, entries: list[dict]) -> Path | None:
    """``compare.html`` in a single run's folder (its derived files in ``compare_files/``);
    a failure here is a warning, never the run's failure. Returns the page, or None."""
    run_dir = Path(run_dir)
    try:
        rows = []
        for e in entries:
            outdir = e.get("outdir") or ("." if len(entries) == 1 else Path(str(e.get("image", ""))).stem)
            rows.append({**e, "method": f"{e.get('prior', '?')} + {e.get('solver', '?')}",
                         "problem": str(e.get("problem_label") or e.get("op", "?")), "_dir": run_dir / outdir})
        problem = distinct(r["problem"] for r in rows)[0]
        body, _ = problem_body(problem, rows, run_dir, run_dir / "compare_files", run_dir)
        page = run_dir / "compare.html"
        _write_text(_document(f"{rows[0]['method']} on {problem}", body), page)
        return page
    except Exception as err:  # the page must never cost the run its results
        print(f"warning: compare.html not written: {type(err).__name__}: {err}", file=sys.stderr)
        return None


def _cell_html(value, best: bool, href: str, thumb: str | None) -> str:
    if value is None or value[0] is None:
        return '<td class="cell" data-value="">–</td>'
    text = f"{value[0]:.2f} / {value[1]:.3f}" if value[1] is not None else f"{value[0]:.2f}"
    img = f'<img class="thumb" src="{thumb}" alt="" loading="lazy">' if thumb else ""
    return (f'<td class="cell{" best" if best else ""}" data-value="{value[0]:.6f}">'
            f'<a href="{href}" title="n = {value[2]}">{img}{text}</a></td>')


def write_sweep_page(sweep_dir: str | Path, rows: list[dict], table: tuple, unfinished: list[dict],
                     bad: list[str] = (), summary: str = "") -> Path:
    """``SWEEP_DIR/report/index.html`` and one ``problem_*.html`` per problem; return the index.

    ``table``: (methods, problems, cells[(method, problem)] = (psnr, ssim, n), seconds per image,
    baseline[problem] = (psnr, ssim, n)) as ``pnp.report.pivot`` computes it; ``unfinished``: one
    dict per job without results (job, status, method, overrides, reason)."""
    sweep_dir = Path(sweep_dir)
    report = sweep_dir / "report"
    methods, problems, cells, seconds, baseline = table if rows else ([], [], {}, {}, {})
    pages, taken = {}, set()
    for p in problems:
        name = f"problem_{_slug(p)}"
        while name in taken:
            name += "_"
        taken.add(name)
        pages[p] = name
    missing_all: list[str] = []
    crumbs = '<nav class="crumbs"><a href="index.html">&larr; all problems</a></nav>'
    for p in problems:
        mine = [r for r in rows if r["problem"] == p]
        try:
            body, missing = problem_body(p, mine, report, report / "files" / pages[p], sweep_dir, header=crumbs)
        except Exception as err:  # one broken problem must not cost the others their page
            body, missing = (f"{crumbs}<h1>{_e(p)}</h1><div class=\"warning\">This view could not be built: "
                             f"{_e(type(err).__name__)}: {_e(err)}</div>"), [f"{p}: view not built ({err})"]
        missing_all += [f"{p}: {m}" for m in missing]
        _write_text(_document(f"{p} — comparison", body), report / f"{pages[p]}.html")

    # the methods x problems table
    base_label = "baseline: " + " / ".join(distinct(str(r.get("baseline") or "observed") for r in rows))
    full = {**cells, **{(base_label, p): v for p, v in baseline.items()}}
    best = {}
    for p in problems:
        scores = [(full[m, p][0], m) for m in [*methods, base_label] if (m, p) in full and full[m, p][0] is not None]
        best[p] = max(scores)[1] if scores else None
    head = ['<th data-first="asc"><button class="sort" type="button">method</button></th>']
    head += [f'<th><button class="sort" type="button">{_e(p)}</button> <a href="{pages[p]}.html" '
             f'title="open the side-by-side view">view</a></th>' for p in problems]
    head.append('<th data-first="asc"><button class="sort" type="button">s/image</button></th>')
    body_rows = []
    for m in [*methods, base_label] if rows else []:
        tds = [f'<td data-value="{_e(m)}">{_e(m)}</td>']
        for p in problems:
            thumb = None
            first = next((r for r in rows if r["method"] == m and r["problem"] == p), None)
            if first is not None and (Path(first["_dir"]) / "restored.png").is_file():
                target = report / "files" / "thumbs" / f"{_slug(first.get('job', 'run'))}_{pages[p]}.png"
                if _thumb(Path(first["_dir"]) / "restored.png", target):
                    thumb = _href(target, report)
            tds.append(_cell_html(full.get((m, p)), best[p] == m, f"{pages[p]}.html", thumb))
        sec = seconds.get(m)
        tds.append(f'<td data-value="{"" if sec is None else f"{sec:.6g}"}">{"–" if sec is None else f"{sec:.3g}"}</td>')
        cls = ' class="baseline"' if m == base_label else ""
        body_rows.append(f'<tr{cls}>{"".join(tds)}</tr>')
    parts = ["<h1>Sweep comparison</h1>", f'<p class="muted">{_e(summary)}</p>' if summary else ""]
    if bad:
        parts.append('<div class="warning"><b>Observation mismatch: this table is not a fair comparison.</b> '
                     "These methods were given different observations of the same problem and image:<ul>"
                     + "".join(f"<li>{_e(b)}</li>" for b in bad) + "</ul></div>")
    if rows:
        parts += ['<p class="muted">Cells: mean PSNR (dB) / SSIM over the images; &#9733; the best PSNR of the '
                  "column. Click a column's name to sort by it, a cell to open that problem's side-by-side view.</p>",
                  f'<table class="sortable summary" id="summary"><thead><tr>{"".join(head)}</tr></thead>'
                  f'<tbody>{"".join(body_rows)}</tbody></table>',
                  "<h2>Problems</h2><ul class=\"problems-list\">"
                  + "".join(f'<li><a href="{pages[p]}.html">{_e(p)}</a> <span class="muted">'
                            f'({len(distinct(str(r.get("image")) for r in rows if r["problem"] == p))} images, '
                            f'{len(distinct(r["method"] for r in rows if r["problem"] == p))} methods)</span></li>'
                            for p in problems) + "</ul>"]
    else:
        parts.append('<div class="warning"><b>No job finished</b>: nothing to compare; the reasons are below.</div>')
    if unfinished:
        parts += ['<h2>Jobs without results</h2><table class="jobs" id="unfinished"><thead><tr><th>job</th>'
                  "<th>status</th><th>method</th><th>overrides</th><th>reason</th></tr></thead><tbody>"
                  + "".join(f'<tr class="{_e(u.get("status", ""))}"><td>{_e(u.get("job", ""))}</td>'
                            f'<td>{_e(u.get("status", ""))}</td><td>{_e(u.get("method", ""))}</td>'
                            f'<td><code>{_e(u.get("overrides", ""))}</code></td>'
                            f'<td class="reason">{_e(u.get("reason", ""))}</td></tr>' for u in unfinished)
                  + "</tbody></table>"]
    if missing_all:
        parts += ["<h2>Missing files</h2>", _missing_html(missing_all)]
    index = report / "index.html"
    _write_text(_document("Sweep comparison", "\n".join(parts)), index)
    return index
