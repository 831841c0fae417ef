"""Benchmark suites and folders of images: many problems x many images, batched and resumable.

A suite (config group ``benchmark``, e.g. ``benchmark=deblur_levin``) is a folder of
ground-truth images times a grid of degradations (operator settings x noise levels), with its
papers' evaluation protocol (border crop, RGB or Y channel). ``run_suite`` restores every
(problem, image) pair into ``outdir/<problem>/<image>/`` (a plain ``image=FOLDER`` run, which
is a suite of one problem, into ``outdir/<image>/``), then writes ``outdir/metrics.json``.

Scale: images of the same size are solved together in batches of ``batch_size`` where the
prior and solver allow it (``batchable`` class attribute, default true), and of at most
``batch_pixels`` pixels (on CPU, by default, 128 x 128: larger batches run slower per pixel
there); the rest stream one by one. Only the current batch is in memory, so a folder of
hundreds of images is fine.

Resume: each (problem, image) folder gets its ``metrics.json`` last, tagged with the job's
``fingerprint``; a re-run with the same configuration keeps finished pairs and solves the rest.
With ``results=FILE.jsonl`` the suite also resumes from, and appends to, one compact file of
rows (one per finished (problem, image) pair, with its fingerprint, observation hash and the
run's overrides), so a results table can be kept without the run folders.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from PIL import Image

from pnp.errors import PnPError
from pnp.io import default_image, list_images, load_image, save_json
from pnp.metrics import psnr
from pnp.models.loading import weights_sha256
from pnp.monitor import Monitor
from pnp.problem import Problem, make_problem, observation_hash
from pnp.protocol import metric_border
from pnp.records import KERNEL_SUFFIXES, VOLATILE_KEYS, plain, setting_label, short_value
from pnp.runner import build_triple, quality, resolve_device, save_outputs, solve_problem

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")


@dataclass
class Task:
    """One problem of a suite: an operator setting and a noise level, with its protocol."""

    id: str | None  # folder name and table key, e.g. "kernel=levin_1,sigma=2.55"; None: plain run
    label: str | None  # e.g. "levin_1 σ=2.55"
    op: dict
    noise: dict
    border: int
    channel: str
    modcrop: int = 1  # crop the ground truth to a multiple of this (SR's modcrop)
    modcrop_centre: bool = False  # keep the centre (DIP's crop_image) instead of the top-left corner (MATLAB's modcrop)
    crop: int | None = None  # centre-crop the ground truth to at most crop x crop (dense CS)


# ----------------------------------------------------------------------------- configuration

def fingerprint(cfg) -> str:
    """A hash of everything in the job's config that can change its results."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False) if isinstance(cfg, DictConfig) \
        else dict(cfg)
    for key in (*VOLATILE_KEYS, "results"):  # results: where rows are kept, not what they hold
        data.pop(key, None)
    denoiser = (data.get("prior") or {}).get("denoiser")
    if isinstance(denoiser, dict):  # new weights under the same name must not reuse old results
        data["weights_sha256"] = weights_sha256(denoiser.get("weights"))
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def kernel_files(folder, pattern: str | None = None) -> list[Path]:
    """The kernel files of ``folder`` matching ``pattern`` (default: any .npy/.mat/.png), natural order."""
    folder = Path(str(folder)).expanduser()
    if not folder.is_dir():
        raise PnPError(f"benchmark.kernels: no such folder {folder}")
    files = sorted((p for p in folder.glob(pattern or "*") if p.is_file() and p.suffix.lower() in KERNEL_SUFFIXES),
                   key=_natural)
    if not files:
        wanted = pattern or ", ".join(KERNEL_SUFFIXES)
        raise PnPError(f"benchmark.kernels: no kernel files ({wanted}) in folder {folder}")
    return files


