"""``python -m pnp.report SWEEP_DIR``: one fair table, figures and checks for a finished sweep.

Writes into SWEEP_DIR:

- ``summary.csv``: one row per (job, image) with every metric and the job's overrides (one row
  with the reason for a skipped or failed job);
- ``summary.md``: rows = method (prior + solver + its hyperparameter overrides), columns =
  problems (operator setting and noise), cells = mean PSNR / SSIM over the images, the best
  PSNR of each column in bold, a seconds-per-image column, the operator's baseline as a row,
  and the skipped, failed and unreadable jobs with their reasons;
- ``figures/crops_<problem>.png`` (the same crop of ground truth, observation and every
  method) and ``figures/psnr_<problem>.png`` (PSNR versus iteration, mean over the images);
- ``report/index.html``: the interactive page (``pnp.report_html``): the table, sortable, each
  cell opening that problem's side-by-side view with synchronised zoom, error maps, curves
  and each method's parameters. Self-contained: open it from disk.

It checks that every method of a column saw the identical observation of each image
(``observation_sha256``): a mismatch is reported at the top of summary.md and on stderr, and
the exit code is 1. Exit code 1 too when no job finished; 2 when SWEEP_DIR holds no runs.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from pnp.errors import PnPError
from pnp.io import atomic_write, save_csv
from pnp.records import VOLATILE_KEYS, distinct, finite_mean, read_json, setting_label
from pnp.report_html import read_curve, write_sweep_page

# Overrides that change neither the method nor the problem (averaged over, or speed only).
IGNORED = {*VOLATILE_KEYS, "image", "device", "benchmark.images", "benchmark.kernels"}
PROBLEM_KEYS = ("op", "noise", "benchmark", "seed", "metrics")  # and their dotted sub-keys
METRICS = ("psnr", "ssim")


@dataclass
class Job:
    name: str
    path: Path
    status: str  # done | skipped | failed | incomplete | unreadable
    overrides: list[str]
    reason: str = ""
    entries: list[dict] = field(default_factory=list)
    params: dict | None = None  # the run's parameters (metrics.json's top-level ``params``), when recorded


# ----------------------------------------------------------------------------- reading

def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep; a single run's folder (``python -m pnp benchmark=...``) is its own job."""
    if (sweep_dir / "metrics.json").is_file() or (sweep_dir / "status.json").is_file():
        return [sweep_dir]
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
            and any((p / name).exists() for name in ("status.json", "metrics.json", ".hydra"))]
    return sorted(dirs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def _overrides(path: Path, status) -> list[str]:
    if isinstance(status, dict) and isinstance(status.get("overrides"), list):
        return [str(o) for o in status["overrides"]]
    try:
        return [str(o) for o in OmegaConf.load(path / ".hydra" / "overrides.yaml")]
    except Exception:
        return []


def _entries(metrics: dict) -> list[dict]:
    items = metrics.get("images") if "images" in metrics else [metrics]
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise ValueError("no per-image entries")
    for e in items:
        e.setdefault("outdir", "." if "images" not in metrics else Path(str(e.get("image", ""))).stem)
    return items


def load_job(path: Path) -> Job:
    status_file, metrics_file = path / "status.json", path / "metrics.json"
    status = read_json(status_file) if status_file.exists() else None
    job = Job(path.name, path, "incomplete", _overrides(path, status))
    if status_file.exists() and not isinstance(status, dict):
        job.status, job.reason = "unreadable", "corrupted status.json"
        return job
    state = status.get("status") if status else ("done" if metrics_file.exists() else "incomplete")
    if state in ("skipped", "failed"):
        job.status, job.reason = state, str(status.get("reason", "no reason recorded"))
    elif state == "running":
        job.reason = (f"interrupted or still running (started {status.get('started', '?')}); "
                      "re-run the sweep to finish it")
    elif state == "done":
        try:
            metrics = json.loads(metrics_file.read_text())
            job.entries = _entries(metrics)
            job.params = metrics.get("params") if isinstance(metrics.get("params"), dict) else None
            job.status = "done"
        except (OSError, ValueError, AttributeError, TypeError) as err:
            job.status, job.reason = "unreadable", f"corrupted metrics.json ({type(err).__name__}: {err})"
    else:
        job.reason = "no outputs yet"
    return job


# ----------------------------------------------------------------------------- labels

def _key(override: str) -> tuple[str, str]:
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def _is_problem_key(key: str) -> bool:
    return key.split(".")[0] in PROBLEM_KEYS


def _short_label(key: str, value: str) -> str:
    return value if key in ("noise",) else setting_label(key, value)


def varying_keys(jobs: list[Job]) -> set[str]:
    """The override keys whose value is not the same in every job (the swept ones)."""
    values = [dict(map(_key, j.overrides)) for j in jobs]
    keys = set().union(*values) if values else set()
    return {k for k in keys if len({v.get(k) for v in values}) > 1}


def common_overrides(jobs: list[Job]) -> list[str]:
    varying = varying_keys(jobs)
    return distinct(o for j in jobs for o in j.overrides if _key(o)[0] not in varying)


def method_label(job: Job, entry: dict | None, varying: set[str] | None = None) -> str:
    """prior + solver, and the job's swept overrides that are neither problem nor bookkeeping."""
    values = dict(_key(o) for o in job.overrides)
    prior = (entry or {}).get("prior") or values.get("prior", "?")
    solver = (entry or {}).get("solver") or values.get("solver", "default solver")
    extra = [f"{k}={v}" for k, v in map(_key, job.overrides)
             if (varying is None or k in varying) and k not in IGNORED and not _is_problem_key(k)
             and k not in ("prior", "solver")]
    return f"{prior} + {solver}" + (f" ({', '.join(extra)})" if extra else "")


def column_label(job: Job, entry: dict, varying: set[str] | None = None) -> str:
    """The problem: suite and setting, or operator, plus the job's swept problem overrides."""
    if entry.get("benchmark"):  # the suite's name only where the sweep has several suites
        parts = [entry["benchmark"] if varying is None or "benchmark" in varying else "",
                 entry.get("problem_label") or entry.get("problem", "")]
    else:
        parts = [str(entry.get("op", "?"))]
    parts += [_short_label(k, v) for k, v in map(_key, job.overrides)
              if (varying is None or k in varying) and _is_problem_key(k) and k not in IGNORED
              and k not in ("op", "benchmark")]
    return " ".join(p for p in parts if p)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text.replace("σ", "sigma")).strip("_") or "problem"


