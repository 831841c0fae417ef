"""Choose the learned priors' defaults on a tuning split; check them on a validation split.

    python benchmarks/tune_defaults.py check --prior red --task blur           # defaults, tuning split
    python benchmarks/tune_defaults.py tune --prior red --task blur            # coordinate search
    python benchmarks/tune_defaults.py check --prior red --task blur --split validation

The **tuning split** is a fixed set of crops of the training images (``../shared/data/train``:
eight colour crops of CBSD432 and two gray crops of Train400, ``TUNING``); the **validation
split** is the held-out test sets (Set5, Set12, Set3C under ``../shared/data/test``), never
used to choose a value. ``--split smooth`` checks a value on four smooth crops of the training
images (``SMOOTH``), which the textured tuning crops under-represent. Tasks (``TASKS``): deblurring with valid boundary (Levin kernels and
a 25x25 Gaussian of width 1.6) at noise 2.55 / 7.65 / 12.75; noise-free bicubic
super-resolution x2-x5 on sizes that are not multiples of the scale; inpainting, denoising
and demosaicing at their config defaults.

``tune`` searches one parameter at a time over its candidates (``SPACE``), the others held at
their current best, at each preset point (noise level or scale) separately. A candidate must
be robust first: the one with the fewest problems below the operator's baseline
(observation, bicubic) wins, then the higher mean PSNR, means within 0.05 dB counting as equal
and the larger worst margin over the baseline deciding between them. Every evaluated candidate is
appended to ``benchmarks/tuning/<prior>_<task>.jsonl`` (one row per problem: image, kernel,
noise, scale, parameters, PSNR, baseline PSNR, observation hash), so a rerun skips what it
has and the choice can be audited; ``--write`` puts the chosen values into
``conf/prior/presets/<prior>.yaml``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from pnp.api import compose_config
from pnp.protocol import metric_border
from pnp.io import load_image
from pnp.presets import evaluate as rule_value, select
from pnp.problem import Problem, make_problem, observation_hash
from pnp.registry import PRIORS
from pnp.records import plain
from pnp.runner import build_triple, quality, solve_problem

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KERNELS = DATA / "kernels" / "levin"
OUT = ROOT / "benchmarks" / "tuning"
PRESETS = ROOT / "conf" / "prior" / "presets"

# (file, top, left): crops of the training images, chosen by index, never by their results
TUNING = {
    "colour": [("train/cbsd432/100007.jpg", 60, 100), ("train/cbsd432/108004.jpg", 80, 160),
               ("train/cbsd432/15011.jpg", 100, 200), ("train/cbsd432/41004.jpg", 120, 60),
               # the four most textured 96x96 crops (mean gradient magnitude) of every 20th CBSD432
               # image: where a prior smooths away texture, it falls below the observation here first
               ("train/cbsd432/196088.jpg", 96, 128), ("train/cbsd432/77062.jpg", 0, 224),
               ("train/cbsd432/246009.jpg", 128, 96), ("train/cbsd432/170054.jpg", 192, 288)],
    "gray": [("train/train400/test_050.png", 20, 20), ("train/train400/test_300.png", 40, 30)],
}
# the four least textured 96x96 windows (mean gradient magnitude, on a 32-pixel grid, intensity std
# above 0.08: not a flat patch) of every 20th CBSD432 image not already above: sky, haze and bokeh,
# where a prior that regularises too little amplifies the noise (split "smooth", check only)
SMOOTH = {"colour": [("train/cbsd432/106005.jpg", 32, 32), ("train/cbsd432/216041.jpg", 32, 0),
                     ("train/cbsd432/187029.jpg", 0, 0), ("train/cbsd432/35070.jpg", 32, 32)], "gray": []}
VALIDATION = {"colour": ["test/set5", "test/set3c"], "gray": ["test/set12"]}
NOISES = (2.55, 7.65, 12.75)
KERNELS_USED = [str(KERNELS / "levin_3.npy"), "gaussian"]  # a Levin kernel and the default Gaussian
SCALES = (2, 3, 4, 5)

# task -> list of (preset key, axis value, op overrides, noise sigma); crops per task: (H, W)
TASKS = {
    "blur": {"size": (96, 96), "preset": "blur", "axis": "noise",
             "points": [(n, {"op": "blur", "op.boundary": "valid"}, n) for n in NOISES]},
    "sr": {"size": (101, 113), "preset": "sr", "axis": "scale",
           "points": [(s, {"op": "sr", "op.scale": s}, 0.0) for s in SCALES]},
    # robustness checks of problem kinds the presets were not tuned on
    "sr_noisy": {"size": (101, 113), "preset": "sr", "axis": "scale",
                 "points": [(s, {"op": "sr", "op.scale": s}, 7.65) for s in (2, 4)]},
    "blur_circular": {"size": (96, 96), "preset": "blur", "axis": "noise",
                      "points": [(n, {"op": "blur", "op.boundary": "circular"}, n) for n in (2.55, 12.75)]},
    "inpaint": {"size": (96, 96), "preset": "inpaint", "axis": "noise", "points": [(None, {"op": "inpaint"}, None)]},
    "denoise": {"size": (96, 96), "preset": "denoise", "axis": "noise",
                "points": [(n, {"op": "denoise"}, n) for n in (7.65, 25.0)]},
    "demosaic": {"size": (96, 96), "preset": "demosaic", "axis": "noise", "points": [(None, {"op": "demosaic"}, None)]},
}

# prior -> task -> [(key, candidates as factors of the current value or absolute values)]
SPACE = {
    "daep": {"blur": [("gamma", ("x", 0.5, 1.0, 2.0)), ("sigma", ("x", 0.7, 1.4))],
             "sr": [("sigma", ("=", 20.0, 30.0, 45.0, 60.0))],
             "denoise": [("gamma", ("x", 0.5, 1.0, 2.0, 4.0, 8.0)), ("sigma", ("x", 0.5, 0.7, 1.0, 1.4)),
                         ("solver.average", ("=", 0, 60))]},
    "dmsp": {"blur": [("sigma", ("x", 0.8, 1.0, 1.25, 1.6)), ("solver.average", ("=", 0, 60))], "sr": [("sigma", ("=", 11.0, 20.0, 30.0, 45.0)), ("noise_floor", ("=", 0.255, 1.0, 2.55, 5.0))],
             "denoise": [("sigma", ("x", 0.35, 0.5, 0.7, 1.0, 1.4)), ("solver.average", ("=", 0, 60))]},
    "tv": {"blur": [("weight", ("=", 4.0, 8.0, 16.0, 32.0))],
           "denoise": [("weight", ("x", 0.5, 1.0, 2.0, 4.0, 8.0))]},
    "denoiser": {"inpaint": [("solver.iterations", ("=", 8, 24, 40))]},
    "red": {"inpaint": [("sigma", ("=", 8.0, 15.0, 25.0))],
            "demosaic": [("sigma", ("=", 4.0, 8.0, 15.0)), ("weight", ("x", 0.25, 0.5, 1.0, 2.0))],
            "blur": [("weight", ("x", 0.25, 0.5, 1.0, 2.0)), ("sigma", ("=", 8.0, 15.0, 20.0, 25.0))],
            "sr": [("sigma", ("=", 15.0, 30.0, 50.0))],
            "sr_noisy": [("weight", ("x", 0.25, 0.5, 1.0, 2.0)), ("sigma", ("=", 15.0, 30.0, 50.0))]},
}


def crops(split: str, size: tuple[int, int]) -> list[tuple[list[str], torch.Tensor]]:
    """Batches (names, B x C x H x W images) of the split, colour and gray apart: the tuning crops
    of ``size``; or the validation images centre-cropped to ``size`` (most of Set5 / Set12 / Set3C
    is larger: a crop keeps each problem affordable on a CPU)."""
    out = []
    for kind in ("colour", "gray"):
        names, images = [], []
        items = TUNING[kind] if split == "tuning" else SMOOTH[kind] if split == "smooth" else \
            [(str(p.relative_to(DATA)), None, None) for folder in VALIDATION[kind]
             for p in sorted((DATA / folder).iterdir())]
        for path, top, left in items:
            x = load_image(DATA / path)
            h, w = x.shape[-2:]
            if min(h, w) < max(size):
                continue
            top = (h - size[0]) // 2 if top is None else min(top, h - size[0])
            left = (w - size[1]) // 2 if left is None else min(left, w - size[1])
            names.append(f"{Path(path).parent.name}/{Path(path).stem}@{top},{left}")
            images.append(x[..., top:top + size[0], left:left + size[1]])
        if images:
            out.append((names, torch.cat(images)))
    return out


def problems(task: str, split: str):
    """(axis value, overrides, names, image batch) of every problem batch of the task."""
    spec = TASKS[task]
    batches = crops(split, spec["size"])
    for value, op, noise in spec["points"]:
        extra = {**op}
        if noise is not None:
            extra["noise"] = "none" if noise == 0 else "gaussian"
            if noise:
                extra["noise.sigma"] = noise
        for kernel in (KERNELS_USED if task.startswith("blur") else [None]):
            over = {**extra, "op.kernel": kernel} if kernel else extra
            for names, x in batches:
                if task == "demosaic" and x.shape[1] != 3:  # a colour filter array needs colour images
                    continue
                yield value, over, names, x


def evaluate(prior: str, overrides: dict, x: torch.Tensor, precision: str) -> list[dict]:
    """Restore a batch: per image its PSNR, the baseline's, the ring's, and the params used."""
    args = {k: v for k, v in overrides.items() if k not in ("op", "noise")}
    cfg = compose_config(overrides["op"], prior, None, overrides.get("noise"), args)
    if cfg.prior.get("denoiser") is not None:  # a prior that runs a network: in the given precision
        cfg.prior.denoiser.precision = precision
    prior_obj, solver = build_triple(cfg)
    op_cfg = plain(cfg.op)
    problem = make_problem(x, op_cfg, plain(cfg.noise), seed=cfg.seed)
    restored, metrics, _, extras = solve_problem(problem, prior_obj, solver, progress=False)
    border = metric_border(cfg.metrics.border, op_cfg)
    rows = []
    for k in range(x.shape[0]):
        single = Problem(y=problem.y[k:k + 1], op=problem.op, sigma=problem.sigma, x_true=problem.x_true[k:k + 1],
                         seed=problem.seed)
        q = quality(restored[k:k + 1], single, border, "rgb")
        rows.append({"psnr": q["psnr"], "baseline": q["psnr_observed"], "psnr_border": q.get("psnr_border"),
                     "seconds": metrics["seconds"] / x.shape[0], "restarts": metrics["restarts"],
                     "params": metrics["params"], "observation_sha256": observation_hash(single.y)})
    return rows


def run_candidate(prior: str, task: str, split: str, point, values: dict, precision: str, log: Path,
                  done: dict) -> list[dict]:
    """Every problem of the task at ``point`` with the prior keys ``values``; rows appended to ``log``."""
    rows = []
    for value, overrides, names, x in problems(task, split):
        if value != point:
            continue
        kernel = Path(overrides["op.kernel"]).stem if "op.kernel" in overrides else None
        keys = [json.dumps([split, name, value, kernel, values], sort_keys=True) for name in names]
        if all(k in done for k in keys):
            rows += [done[k] for k in keys]
            continue
        full = {**overrides, **{k if k.startswith("solver.") else f"prior.{k}": v for k, v in values.items()}}
        results = evaluate(prior, full, x, precision)
        with log.open("a") as f:
            for key, name, result in zip(keys, names, results):
                row = {"key": key, "split": split, "image": name, "kernel": kernel, "point": value,
                       "values": values, **result}
                f.write(json.dumps(row) + "\n")
                done[key] = row
                rows.append(row)
        print(f"  {kernel or '':9s} {len(names)} images {values}: psnr "
              + " ".join(f"{r['psnr']:.2f}/{r['baseline']:.2f}" for r in results)
              + f" ({sum(r['seconds'] for r in results):.1f} s)", flush=True)
    return rows


def score(rows: list[dict]) -> tuple[int, float]:
    """(problems below baseline, mean PSNR): fewer failures first, then the higher mean."""
    below = sum(r["psnr"] < r["baseline"] for r in rows)
    return below, sum(r["psnr"] for r in rows) / len(rows)


TIE_DB = 0.05  # candidates whose mean PSNR is this close count as equal


def choose(results: list[tuple[tuple[int, float], object, float]]):
    """The value of the best ((below, mean), value, worst margin) candidate: fewest problems
    below the baseline; among those, means within ``TIE_DB`` of the best count as equal and
    the larger worst margin over the baseline wins (the safer value for unseen images)."""
    fewest = min(r[0][0] for r in results)
    robust = [r for r in results if r[0][0] == fewest]
    top = max(r[0][1] for r in robust)
    return max((r for r in robust if r[0][1] >= top - TIE_DB), key=lambda r: (r[2], r[0][1]))[1]


def read_done(log: Path) -> dict:
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
                done[row["key"]] = row
            except (ValueError, KeyError):
                continue
    return done


def current(prior: str, task: str, point) -> dict:
    """The prior's current preset values at ``point`` (the start of the search)."""
    points = TASKS[task]["points"]
    _, spec, task_noise = next((p for p in points if p[0] == point), (None, points[0][1], None))
    cfg = compose_config(spec["op"], prior, None, None, {k: v for k, v in spec.items() if k != "op"})
    preset = select(plain(cfg.prior).get("presets"), TASKS[task]["preset"], prior, set(PRIORS.get(prior).auto_keys))
    axis = TASKS[task]["axis"]
    if axis == "noise" and point is not None:
        noise = point
    elif task_noise is not None:  # a scale-indexed task at its own noise level (sr: noise-free)
        noise = float(task_noise)
    else:  # a task at its config's noise (inpaint, demosaic): the level the presets see
        noise = float(cfg.noise.sigma) if cfg.noise.name == "gaussian" else 0.0
    scale = point if axis == "scale" else 1
    space = SPACE.get(prior, {}).get(task, [])
    values = {k: round(rule_value(preset[k], noise, scale), 4) for k, _ in space if k in preset}
    recommended = plain(cfg.prior).get("solvers") or {}
    solver = cfg.solver.name
    by_op = (((recommended.get("by_op") or {}).get(TASKS[task]["preset"]) or {}).get(solver) or {})
    for key, _ in space:
        if key.startswith("solver."):
            name = key.split(".", 1)[1]
            values[key] = by_op.get(name, (recommended.get(solver) or {}).get(name, 0))
    # the operator's own solver settings belong to the row's key too: rows of earlier settings
    # are measured again, not read back
    values.update({f"solver.{k}": v for k, v in by_op.items() if f"solver.{k}" not in values})
    return values