def suite_tasks(cfg) -> list[Task]:
    """The problems of ``cfg.benchmark``: the product of its grid (kernel files first)."""
    suite = cfg.benchmark
    name = suite.get("name", "benchmark")
    if suite.get("op") and cfg.op.name != suite.op:
        raise PnPError(f"benchmark {name} runs op={suite.op}; drop op={cfg.op.name} from the command line")
    axes: dict[str, list] = {}
    if "kernels" in suite.keys():  # a suite over kernel files (``in suite`` is false while it is ???)
        try:
            folder = suite.kernels
        except MissingMandatoryValue:
            folder = None
        if folder is None:
            raise PnPError(f"benchmark {name} needs benchmark.kernels=DIR, a folder of kernel files "
                           f"(e.g. a folder holding the 8 Levin et al. kernels as .npy files)")
        axes["op.kernel"] = [str(p) for p in kernel_files(folder, suite.get("kernel_pattern"))]
    for key, values in plain(suite.get("grid") or {}).items():
        if not key.startswith(("op.", "noise.")):
            raise PnPError(f"benchmark.grid: '{key}' must start with op. or noise.")
        axes[key] = list(values) if isinstance(values, (list, tuple)) else [values]
    protocol = plain(suite.get("metrics") or {})
    tasks = []
    for combo in itertools.product(*axes.values()):
        op, noise = plain(cfg.op), plain(cfg.noise)
        for key, value in zip(axes, combo):
            group, _, field = key.partition(".")
            (op if group == "op" else noise)[field] = value
        settings = list(zip(axes, combo))
        tasks.append(Task(
            id=",".join(f"{k.rsplit('.', 1)[-1]}={short_value(v)}" for k, v in settings) or name,
            label=" ".join(setting_label(k, v) for k, v in settings) or name,
            op=op, noise=noise,
            border=metric_border(protocol.get("border", cfg.metrics.border), op),
            channel=str(protocol.get("channel", cfg.metrics.channel)),
            modcrop=_modcrop(suite.get("modcrop"), op),
            modcrop_centre=_modcrop_anchor(suite.get("modcrop_anchor", "corner")) == "centre",
            crop=int(suite.crop) if suite.get("crop") else None,
        ))
    return tasks


def _modcrop_anchor(anchor) -> str:
    """``benchmark.modcrop_anchor``: corner (MATLAB's modcrop keeps the top-left) or centre."""
    if anchor not in ("corner", "centre"):
        raise PnPError(f"benchmark.modcrop_anchor must be corner or centre, got {anchor!r}")
    return anchor


def _modcrop(spec, op: dict) -> int:
    """``benchmark.modcrop``: true = the SR scale, an integer = that multiple (DIP crops to 32), else 1."""
    if spec is True:
        return int(op.get("scale", 1))
    return spec if isinstance(spec, int) and not isinstance(spec, bool) and spec > 1 else 1


def plain_task(cfg) -> Task:
    op = plain(cfg.op)
    return Task(id=None, label=None, op=op, noise=plain(cfg.noise),
                border=metric_border(cfg.metrics.border, op), channel=str(cfg.metrics.channel))


def suite_images(cfg) -> list[Path]:
    """``benchmark.images``, else ``image``, else the built-in image."""
    folder = (cfg.get("benchmark") or {}).get("images") or cfg.get("image")
    return list_images(folder) if folder else [default_image()]


# ----------------------------------------------------------------------------- batches

def batchable(prior, solver, tasks: list[Task]) -> bool:
    """Whether several images may be solved as one batch: the prior and the solver both say so
    (``Prior.batchable``, ``Solver.batchable``: not the samplers or DIP, whose batch dimension
    holds one image's chains or network), and no problem has Poisson noise (its Gaussian
    approximation has one sigma per image)."""
    return bool(solver.batchable) and bool(prior.batchable) and all(t.noise.get("name") != "poisson" for t in tasks)