# ----------------------------------------------------------------------------- tables

def _rows(jobs: list[Job]) -> list[dict]:
    """One row per (done job, image): its entry plus job, method, problem, overrides."""
    rows, varying = [], varying_keys(jobs)
    for job in jobs:
        for entry in job.entries:
            rows.append({"job": job.name, "status": job.status, "method": method_label(job, entry, varying),
                         "problem": column_label(job, entry, varying),
                         **{("problem_id" if k == "problem" else k): v for k, v in entry.items() if k != "params"},
                         "overrides": " ".join(job.overrides),
                         "_dir": job.path / str(entry.get("outdir", ".")),
                         "_params": entry.get("params") if isinstance(entry.get("params"), dict) else job.params})
    return rows


def mismatches(rows: list[dict]) -> list[str]:
    """Lines naming every (problem, image) whose methods saw different observations."""
    seen: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        if r.get("observation_sha256"):
            seen[r["problem"], str(r.get("image"))][r["observation_sha256"]].add(r["method"])
    out = []
    for (problem, image), hashes in seen.items():
        if len(hashes) > 1:
            detail = "; ".join(f"{h[:12]}: {', '.join(sorted(m))}" for h, m in hashes.items())
            out.append(f"{problem} / {Path(image).name}: {detail}")
    return out


def pivot(rows: list[dict]) -> tuple[list[str], list[str], dict, dict, dict]:
    """(methods, problems, cells[(method, problem)] = (psnr, ssim, n), seconds per image, baseline)."""
    methods, problems = distinct(r["method"] for r in rows), distinct(r["problem"] for r in rows)
    groups = defaultdict(list)
    for r in rows:
        groups[r["method"], r["problem"]].append(r)
    cells = {k: (finite_mean(r.get("psnr") for r in g), finite_mean(r.get("ssim") for r in g), len(g)) for k, g in groups.items()}
    seconds = {m: finite_mean(r.get("seconds") for r in rows if r["method"] == m) for m in methods}
    baseline = {}
    for p in problems:
        first = next(r["method"] for r in rows if r["problem"] == p)
        g = groups[first, p]
        baseline[p] = (finite_mean(r.get("psnr_observed") for r in g), finite_mean(r.get("ssim_observed") for r in g), len(g))
    return methods, problems, cells, seconds, baseline


def _cell(value, best: bool) -> str:
    if value is None or value[0] is None:
        return "–"
    text = f"{value[0]:.2f} / {value[1]:.3f}" if value[1] is not None else f"{value[0]:.2f}"
    return f"**{text}**" if best else text