def summary(paths: list[Path]) -> str:
    """Markdown tables of every evaluated candidate in these logs: mean PSNR over its problems,
    the baseline's mean, and how many fell below the baseline."""
    out = []
    for path in paths:
        groups: dict = {}
        for row in read_done(path).values():
            key = (row["split"], row["point"], json.dumps(row["values"], sort_keys=True))
            groups.setdefault(key, []).append(row)
        if not groups:
            continue
        out += [f"\n`{path.name}` (split, point, values: mean PSNR / baseline, problems below baseline of all)\n",
                "| split | point | values | PSNR | baseline | below |", "|---|---|---|---|---|---|"]
        for (split, point, values), rows in sorted(groups.items(), key=lambda g: (g[0][0], str(g[0][1]), g[0][2])):
            below, mean = score(rows)
            base = sum(r["baseline"] for r in rows) / len(rows)
            out.append(f"| {split} | {point} | {values} | {mean:.2f} | {base:.2f} | {below} / {len(rows)} |")
    return "\n".join(out)


VALIDATION_PRIORS = ("tv", "denoiser", "red", "daep", "dmsp", "epll")


def validation_table() -> str:
    """The validation split's results as one markdown table: mean PSNR per prior on deblurring
    (the Levin kernel, 128x128 crops, noise 2.55 / 7.65 / 12.75) and noise-free SR x2-x5
    (101x113 crops), the baseline's first, and how many problems ended below the baseline."""
    columns = [("blur", 2.55), ("blur", 7.65), ("blur", 12.75), ("sr", 2), ("sr", 3), ("sr", 4), ("sr", 5)]
    cells: dict = {}
    defaults: dict = {}
    for prior in VALIDATION_PRIORS:
        for task, log in (("blur", OUT / f"{prior}_blur_128.jsonl"), ("sr", OUT / f"{prior}_sr.jsonl")):
            for row in read_done(log).values():
                if row["split"] != "validation" or (task == "blur" and row.get("kernel") != "levin_3"):
                    continue
                # the latest row of each problem among those that set no key to a value other than
                # the current default (a value tried and rejected is not shown; a key a row does not
                # set had its default then)
                key = (prior, task, row["point"])
                if key not in defaults:
                    defaults[key] = current(prior, task, row["point"])
                if any(k not in defaults[key] or v != defaults[key][k] for k, v in row["values"].items()):
                    continue
                cells.setdefault(key, {})[(row["image"], row.get("kernel"))] = row
    cells = {k: list(v.values()) for k, v in cells.items()}
    head = "| prior | " + " | ".join(f"{'Levin' if t == 'blur' else 'SR x'}{'' if t == 'sr' else ' '}{p}"
                                     for t, p in columns) + " | below baseline |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    base = ["observed / bicubic"]
    for t, p in columns:
        rows = next((cells[(q, t, p)] for q in VALIDATION_PRIORS if (q, t, p) in cells), None)
        base.append(f"{sum(r['baseline'] for r in rows) / len(rows):.2f}" if rows else "")
    lines.append("| " + " | ".join(base) + " | |")
    for prior in VALIDATION_PRIORS:
        out, below, total = [f"`{prior}`"], 0, 0
        for t, p in columns:
            rows = cells.get((prior, t, p))
            out.append(f"{sum(r['psnr'] for r in rows) / len(rows):.2f}" if rows else "")
            below += sum(r["psnr"] < r["baseline"] for r in rows or [])
            total += len(rows or [])
        lines.append("| " + " | ".join(out) + f" | {below} / {total} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["summary"]:
        print(summary(sorted(OUT.glob("*.jsonl"))))
        return 0
    if argv is None and sys.argv[1:2] == ["table"]:
        print(validation_table())
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("check", "tune"))
    ap.add_argument("--prior", required=True)
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--split", default="tuning", choices=("tuning", "smooth", "validation"))
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE prior override for check")
    ap.add_argument("--write", action="store_true", help="write the chosen values into the presets file")
    ap.add_argument("--size", type=int, default=None, help="crop side (default: the task's)")
    ap.add_argument("--only", default=None, help="tune only these keys (comma-separated)")
    ap.add_argument("--candidates", default=None, help="with one --only key: its candidate values (comma-separated)")
    ap.add_argument("--points", default=None, help="only these scales or noise levels (comma-separated; "
                    "a task indexed by its noise level takes levels off its table too)")
    ap.add_argument("--kernels", default="levin,gaussian", help="blur: levin, gaussian or both (comma-separated)")
    args = ap.parse_args(argv)
    if args.size:
        TASKS[args.task]["size"] = (args.size, args.size)
    if args.only:
        SPACE[args.prior][args.task] = [s for s in SPACE[args.prior][args.task] if s[0] in args.only.split(",")]
        if args.candidates:
            SPACE[args.prior][args.task] = [(args.only, ("=", *map(float, args.candidates.split(","))))]
    KERNELS_USED[:] = [k for k in KERNELS_USED if ("levin" if "levin" in k else k) in args.kernels.split(",")]
    torch.set_num_threads(1)  # two of these side by side use a 2-core machine best (measured: 2 threads under
    # load ran a 96x96 network call 50x slower than one)
    if args.mode == "tune" and args.split != "tuning":
        print("error: tune runs on the tuning split only", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{args.prior}_{args.task}{f'_{args.size}' if args.size else ''}.jsonl"
    done = read_done(log)
    points = [p for p, _, _ in TASKS[args.task]["points"]]
    if args.points:
        asked = [float(v) for v in args.points.split(",")]
        spec = TASKS[args.task]
        value, op, noise = spec["points"][0]
        if spec["axis"] == "noise" and value is not None and value == noise:  # any noise level, same problem
            spec["points"] = [(v, op, v) for v in asked]
            points = asked
        else:
            points = [p for p in points if p is not None and float(p) in asked]
            if not points:
                have = ", ".join(str(q) for q, _, _ in spec["points"])
                print(f"error: --points {args.points}: {args.task} has only {have}", file=sys.stderr)
                return 2
    chosen = {}
    for point in points:
        print(f"{args.prior} {args.task} at {TASKS[args.task]['axis']}={point}", flush=True)
        fixed = dict(kv.split("=", 1) for kv in args.set)
        fixed = {k: float(v) if v.replace(".", "", 1).isdigit() else v for k, v in fixed.items()}
        if args.mode == "check" or args.prior not in SPACE:
            # the defaults' values of the searched keys are part of each row's key: a changed preset
            # is measured again, not read back from rows of the earlier value
            values = {**current(args.prior, args.task, point), **fixed}
            rows = run_candidate(args.prior, args.task, args.split, point, values, args.precision, log, done)
            below, mean = score(rows)
            base = sum(r["baseline"] for r in rows) / len(rows)
            print(f"= {args.prior} {args.task} {point}: mean {mean:.2f} dB (baseline {base:.2f}), "
                  f"{below} of {len(rows)} below baseline, worst margin "
                  f"{min(r['psnr'] - r['baseline'] for r in rows):+.2f}", flush=True)
            continue
        best = current(args.prior, args.task, point)
        for key, (kind, *cands) in SPACE[args.prior][args.task]:
            start = best.get(key)
            options = [round(start * c, 4) for c in cands] if kind == "x" else list(cands)
            if start is not None and start not in options:  # the current value always competes
                options = sorted(options + [start])
            results = []
            for value in options:
                rows = run_candidate(args.prior, args.task, "tuning", point, {**best, key: value}, args.precision,
                                     log, done)
                results.append((score(rows), value, min(r["psnr"] - r["baseline"] for r in rows)))
            value = choose(results)
            print(f"= {key}: " + ", ".join(f"{v}: {m:.2f} dB ({b} below, worst {w:+.2f})" for (b, m), v, w in results)
                  + f" -> {value}", flush=True)
            best[key] = value
        chosen[point] = best
    if args.mode == "tune":
        print(json.dumps({"prior": args.prior, "task": args.task, "chosen": {str(k): v for k, v in chosen.items()}}))
        if args.write:
            write_presets(args.prior, args.task, chosen)
    return 0


def write_presets(prior: str, task: str, chosen: dict) -> None:
    """Put the chosen values, tabled over the task's axis, into conf/prior/presets/<prior>.yaml
    (the other entries are kept)."""
    path = PRESETS / f"{prior}.yaml"
    lines = path.read_text().splitlines()
    header = [l for l in lines if l.startswith("#")]
    data = yaml.safe_load(path.read_text()) or {}
    spec = TASKS[task]
    entry = dict(data.get(spec["preset"]) or {})
    points = sorted(chosen)
    for key in {k for v in chosen.values() for k in v}:
        values = [chosen[p][key] for p in points]
        if spec["axis"] == "scale":
            old = entry.get(key)
            rows = [values]
            noise = [0.0]
            if isinstance(old, dict) and "noise" in old and "scale" in old:
                noise = list(old["noise"])
                rows = [values] + [list(r) for r in old["value"][1:]]
            entry[key] = {"noise": noise, "scale": points, "value": rows} if len(noise) > 1 else \
                {"scale": points, "value": values}
        else:
            old = entry.get(key, (data.get("default") or {}).get(key))
            axis = list(points)
            if isinstance(old, dict) and list(old) == ["noise", "value"]:  # keep the old rule outside the tuned range
                below = [(n, v) for n, v in zip(old["noise"], old["value"]) if n < min(points)]
                beyond = [(n, v) for n, v in zip(old["noise"], old["value"]) if n > max(points)]
                axis = [n for n, _ in below] + axis + [n for n, _ in beyond]
                values = [v for _, v in below] + values + [v for _, v in beyond]
            entry[key] = {"noise": axis, "value": values} if len(axis) > 1 else values[0]
    data[spec["preset"]] = entry
    body = yaml.safe_dump(data, default_flow_style=None, sort_keys=False, width=120)
    path.write_text("\n".join(header) + "\n" + body)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