def _header_shape(path: Path) -> tuple:
    """(C, H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return (1 if im.mode in GRAY_MODES else 3, im.size[1], im.size[0])
    except Exception:  # unreadable: load_image reports it when its turn comes
        return (0, 0, 0)


# On CPU a conv net's time per pixel is lowest for batches of about 128 x 128 pixels and grows
# beyond them (caches): DnCNN-17 forward, bf16, one thread, Intel/AMX: 27 ms per 256^2 pixels for
# 4 x 64^2 or 1 x 128^2, 36 for 1 x 256^2, 48 for 4 x 256^2, 52 for 1 x 512^2 (docs/benchmarks.md).
CPU_BATCH_PIXELS = 128 * 128


def _positive_int(value, key: str, also: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PnPError(f"{key} must be a positive integer{also}, got {value!r}")
    return value


def batch_pixels(cfg, device: torch.device) -> int | None:
    """``batch_pixels`` of the config: "auto" = 128^2 on CPU and no limit on CUDA; null = no limit."""
    value = cfg.get("batch_pixels", "auto")
    if value == "auto":
        return CPU_BATCH_PIXELS if device.type == "cpu" else None
    return None if value is None else _positive_int(value, "batch_pixels", ", auto or null")


def chunks(images: list[Path], batch_size: int, max_pixels: int | None = None) -> list[list[tuple[int, Path]]]:
    """(index, path) lists of images of one size, in folder order: at most ``batch_size`` images
    and, where more than one, at most ``max_pixels`` pixels (H x W x images) together."""
    groups: dict[tuple, list[tuple[int, Path]]] = {}
    for i, path in enumerate(images):
        groups.setdefault(_header_shape(path) if batch_size > 1 else (i,), []).append((i, path))
    out = []
    for shape, members in groups.items():
        pixels = shape[-2] * shape[-1] if len(shape) == 3 else 0  # 0: unread (batch_size 1, unreadable file)
        n = min(batch_size, max(1, max_pixels // pixels)) if max_pixels and pixels else batch_size
        out += [members[k:k + n] for k in range(0, len(members), n)]
    return sorted(out, key=lambda c: c[0][0])


class BatchMonitor(Monitor):
    """The solver monitor, also logging the PSNR and objective of each image of the batch."""

    def __init__(self, problem: Problem, prior, solver, progress: bool, desc: str, log_every: int | str = "auto"):
        super().__init__(total=solver.iterations, x_true=problem.x_true, progress=progress, desc=desc,
                         residual=problem.residual, log_every=log_every)
        self.problem, self.prior = problem, prior
        self.per_image: list[tuple[list, list]] = []

    def __call__(self, step: int, x: torch.Tensor, objective=None) -> None:
        logged = len(self.rows)
        super().__call__(step, x, objective)
        if len(self.rows) == logged:
            return
        n = x.shape[0]
        quality = [None] * n
        if self.x_true is not None and self.x_true.shape == x.shape:
            quality = psnr(x.detach(), self.x_true).tolist()
        values = [self.last_value] * n
        if self.last_value is not None and n > 1:
            energy = self.prior.energy(x)
            values = [None] * n if energy is None else \
                (self.problem.data_fidelity(x) + self.prior.weight * energy).tolist()
        self.per_image.append((quality, values))

    def rows_of(self, i: int) -> list[dict]:
        return [{"iteration": row["iteration"], "objective": obj[i], "psnr": q[i]}
                for row, (q, obj) in zip(self.rows, self.per_image)]


def folder_names(images: list[Path]) -> list[str]:
    """One output folder per image: its stem, or its full name where two images share a stem."""
    counts: dict[str, int] = {}
    for p in images:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else p.name.replace(".", "_") for p in images]


def _slice_extras(extras: dict, i: int, n: int) -> dict:
    return {k: v[i:i + 1] if isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[0] == n and n > 1 else v
            for k, v in extras.items()}


def _done_entry(target: Path, fp: str, task_id, image: Path) -> dict | None:
    """The entry of a finished (problem, image) pair of this same configuration, else None."""
    try:
        entry = json.loads((target / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("fingerprint") != fp or entry.get("problem") != task_id \
            or entry.get("image") != str(image):
        return None
    entry.pop("fingerprint")
    return entry


def read_results(path, fp: str | None = None) -> dict[tuple, dict]:
    """The rows of a results file (JSON lines) of fingerprint ``fp`` (all if None), keyed by
    (problem, image); later rows win. A missing file has none; an unreadable line is skipped."""
    rows: dict[tuple, dict] = {}
    try:
        lines = Path(str(path)).read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and (fp is None or row.get("fingerprint") == fp):
            rows[row.get("problem"), row.get("image")] = row
    return rows


ROW_DROP = ("outdir", "problem_label", "baseline")  # derivable, or only meaningful beside a run folder


def results_row(entry: dict, fp: str, overrides: list[str]) -> dict:
    """A compact row of a results file: the entry's metrics (rounded), fingerprint, overrides."""
    row = {}
    for key, value in entry.items():
        if key in ROW_DROP:
            continue
        row[key] = round(value, 4) if isinstance(value, float) else value
    return {**row, "fingerprint": fp, "overrides": " ".join(overrides)}