def markdown(sweep_dir: Path, jobs: list[Job], rows: list[dict], bad: list[str], figures: list[str]) -> str:
    counts = {s: sum(j.status == s for j in jobs) for s in ("done", "skipped", "failed", "incomplete", "unreadable")}
    lines = ["# Sweep summary", "",
             f"`{sweep_dir}`: {len(jobs)} job{'s' if len(jobs) != 1 else ''}, "
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "done")
             + ". Cells: mean PSNR (dB) / SSIM over the images; **bold**: the best PSNR of the column.", ""]
    common = [o for o in common_overrides(jobs) if _key(o)[0] != "sweep"]
    if common:
        lines += [f"Settings of every job: `{' '.join(common)}`", ""]
    if bad:
        lines += ["## ⚠ OBSERVATION MISMATCH: this table is not a fair comparison", "",
                  "These methods were given different observations of the same problem and image "
                  "(`observation_sha256` differs):", ""] + [f"- {b}" for b in bad] + [""]
    if rows:
        methods, problems, cells, seconds, baseline = pivot(rows)
        names = distinct(str(r.get("baseline") or "observed") for r in rows)
        base_label = f"baseline: {' / '.join(names)}"
        table = {**cells, **{(base_label, p): v for p, v in baseline.items()}}
        best = {}
        for p in problems:
            scores = [(table[m, p][0], m) for m in [*methods, base_label]
                      if (m, p) in table and table[m, p][0] is not None]
            best[p] = max(scores)[1] if scores else None
        lines += ["| method | " + " | ".join(problems) + " | s/image |",
                  "|---|" + "---:|" * len(problems) + "---:|"]
        for m in [*methods, base_label]:
            sec = seconds.get(m)
            lines.append(f"| {m} | " + " | ".join(_cell(table.get((m, p)), best[p] == m) for p in problems)
                         + f" | {'–' if sec is None else f'{sec:.3g}'} |")
        lines += ["", "Protocol of each column (PSNR/SSIM measured after cropping `border` pixels from each side):", "",
                  "| problem | images | border | channel |", "|---|---:|---:|---|"]
        for p in problems:
            g = [r for r in rows if r["problem"] == p]
            lines.append(f"| {p} | {len(distinct(r.get('image') for r in g))} | {g[0].get('border', '–')} "
                         f"| {g[0].get('channel', '–')} |")
        lines.append("")
    for state, title in (("skipped", "Skipped (incompatible)"), ("failed", "Failed"),
                         ("unreadable", "Unreadable outputs (left out of the table)"),
                         ("incomplete", "Incomplete")):
        listed = [j for j in jobs if j.status == state]
        if listed:
            lines += [f"## {title}", ""] + [f"- job {j.name} ({' '.join(j.overrides) or 'no overrides'}): {j.reason}"
                                            for j in listed] + [""]
    if figures:
        lines += ["## Figures", ""] + [f"- [{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def csv_rows(jobs: list[Job], rows: list[dict]) -> list[dict]:
    out = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    for job in jobs:
        if job.status != "done":
            out.append({"job": job.name, "status": job.status, "method": method_label(job, None, varying_keys(jobs)),
                        "overrides": " ".join(job.overrides), "reason": job.reason})
    return out


# ----------------------------------------------------------------------------- figures
# matplotlib is imported where a figure is drawn: only a report with figures pays its start-up,
# and the Agg backend is chosen (make_figures) before pyplot loads.

def _load_png(path: Path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L",) else im)


def _crop(arr, box_frac, side):
    """The box (fractions of the height/width) of ``arr``, resized to side x side if needed."""
    h, w = arr.shape[:2]
    t, l, b, r = (round(box_frac[0] * h), round(box_frac[1] * w), round(box_frac[2] * h), round(box_frac[3] * w))
    part = arr[t:max(b, t + 1), l:max(r, l + 1)]
    if part.shape[:2] != (side, side):
        part = np.asarray(Image.fromarray(part).resize((side, side), Image.NEAREST))
    return part


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def crop_figure(problem: str, rows: list[dict], path: Path) -> bool:
    """Ground truth, observation and every method, the same crop of the problem's first image."""
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["problem"] == problem]
    image = sorted(str(r.get("image")) for r in mine)[0]
    per_method = {}
    for r in mine:
        if str(r.get("image")) == image and (r["_dir"] / "restored.png").is_file():
            per_method.setdefault(r["method"], r)
    if not per_method:
        return False
    first = next(iter(per_method.values()))
    gt_path = first["_dir"] / "ground_truth.png"
    gt = _load_png(gt_path) if gt_path.is_file() else _load_png(first["_dir"] / "restored.png")
    h, w = gt.shape[:2]
    side = min(h, w) // 2 if min(h, w) >= 96 else min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    box = (top / h, left / w, (top + side) / h, (left + side) / w)
    panels = []
    if gt_path.is_file():
        panels.append(("ground truth", _crop(gt, box, side)))
    if (first["_dir"] / "observed.png").is_file():
        base = first.get("psnr_observed")
        panels.append((f"observed\n{base:.2f} dB" if isinstance(base, float) else "observed",
                       _crop(_load_png(first["_dir"] / "observed.png"), box, side)))
    for method, r in per_method.items():
        value = r.get("psnr")
        panels.append((f"{method}\n{value:.2f} dB" if isinstance(value, float) else method,
                       _crop(_load_png(r["_dir"] / "restored.png"), box, side)))
    cols = min(len(panels), 5)
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.4 * cols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, arr) in zip(axes.flat, panels):
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"{problem} — {Path(image).name}", fontsize=9)
    _save(fig, path)
    return True


