"""Write docs/results.md, the README's results table and the PSNR columns of its priors table
from the result files.

    python benchmarks/make_results.py            # docs/results.md + README.md's results block
    python benchmarks/make_results.py --check    # exit 1 if either is out of date

The result files are ``benchmarks/results/<table>.jsonl``, one JSON row per solved (problem,
image) pair: its metrics (``psnr``, ``psnr_observed``, ``ssim``, ``seconds``, ...), the
``observation_sha256`` of what was solved, the job's ``fingerprint`` and the ``overrides`` of
its command. ``python -m pnp benchmark=... results=FILE.jsonl`` (and
``benchmarks/seed_priors.py``) resumes from such a file and appends to it. The prose and the
tables that have no result file live in ``benchmarks/results/results.template.md``; each
``<!-- table:NAME -->`` line there is replaced by a table computed here.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TEMPLATE = RESULTS / "results.template.md"
DOC = REPO / "docs" / "results.md"
README = REPO / "README.md"
PRIORS = ("tv", "denoiser", "red", "daep", "dmsp")  # row order
SOLVER = {"tv": "fista", "denoiser": "hqs", "red": "fixed_point", "daep": "gd", "dmsp": "gd"}
SIGMAS = (2.55, 7.65, 12.75)
SCALES = (2, 3, 4, 5)
# Bigdeli & Zwicker 2018, Table 2 (Set5, RGB PSNR, noise-free bicubic SR)
DAEP_PAPER = {2: 35.23, 3: 31.44, 4: 29.01, 5: 27.19}
DAEP_PAPER_BICUBIC = {2: 31.80, 3: 28.67, 4: 26.73, 5: 25.32}
SPEED_ONLY = ("threads=", "progress=", "batch_size=", "batch_pixels=", "results=")


def read(table: str) -> list[dict]:
    path = RESULTS / f"{table}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def flags(row: dict) -> str:
    """The overrides that make a method differ from the prior's defaults (suite and data aside)."""
    keep = [o for o in row.get("overrides", "").split()
            if not o.startswith(("benchmark", "prior=", "prior.denoiser.precision=", *SPEED_ONLY))]
    return " ".join(keep)


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def f(v, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def image(row: dict) -> str:
    return Path(row["image"]).stem


def sigma(row: dict) -> float:
    return round(row["noise_sigma"], 2)


def scale(row: dict) -> int:
    return int(re.search(r"scale=(\d+)", row["problem"]).group(1))


def md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def bold_best(cells: list[list[str]], columns: range) -> None:
    for c in columns:
        values = [float(r[c]) for r in cells if r[c] not in ("", None)]
        if values:
            best = f"{max(values):.2f}"
            for r in cells:
                if r[c] == best:
                    r[c] = f"**{best}**"


def by_prior(rows: list[dict], default_only: bool = True) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for r in rows:
        if not default_only or not flags(r):
            out[r["prior"]].append(r)
    return out


# ----------------------------------------------------------------------------- tables

def deblur_cells(rows: list[dict], images=None) -> tuple[list[list[str]], dict]:
    groups = by_prior(rows)
    sel = (lambda r: image(r) in images) if images else (lambda r: True)
    any_rows = [r for r in rows if sel(r)]
    count = {s: len({(r["problem"], image(r)) for r in any_rows if sigma(r) == s}) for s in SIGMAS}
    cells = [["observed (replicate-padded)", *(f(mean(r["psnr_observed"] for r in any_rows if sigma(r) == s))
                                             for s in SIGMAS), ""]]
    for prior in PRIORS:
        rs = [r for r in groups.get(prior, []) if sel(r)]
        if rs:
            cells.append([f"{prior} ({rs[0]['solver']})", *(f(mean(r["psnr"] for r in rs if sigma(r) == s))
                                                          for s in SIGMAS), f(mean(r["seconds"] for r in rs), 1)])
    bold_best(cells[1:], range(1, 1 + len(SIGMAS)))
    return cells, count


def table_deblur() -> str:
    rows = read("deblur")
    cells, count = deblur_cells(rows)
    header = ["prior (solver)", *(f"noise {s}" for s in SIGMAS), "s/image"]
    n = ", ".join(str(count[s]) for s in SIGMAS)
    return md(header, cells) + f"\n\nProblems per noise level: {n}."


def table_deblur_small() -> str:
    rows = read("deblur")
    small = sorted({image(r) for r in rows if image(r) <= "07"})
    cells, count = deblur_cells(rows, set(small))
    header = ["prior (solver)", *(f"noise {s}" for s in SIGMAS), "s/image"]
    return md(header, cells) + f"\n\nImages {', '.join(small)} (256x256); problems per noise level: {count[SIGMAS[0]]}."


def table_sr() -> str:
    rows = read("sr")
    groups = by_prior(rows)
    cells = [["DAEP paper", *(f(DAEP_PAPER[s]) for s in SCALES), ""]]
    any_prior = next(iter(groups.values()), [])
    cells.append(["bicubic (paper / ours)", *(f"{f(DAEP_PAPER_BICUBIC[s])} / "
                                             f"{f(mean(r['psnr_observed'] for r in any_prior if scale(r) == s))}"
                                             for s in SCALES), ""])
    ours = []
    for prior in PRIORS:
        rs = groups.get(prior, [])
        if rs:
            ours.append([f"{prior} ({rs[0]['solver']})", *(f(mean(r["psnr"] for r in rs if scale(r) == s))
                                                         for s in SCALES), f(mean(r["seconds"] for r in rs), 1)])
    bold_best(ours, range(1, 1 + len(SCALES)))
    return md(["method", *(f"x{s}" for s in SCALES), "s/image"], cells + ours)


def table_sr_grad() -> str:
    rows = read("sr_grad")
    cells = []
    for mode in ("bicubic", "adjoint"):
        rs = [r for r in rows if r.get("sr_data_grad", mode) == mode and f"sr_data_grad={mode}" in r["overrides"]]
        if rs:
            cells.append([f"`prior.sr_data_grad={mode}`", f(mean(r["psnr"] for r in rs)),
                          f(mean(r["psnr_observed"] for r in rs))])
    return md(["DAEP, Gaussian kernel, x4", "PSNR", "bicubic upsampling of y"], cells)


def table_blind() -> str:
    rows = read("blind")
    sig = sorted({sigma(r) for r in rows})
    modes = [("true sigma", ""), ("noise-blind", "prior.noise_blind=true"),
             ("noise- and kernel-blind", "prior.noise_blind=true prior.kernel_blind=true")]
    cells = [["blurry input", *(f(mean(r["psnr_observed"] for r in rows if sigma(r) == s)) + " (" +
                                f(mean(r.get("psnr_observed_aligned") for r in rows if sigma(r) == s)) + ")"
                                for s in sig), "", ""]]
    for label, flag in modes:
        rs = [r for r in rows if flags(r) == flag]
        if not rs:
            continue
        aligned = lambda s: mean(r.get("psnr_aligned") for r in rs if sigma(r) == s)  # noqa: E731
        cells.append([label, *(f(mean(r["psnr"] for r in rs if sigma(r) == s)) +
                               (f" ({f(aligned(s))})" if aligned(s) is not None else "") for s in sig),
                      f"{f(mean(r.get('kernel_error') for r in rs), 3)} "
                      f"({f(mean(r.get('kernel_error_aligned') for r in rs), 3)})" if "kernel_blind" in flag else "",
                      f(mean(r["seconds"] for r in rs), 1)])
    return md(["DMSP", *(f"noise {s}" for s in sig), "kernel error (aligned)", "s/image"], cells)


def table_authors() -> str:
    authors = read("authors")
    ours_rows = read("deblur")
    images = {image(r) for r in authors}
    cells = []
    for prior in ("daep", "dmsp", "red"):
        rs = [r for r in authors if r["prior"] == prior]
        if not rs:
            continue
        ours = [r for r in by_prior(ours_rows).get(prior, []) if image(r) in images]
        a = [mean(r["psnr"] for r in rs if sigma(r) == s) for s in SIGMAS]
        o = [mean(r["psnr"] for r in ours if sigma(r) == s) for s in SIGMAS]
        diff = [None if x is None or y is None else y - x for x, y in zip(a, o)]
        cells.append([prior, f"`{flags(rs[0])}`", " / ".join(map(f, a)), " / ".join(map(f, o)),
                      " / ".join(f"{d:+.2f}" if d is not None else "" for d in diff)])
    return md(["prior", "the authors' setting", "authors 2.55 / 7.65 / 12.75", "ours (defaults)",
               "ours - authors"], cells)


def table_validation() -> str:
    """The current defaults on the validation split (benchmarks/tuning/*.jsonl)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from tune_defaults import validation_table

    return validation_table()


def table_readme_full() -> str:
    """Full Set12 x Levin kernels and Set5 SR (the defaults and denoisers of version 0.1.0)."""
    deblur, sr = by_prior(read("deblur")), by_prior(read("sr"))
    header = ["prior (solver)", *(f"Levin {s}" for s in SIGMAS), *(f"SR x{s}" for s in SCALES)]
    obs_d, obs_s = read("deblur"), next(iter(sr.values()), [])
    cells = [["observed / bicubic", *(f(mean(r["psnr_observed"] for r in obs_d if sigma(r) == s)) for s in SIGMAS),
              *(f(mean(r["psnr_observed"] for r in obs_s if scale(r) == s)) for s in SCALES)]]
    ours = []
    for prior in PRIORS:
        d, s_ = deblur.get(prior, []), sr.get(prior, [])
        if d or s_:
            ours.append([f"{prior} ({SOLVER[prior]})",
                         *(f(mean(r["psnr"] for r in d if sigma(r) == s)) for s in SIGMAS),
                         *(f(mean(r["psnr"] for r in s_ if scale(r) == s)) for s in SCALES)])
    bold_best(ours, range(1, 1 + len(SIGMAS) + len(SCALES)))
    paper = [["DAEP paper", "", "", "", *(f(DAEP_PAPER[s]) for s in SCALES)]]
    return md(header, cells + ours + paper)


TABLES = {"deblur": table_deblur, "deblur_256": table_deblur_small, "sr": table_sr, "sr_grad": table_sr_grad,
          "blind": table_blind, "authors": table_authors, "readme_full": table_readme_full,
          "validation": table_validation}

README_NOTE = ("PSNR in dB, mean over the validation split: the 20 held-out test images (Set5, Set3C, "
               "Set12), not used to choose a default (docs/tuning.md notes where one of its results prompted a "
               "second look at the tuning split). Deblurring: 128x128 centre crops, Levin kernel 3, "
               "valid boundary, Gaussian noise 2.55 / 7.65 / 12.75, PSNR without a border of half the "
               "kernel; SR: 101x113 centre crops (a size that is no multiple of any scale), MATLAB bicubic, "
               "noise-free, RGB PSNR without a border of `scale` pixels. Each prior with its defaults, "
               "`precision: auto` (bf16 on the 2-core Intel Xeon with AMX that measured it), seed 0. Last column: problems below the "
               "observation / bicubic, of all (with the 25x25 Gaussian kernel of width 1.6 instead, none "
               "of 60 problems ended below the observation for RED, TV, hqs or DMSP; DAEP was not run "
               "with it). `python benchmarks/tune_defaults.py check --split "
               "validation --prior P --task blur --size 128 --kernels levin` (or `--task sr`) measures a "
               "row; docs/tuning.md says how the defaults were chosen.")


def render_doc() -> str:
    text = TEMPLATE.read_text()
    return re.sub(r"^<!-- table:(\w+) -->$", lambda m: TABLES[m.group(1)](), text, flags=re.M)


def priors_table_cells(validation: str) -> dict[str, list[str]]:
    """From the validation table: per prior, its Levin 7.65 and SR x4 cells (the README's priors
    table quotes them), the best of each column in bold."""
    rows = {}
    for line in validation.splitlines():
        m = re.match(r"\| `(\w+)` \|(.*)\|\s*$", line)
        if m:
            cells = [c.strip() for c in m.group(2).split("|")]
            rows[m.group(1)] = [cells[1], cells[5]]  # Levin 7.65, SR x4
    for col in range(2):
        values = [float(v[col]) for v in rows.values() if v[col]]
        for v in rows.values():
            if v[col] and values and float(v[col]) == max(values):
                v[col] = f"**{v[col]}**"
    return rows


def render_readme() -> str:
    text = README.read_text()
    begin = re.search(r"<!-- results:begin[^>]*-->\n", text)
    end = text.find("<!-- results:end -->")
    if not begin or end < 0:
        raise SystemExit("README.md has no <!-- results:begin --> ... <!-- results:end --> block")
    validation = table_validation()
    quoted = priors_table_cells(validation)
    head = []
    for line in text[:begin.end()].splitlines(keepends=True):
        m = re.match(r"\| `(\w+)` \|", line)
        cells = line.rstrip("\n").split(" | ")
        if m and m.group(1) in quoted and len(cells) == 9:  # the priors table: ... | Levin 7.65 | SR x4 |
            levin, sr = quoted[m.group(1)]
            line = " | ".join(cells[:7] + [levin, f"{sr} |" if sr else "|"]) + "\n"
        head.append(line)
    return "".join(head) + validation + "\n\n" + README_NOTE + "\n" + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/results.md or README.md is stale")
    a = parser.parse_args()
    outputs = {DOC: render_doc(), README: render_readme()}
    stale = [p for p, text in outputs.items() if not p.is_file() or p.read_text() != text]
    if a.check:
        for p in stale:
            print(f"stale: {p.relative_to(REPO)} (run python benchmarks/make_results.py)", file=sys.stderr)
        sys.exit(1 if stale else 0)
    for p in stale:
        p.write_text(outputs[p])
        print(f"wrote {p.relative_to(REPO)}")


if __name__ == "__main__":
    main()
