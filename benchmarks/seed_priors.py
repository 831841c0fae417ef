"""The learned priors' tables of docs/results.md, measured through the command line.

    python benchmarks/seed_priors.py sr      # Set5 x2..x5, DAEP's protocol (bicubic, noise-free, RGB, border = scale)
    python benchmarks/seed_priors.py deblur  # Set12 x 8 Levin kernels (valid) x noise 2.55/7.65/12.75, border k//2
    python benchmarks/seed_priors.py blind   # DMSP: true sigma vs noise-blind; kernel-blind vs the blurry input

Each (table, prior, setting) is one ``python -m pnp benchmark=<suite> prior=<name> ...`` run
into ``--out/<table>/<prior>[...]``; its ``metrics.json`` gives the mean PSNR per problem and
the seconds per image. Every solved problem is also appended to ``--results`` (default
``benchmarks/results/<table>.jsonl``), and a run resumes from the rows of its configuration
there, so a table can be grown with more images or kernels later; then
``python benchmarks/make_results.py`` rewrites docs/results.md and the README's table. Subsets: ``--images N`` (the first N images), ``--crop S``
(centre S x S crops, written to ``--out/data``), ``--kernels 1,4``, ``--sigmas``, ``--scales``,
``--iterations K`` (overrides every solver's iteration count), ``--priors``. Any other
``key=value`` argument is passed to every run (e.g. ``prior.denoiser.precision=bf16``).

Prints markdown tables; the reference rows are the DAEP paper's (Bigdeli & Zwicker 2018,
Table 2: Set5 RGB PSNR).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PNP_SHARED", REPO.parent / "shared")) / "data"
RESULTS = REPO / "benchmarks" / "results"
DAEP_PAPER = {2: 35.23, 3: 31.44, 4: 29.01, 5: 27.19}
DAEP_PAPER_BICUBIC = {2: 31.80, 3: 28.67, 4: 26.73, 5: 25.32}
PRIORS = ("tv", "daep", "dmsp", "red", "denoiser")


def subset(folder: Path, out: Path, count: int | None, crop: int | None) -> Path:
    """The first ``count`` images of ``folder`` (natural order), centre-cropped to ``crop``, in ``out``."""
    if not count and not crop:
        return folder
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg", ".tif"))
    for path in files[:count or None]:
        target = out / (path.stem + ".png")
        if not target.exists():
            im = Image.open(path)
            if crop:
                w, h = im.size
                s = min(crop, w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im.save(target)
    return out


def kernel_subset(out: Path, indices: list[int]) -> Path:
    folder = SHARED / "kernels" / "levin"
    if indices == list(range(1, 9)):
        return folder
    out.mkdir(parents=True, exist_ok=True)
    for i in indices:
        link = out / f"levin_{i}.npy"
        if not link.exists():
            link.symlink_to(folder / f"levin_{i}.npy")
    return out


def cli(outdir: Path, args: list[str], extra: list[str], threads: int, results: Path | None = None) -> dict:
    """Run one suite through ``python -m pnp`` (resuming from and appending to ``results``); return its metrics.json."""
    if "prior=tv" in args:  # the classical baseline has no denoiser
        extra = [e for e in extra if not e.startswith("prior.denoiser.")]
    cmd = [sys.executable, "-m", "pnp", *args, *extra, f"threads={threads}", "progress=false",
           f"hydra.run.dir={outdir}"] + ([f"results={results}"] if results else [])
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if res.returncode != 0:
        print(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}", file=sys.stderr)
        return {}
    return json.loads((outdir / "metrics.json").read_text())


def fmt(v, digits=2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def table_sr(a, extra) -> None:
    images = subset(SHARED / "test" / "set5", a.out / "data" / f"set5_{a.images}_{a.crop}", a.images, a.crop)
    rows = {}
    for prior in a.priors:
        for s in a.scales:
            args = ["benchmark=sr", f"benchmark.images={images}", "benchmark.grid={op.scale:[%d]}" % s,
                    "benchmark.metrics.channel=rgb", f"prior={prior}"]
            if a.iterations:
                args += [f"solver.iterations={a.iterations}"]
            m = cli(a.out / "sr" / f"{prior}_x{s}", args, extra, a.threads, a.results or RESULTS / "sr.jsonl")
            mean = m.get("mean", {})
            rows.setdefault(prior, {})[s] = (mean.get("psnr"), mean.get("psnr_observed"), mean.get("seconds"))
    print(f"\n### Super-resolution, Set5 ({a.images or 5} images{f', {a.crop}px crops' if a.crop else ''}), "
          "bicubic, noise-free, RGB PSNR, border = scale\n")
    print("| method | " + " | ".join(f"x{s}" for s in a.scales) + " | s/image |")
    print("|---|" + "---|" * (len(a.scales) + 1))
    print("| DAEP paper | " + " | ".join(fmt(DAEP_PAPER.get(s)) for s in a.scales) + " | |")
    print("| bicubic (paper) | " + " | ".join(fmt(DAEP_PAPER_BICUBIC.get(s)) for s in a.scales) + " | |")
    first = next(iter(rows.values()), {})
    print("| bicubic (ours) | " + " | ".join(fmt(first.get(s, (None, None))[1]) for s in a.scales) + " | |")
    for prior, by_scale in rows.items():
        secs = [v[2] for v in by_scale.values() if v[2] is not None]
        print(f"| {prior} | " + " | ".join(fmt(by_scale[s][0]) for s in a.scales) +
              f" | {fmt(sum(secs) / len(secs), 1) if secs else 'n/a'} |")


def table_deblur(a, extra) -> None:
    images = subset(SHARED / "test" / "set12", a.out / "data" / f"set12_{a.images}_{a.crop}", a.images, a.crop)
    kernels = kernel_subset(a.out / "data" / f"levin_{'_'.join(map(str, a.kernels))}", a.kernels)
    sigmas = "[" + ",".join(str(s) for s in a.sigmas) + "]"
    print(f"\n### Non-blind deblurring, Set12 ({a.images or 12} images{f', {a.crop}px crops' if a.crop else ''}), "
          f"Levin kernels {a.kernels}, valid boundary, PSNR with border k//2\n")
    print("| prior | " + " | ".join(f"σ={s}" for s in a.sigmas) + " | s/image |")
    print("|---|" + "---|" * (len(a.sigmas) + 1))
    observed = None
    for prior in a.priors:
        args = ["benchmark=deblur_levin", f"benchmark.images={images}", f"benchmark.kernels={kernels}",
                "benchmark.grid={noise.sigma:%s}" % sigmas, f"prior={prior}"]
        if a.iterations:
            args += [f"solver.iterations={a.iterations}"]
        m = cli(a.out / "deblur" / prior, args, extra, a.threads, a.results or RESULTS / "deblur.jsonl")
        per_sigma = {s: [] for s in a.sigmas}
        obs = {s: [] for s in a.sigmas}
        for e in m.get("images", []):
            s = round(e["noise_sigma"], 2)
            if s in per_sigma:
                per_sigma[s].append(e["psnr"])
                obs[s].append(e["psnr_observed"])
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        if observed is None and m:
            observed = {s: mean(v) for s, v in obs.items()}
            print("| observed | " + " | ".join(fmt(observed[s]) for s in a.sigmas) + " | |")
        print(f"| {prior} | " + " | ".join(fmt(mean(per_sigma[s])) for s in a.sigmas) +
              f" | {fmt(m.get('mean', {}).get('seconds'), 1)} |", flush=True)


def table_blind(a, extra) -> None:
    images = subset(SHARED / "test" / "set12", a.out / "data" / f"set12_{a.images}_{a.crop}", a.images, a.crop)
    kernels = kernel_subset(a.out / "data" / f"levin_{'_'.join(map(str, a.kernels))}", a.kernels)
    sigmas = [s for s in a.sigmas if s in (2.55, 7.65)] or a.sigmas
    print(f"\n### DMSP blind modes, Set12 ({a.images or 12} images{f', {a.crop}px crops' if a.crop else ''}), "
          f"Levin kernels {a.kernels}, valid boundary\n")
    print("| DMSP | " + " | ".join(f"σ={s}" for s in sigmas) + " | kernel error (aligned) | s/image |")
    print("|---|" + "---|" * (len(sigmas) + 2))
    settings = {"true sigma": [], "noise-blind": ["prior.noise_blind=true"],
                "noise- and kernel-blind": ["prior.noise_blind=true", "prior.kernel_blind=true"]}
    settings = {k: v for k, v in settings.items() if not a.modes or k in a.modes}
    blurry_printed = False
    for label, flags in settings.items():
        args = ["benchmark=deblur_levin", f"benchmark.images={images}", f"benchmark.kernels={kernels}",
                "benchmark.grid={noise.sigma:[%s]}" % ",".join(map(str, sigmas)), "prior=dmsp", *flags]
        if a.iterations:
            args += [f"solver.iterations={a.iterations}"]
        m = cli(a.out / "blind" / label.replace(" ", "_"), args, extra, a.threads, a.results or RESULTS / "blind.jsonl")
        entries = m.get("images", [])
        by = lambda key, s: [e[key] for e in entries if round(e["noise_sigma"], 2) == s and key in e]  # noqa: E731
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731

        def cell(key, s):  # "psnr" or, for kernel-blind runs, "psnr (shift-aligned psnr)"
            aligned = mean(by(key + "_aligned", s))
            return fmt(mean(by(key, s))) + (f" ({fmt(aligned)})" if aligned is not None else "")
        if (not blurry_printed or "kernel-blind" in label) and entries:  # kernel-blind: again, with aligned PSNR
            blurry_printed = True
            print(f"| blurry input{' (aligned)' if 'kernel-blind' in label else ''} | "
                  + " | ".join(cell("psnr_observed", s) for s in sigmas) + " | | |")
        errors = [e["kernel_error"] for e in entries if "kernel_error" in e]
        aligned = [e["kernel_error_aligned"] for e in entries if "kernel_error_aligned" in e]
        error = f"{fmt(mean(errors), 3)} ({fmt(mean(aligned), 3)})" if errors else ""
        print(f"| {label} | " + " | ".join(cell("psnr", s) for s in sigmas) +
              f" | {error} | {fmt(m.get('mean', {}).get('seconds'), 1)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["sr", "deblur", "blind"])
    parser.add_argument("--priors", default=",".join(PRIORS))
    parser.add_argument("--images", type=int, default=None, help="the first N images only")
    parser.add_argument("--crop", type=int, default=None, help="centre crops of this size")
    parser.add_argument("--kernels", default="1,2,3,4,5,6,7,8", help="Levin kernel numbers")
    parser.add_argument("--sigmas", default="2.55,7.65,12.75")
    parser.add_argument("--scales", default="2,3,4,5")
    parser.add_argument("--modes", default="", help='blind: only these rows, comma-separated ("true sigma,noise-blind")')
    parser.add_argument("--iterations", type=int, default=None, help="override every solver's iterations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "seed_priors", help="run folders")
    parser.add_argument("--results", type=Path, default=None,
                        help="results file (JSON lines); default benchmarks/results/<table>.jsonl")
    a, extra = parser.parse_known_args()
    a.priors = [p for p in a.priors.split(",") if p]
    a.modes = [m for m in a.modes.split(",") if m]
    a.kernels = [int(k) for k in a.kernels.split(",")]
    a.sigmas = [float(s) for s in a.sigmas.split(",")]
    a.scales = [int(s) for s in a.scales.split(",")]
    {"sr": table_sr, "deblur": table_deblur, "blind": table_blind}[a.table](a, extra)


if __name__ == "__main__":
    main()