def convergence_figure(problem: str, rows: list[dict], path: Path) -> bool:
    """PSNR versus iteration per method, the mean over the problem's images."""
    import matplotlib.pyplot as plt

    curves = {}
    for method in distinct(r["method"] for r in rows if r["problem"] == problem):
        sums: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            if r["problem"] == problem and r["method"] == method:
                for it, value in read_curve(r["_dir"] / "convergence.csv").items():
                    sums[it].append(value)
        if sums:
            curves[method] = sorted((it, sum(v) / len(v)) for it, v in sums.items())
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, points in curves.items():
        ax.plot(*zip(*points), label=method, marker="." if len(points) < 30 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(problem, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def make_figures(sweep_dir: Path, rows: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for problem in distinct(r["problem"] for r in rows):
        for kind, draw in (("crops", crop_figure), ("psnr", convergence_figure)):
            name = f"figures/{kind}_{slug(problem)}.png"
            try:
                if draw(problem, rows, sweep_dir / name):
                    written.append(name)
            except Exception as err:  # a figure must not cost the table
                print(f"warning: figure {name} not drawn: {type(err).__name__}: {err}", file=sys.stderr)
    return written


# ----------------------------------------------------------------------------- entry point

def _counts(jobs: list[Job]) -> str:
    return ", ".join(f"{sum(j.status == s for j in jobs)} {s}" for s in distinct(j.status for j in jobs))


def html_page(sweep_dir: Path, jobs: list[Job], rows: list[dict], bad: list[str]) -> Path | None:
    """report/index.html and its problem pages; a failure is a warning, never the report's."""
    try:
        summary = f"{sweep_dir}: {len(jobs)} job{'s' if len(jobs) != 1 else ''} ({_counts(jobs)})."
        common = [o for o in common_overrides(jobs) if _key(o)[0] != "sweep"]
        if common:
            summary += f" Settings of every job: {' '.join(common)}"
        return write_sweep_page(sweep_dir, rows, pivot(rows) if rows else (), csv_rows(jobs, []), bad, summary)
    except Exception as err:
        print(f"warning: report/index.html not written: {type(err).__name__}: {err}", file=sys.stderr)
        return None


def write_report(sweep_dir: str | Path, figures: bool = True, html: bool = True) -> int:
    """Write summary.csv, summary.md, figures and report/index.html into ``sweep_dir``; return the exit code."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise PnPError(f"no such sweep folder: {sweep_dir}")
    jobs = [load_job(p) for p in _job_dirs(sweep_dir)]
    if not jobs:
        raise PnPError(f"no runs in {sweep_dir} (no job folders with status.json or metrics.json)")
    for job in jobs:
        if job.status == "unreadable":
            print(f"warning: job {job.name}: {job.reason}; left out of the summary", file=sys.stderr)
    rows = _rows(jobs)
    bad = mismatches(rows)
    written = make_figures(sweep_dir, rows) if figures and rows else []
    save_csv(csv_rows(jobs, rows) or [{"job": ""}], sweep_dir / "summary.csv")
    with atomic_write(sweep_dir / "summary.md", "w") as f:
        f.write(markdown(sweep_dir, jobs, rows, bad, written))
    if html:
        html_page(sweep_dir, jobs, rows, bad)
    if bad:
        print(f"error: observation mismatch in {len(bad)} (problem, image) pairs: the methods did not see the "
              f"same data; see {sweep_dir / 'summary.md'}", file=sys.stderr)
        return 1
    if not rows:
        print(f"error: no job of {sweep_dir} finished ({_counts(jobs)}); reasons in {sweep_dir / 'summary.md'}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pnp.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a multirun folder, e.g. multirun/NAME")
    parser.add_argument("--no-figures", action="store_true", help="no PNG figures")
    parser.add_argument("--no-html", action="store_true", help="no report/index.html")
    args = parser.parse_args(argv)
    try:
        return write_report(args.sweep_dir, figures=not args.no_figures, html=not args.no_html)
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