def append_results(path, rows: list[dict]) -> None:
    path = Path(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _task_overrides() -> list[str]:
    """The command line's overrides (speed-only keys left out), when run through Hydra."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra job
        return []
    return [o for o in overrides if o.partition("=")[0].lstrip("+~") not in (*VOLATILE_KEYS, "results")]


# ----------------------------------------------------------------------------- running

def _means(entries: list[dict]) -> dict:
    """The mean of each number that every entry has (the keys and their order of the first entry)."""
    keys = [k for k, v in entries[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: sum(e[k] for e in entries) / len(entries) for k in keys if all(k in e for e in entries)}


def run_suite(cfg, outdir: str | Path, progress: bool = True) -> dict:
    """Restore every (problem, image) pair of the suite (or image folder) into ``outdir``."""
    outdir = Path(outdir)
    suite = cfg.get("benchmark")
    device = resolve_device(cfg.get("device", "auto"))
    prior, solver = build_triple(cfg)  # an incompatible triple fails here, before any work
    tasks = suite_tasks(cfg) if suite else [plain_task(cfg)]
    images = suite_images(cfg)
    batch = _positive_int(cfg.get("batch_size") or 1, "batch_size") if batchable(prior, solver, tasks) else 1
    batches = chunks(images, batch, batch_pixels(cfg, device))  # the same for every task
    fp, stems = fingerprint(cfg), folder_names(images)
    results_file = cfg.get("results")
    kept = read_results(results_file, fp) if results_file else {}
    entries: dict[tuple[int, int], dict] = {}
    for t, task in enumerate(tasks):
        base = outdir / task.id if task.id else outdir
        for chunk in batches:
            todo = []
            for i, path in chunk:
                done = _done_entry(base / stems[i], fp, task.id, path)
                row = kept.get((task.id, str(path)))
                if done is None and row is not None:
                    done = {k: v for k, v in row.items() if k not in ("fingerprint", "overrides")}
                elif done is not None and results_file and row is None:
                    append_results(results_file, [results_row(done, fp, _task_overrides())])
                if done is not None:
                    entries[t, i] = done
                else:
                    todo.append((i, path))
            for group in _same_shape(todo, task):
                solved = _solve_group(group, task, prior, solver, cfg, device, progress, base, stems)
                for (i, _, _), entry in zip(group, solved):
                    entry["outdir"] = str((base / stems[i]).relative_to(outdir))
                    if suite:
                        entry.update(benchmark=suite.get("name"), problem=task.id, problem_label=task.label,
                                     baseline=suite.get("baseline", "observed"))
                    save_json({**entry, "fingerprint": fp}, base / stems[i] / "metrics.json")
                    if results_file:
                        append_results(results_file, [results_row(entry, fp, _task_overrides())])
                    entries[t, i] = entry
    ordered = [entries[key] for key in sorted(entries)]
    result = {"images": ordered, "mean": _means(ordered)}
    if suite:
        result = {"benchmark": suite.get("name"), **result, "problems": {
            task.id: {"label": task.label, "border": task.border, "channel": task.channel,
                      **_means([entries[t, i] for i in range(len(images))])}
            for t, task in enumerate(tasks)}}
    if suite and cfg.get("experiment"):
        result["table"] = write_experiment_table(cfg.experiment, result, outdir)
    save_json(result, outdir / "metrics.json")
    return result


def write_experiment_table(experiment, result: dict, outdir: Path) -> str:
    """``table.md`` of an experiment (``+experiment=NAME``): our mean PSNR per problem beside the
    paper's (``experiment.paper``, from ``experiment.source``). A key of ``experiment.paper`` is a
    problem id (``scale=2``) or part of one (``sigma=2.55``: the mean over every problem whose id
    holds it, as papers average over kernels); a partial key adds a row of that mean."""
    exp = plain(experiment)
    paper = {str(k): v for k, v in (exp.get("paper") or {}).items()}
    problems = result["problems"]
    lines = [f"# {exp.get('name', 'experiment')}", "", str(exp.get("source", "")).strip(), "",
             f"Images: {len(result['images']) // max(1, len(problems))} per problem; "
             f"our numbers: {result['images'][0]['prior']} ({result['images'][0]['solver']}), mean PSNR in dB.", "",
             "| problem | observed | ours | paper | ours - paper |", "|---|---|---|---|---|"]
    rows = [(p.get("label") or pid, p, paper.get(pid)) for pid, p in problems.items()]
    for key, ref in paper.items():
        if key in problems:
            continue
        members = [p for pid, p in problems.items() if set(key.split(",")) <= set(pid.split(","))]
        if members:
            rows.append((f"{key} (mean of {len(members)})", _means(members), ref))
    for label, p, ref in rows:
        ours, observed = p.get("psnr"), p.get("psnr_observed")
        cells = [label, f"{observed:.2f}" if observed is not None else "",
                 f"{ours:.2f}" if ours is not None else "", "" if ref is None else f"{ref:.2f}",
                 "" if ref is None or ours is None else f"{ours - ref:+.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if exp.get("note"):
        lines += ["", str(exp["note"]).strip()]
    path = outdir / "table.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def prepare(x: torch.Tensor, task: Task) -> torch.Tensor:
    """The suite's ground truth: centre crop (``crop``), then a multiple of the scale (``modcrop``,
    from the top-left corner or the centre: ``modcrop_anchor``)."""
    if task.crop:
        h, w = x.shape[-2:]
        top, left = max(0, (h - task.crop) // 2), max(0, (w - task.crop) // 2)
        x = x[..., top:top + task.crop, left:left + task.crop]
    if task.modcrop > 1:
        h, w = x.shape[-2:]
        dh, dw = h % task.modcrop, w % task.modcrop
        top, left = (dh // 2, dw // 2) if task.modcrop_centre else (0, 0)
        x = x[..., top:top + h - dh, left:left + w - dw]
    return x


def _same_shape(todo: list[tuple[int, Path]], task: Task):
    """Load the images of a chunk; yield lists of (index, path, tensor) of one shape."""
    groups: dict[tuple, list] = {}
    for i, path in todo:
        x = prepare(load_image(path), task)
        groups.setdefault(tuple(x.shape), []).append((i, path, x))
    yield from groups.values()


def _solve_group(group, task: Task, prior, solver, cfg, device, progress, base: Path,
                 stems: list[str]) -> list[dict]:
    """Solve one batch; write each image's outputs; return one entry per image."""
    x_true = torch.cat([x for _, _, x in group])
    problem = make_problem(x_true, task.op, task.noise, seed=cfg.seed, device=device)
    desc = f"{task.label + ' ' if task.label else ''}{group[0][1].name}"
    desc += f" +{len(group) - 1}" if len(group) > 1 else ""
    monitor = BatchMonitor(problem, prior, solver, progress, desc, cfg.get("log_every", "auto"))
    x, metrics, _, extras = solve_problem(problem, prior, solver, progress, desc=desc, monitor=monitor)
    n = len(group)
    out = []
    for k, (i, path, _) in enumerate(group):
        single = Problem(y=problem.y[k:k + 1], op=problem.op, sigma=problem.sigma,
                         x_true=problem.x_true[k:k + 1], seed=problem.seed)
        scalars = save_outputs(base / stems[i], x[k:k + 1], single, _slice_extras(extras, k, n), monitor.rows_of(k))
        out.append({**quality(x[k:k + 1], single, task.border, task.channel, _slice_extras(extras, k, n)),
                    "seconds": metrics["seconds"] / n, "iterations": metrics["iterations"],
                    "restarts": metrics["restarts"], "diverged": metrics["diverged"], "params": metrics["params"],
                    "observation_sha256": observation_hash(single.y), **scalars,
                    "prior": cfg.prior.name, "op": task.op["name"], "solver": cfg.solver.name,
                    "image": str(path), "seed": int(cfg.seed), "noise_sigma": problem.sigma * 255.0,
                    "border": task.border, "channel": task.channel, "batch": n})
    return out
