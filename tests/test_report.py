"""``pnp.report`` on sweep folders built by hand: table, checks, figures and bad input."""
import csv
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from pnp.report import main, write_report

SHA = "a" * 64


def make_job(sweep, num, overrides, entries=(), status="done", reason=None):
    """A job folder as run_job leaves it: .hydra/overrides.yaml, status.json, metrics.json, images."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    record = {"status": status, "overrides": list(overrides), "fingerprint": "x", "runs": 1}
    if reason:
        record["reason"] = reason
    (job / "status.json").write_text(json.dumps(record))
    if status != "done":
        return job
    full = []
    for i, e in enumerate(entries):
        e = {"ssim": 0.5, "psnr_observed": 20.0, "ssim_observed": 0.4, "seconds": 0.1, "iterations": 3,
             "observation_sha256": SHA, "seed": 0, "noise_sigma": 7.65, "border": 0, "channel": "rgb",
             "image": f"/imgs/im{i}.png", "outdir": f"im{i}", **e}
        out = job / e["outdir"]
        out.mkdir(parents=True)
        gt = smooth_image(24, 3, seed=i)
        for name, arr in (("ground_truth", gt), ("observed", gt[::2, ::2]), ("restored", gt)):
            Image.fromarray(arr).save(out / f"{name}.png")
        (out / "convergence.csv").write_text("iteration,objective,psnr\n1,3.0,20.0\n2,2.0,21.0\n3,1.0,"
                                             f"{e['psnr']}\n")
        full.append(e)
    (job / "metrics.json").write_text(json.dumps({"images": full, "mean": {}}))
    return job


def entry(prior, op, psnr, solver="gd", **extra):
    return {"prior": prior, "op": op, "solver": solver, "psnr": psnr, **extra}


@pytest.fixture
def sweep(tmp_path):
    """2 priors x 2 operators, 2 images each, plus a skipped and a failed job."""
    s = tmp_path / "sweep"
    num = 0
    for prior, base in (("tv", 25.0), ("red", 27.0)):
        for op, shift in (("blur", 0.0), ("inpaint", 3.0)):
            make_job(s, num, [f"prior={prior}", f"op={op}", "solver=gd", "solver.iterations=3"],
                     [entry(prior, op, base + shift), entry(prior, op, base + shift + 1)])
            num += 1
    make_job(s, num, ["prior=tikhonov", "op=blur", "solver=fista", "solver.iterations=3"], status="skipped",
             reason="incompatible: solver 'fista' needs prox, which prior 'tikhonov' does not provide")
    make_job(s, num + 1, ["prior=boom", "op=blur", "solver=gd", "solver.iterations=3"], status="failed",
             reason="RuntimeError: planted failure")
    return s


def test_summary_table_bold_baseline_skipped_failed_and_figures(sweep):
    assert write_report(sweep) == 0
    md = (sweep / "summary.md").read_text()
    assert "| method | blur | inpaint | s/image |" in md
    assert "| red + gd | **27.50 / 0.500** | **30.50 / 0.500** | 0.1 |" in md
    assert "| tv + gd | 25.50 / 0.500 | 28.50 / 0.500 | 0.1 |" in md
    assert "| baseline: observed | 20.00 / 0.400 | 20.00 / 0.400 | – |" in md
    assert "Settings of every job: `solver.iterations=3`" in md
    assert "## Skipped (incompatible)" in md and "job 4 (prior=tikhonov op=blur solver=fista" in md
    assert "incompatible: solver 'fista' needs prox" in md
    assert "## Failed" in md and "RuntimeError: planted failure" in md
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 8 and len(rows) == 10
    assert {"psnr", "ssim", "seconds", "observation_sha256", "overrides", "method", "problem"} <= set(rows[0])
    assert done[0]["overrides"] == "prior=tv op=blur solver=gd solver.iterations=3"
    for name in ("crops_blur.png", "psnr_blur.png", "crops_inpaint.png", "psnr_inpaint.png"):
        assert (sweep / "figures" / name).is_file(), name
        assert f"figures/{name}" in md
    with Image.open(sweep / "figures" / "crops_blur.png") as im:
        assert im.size[0] > 300  # ground truth, observation and two methods side by side


def test_observation_mismatch_is_loud(sweep, capsys):
    metrics = sweep / "2" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["images"][1]["observation_sha256"] = "b" * 64  # red saw another blur observation of im1
    metrics.write_text(json.dumps(m))
    assert write_report(sweep) == 1
    md = (sweep / "summary.md").read_text()
    assert "OBSERVATION MISMATCH" in md and "blur / im1.png" in md and "bbbbbbbbbbbb: red + gd" in md
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: observation mismatch in 1 (problem, image) pairs")


def test_corrupted_metrics_reported_and_rest_summarised(sweep, capsys):
    (sweep / "1" / "metrics.json").write_text('{"images": [ {"psnr": 2')
    assert write_report(sweep) == 0
    err = capsys.readouterr().err
    assert "warning: job 1: corrupted metrics.json" in err
    md = (sweep / "summary.md").read_text()
    assert "## Unreadable outputs" in md and "job 1 (prior=tv op=inpaint" in md
    assert "| tv + gd | 25.50 / 0.500 | – |" in md and "| red + gd | **27.50 / 0.500** | **30.50 / 0.500**" in md
    assert (sweep / "1" / "metrics.json").read_text() == '{"images": [ {"psnr": 2'  # left as it was


def test_suite_columns_and_single_image_jobs(tmp_path):
    s = tmp_path / "sweep"
    for num, (prior, suite) in enumerate((("tv", "deblur_levin"), ("red", "deblur_levin"), ("red", "denoise"))):
        if suite == "denoise":
            make_job(s, num, [f"prior={prior}", f"benchmark={suite}"],
                     [entry(prior, "denoise", 30.0, benchmark=suite, problem="sigma=15", problem_label="σ=15")])
            continue
        make_job(s, num, [f"prior={prior}", f"benchmark={suite}"],
                 [entry(prior, "blur", 22.0 + num, benchmark="deblur_levin", problem="kernel=levin_1,sigma=2.55",
                        problem_label="levin_1 σ=2.55", baseline="observed", border=9),
                  entry(prior, "blur", 20.0 + num, benchmark="deblur_levin", problem="kernel=levin_2,sigma=2.55",
                        problem_label="levin_2 σ=2.55", baseline="observed", border=8)])
    assert write_report(s) == 0
    md = (s / "summary.md").read_text()
    assert "| method | deblur_levin levin_1 σ=2.55 | deblur_levin levin_2 σ=2.55 | denoise σ=15 | s/image |" in md
    assert "| tv + gd | 22.00 / 0.500 | 20.00 / 0.500 | – | 0.1 |" in md
    assert "| deblur_levin levin_1 σ=2.55 | 1 | 9 | rgb |" in md
    assert (s / "figures" / "crops_deblur_levin_levin_1_sigma=2.55.png").is_file()
    shutil.rmtree(s / "2")  # one suite only: columns without its name
    assert write_report(s) == 0
    assert "| method | levin_1 σ=2.55 | levin_2 σ=2.55 | s/image |" in (s / "summary.md").read_text()


def test_no_runs_one_line_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no runs in")
    assert list(empty.iterdir()) == []
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: no such sweep folder")


def test_nothing_finished_exit_1_with_reasons(tmp_path, capsys):
    s = tmp_path / "sweep"
    make_job(s, 0, ["prior=tv", "solver=langevin"], status="skipped", reason="incompatible: needs score")
    make_job(s, 1, ["prior=tv", "solver=gd"], status="running")
    assert main([str(s), "--no-figures"]) == 1
    assert "error: no job of" in capsys.readouterr().err
    md = (s / "summary.md").read_text()
    assert "incompatible: needs score" in md and "## Incomplete" in md and "interrupted or still running" in md
    assert not (s / "figures").exists()


def test_corrupted_status_reported_and_earlier_figures_kept(sweep, capsys):
    assert write_report(sweep) == 0
    for job in sweep.iterdir():
        if job.is_dir() and job.name.isdigit():
            (job / "status.json").write_text("{")  # every job unreadable: still a report, nothing deleted
    assert write_report(sweep, figures=False) == 1
    md = (sweep / "summary.md").read_text()
    assert md.count("corrupted status.json") == 6
    assert all((sweep / "figures" / n).is_file() for n in ("crops_blur.png", "psnr_blur.png"))
    assert np.asarray(Image.open(sweep / "figures" / "psnr_blur.png")).size > 0


def _local_links(page: Path) -> list[str]:
    """Every src/href of a page and its viewer data that is a file, not an anchor."""
    text = page.read_text()
    links = re.findall(r'(?:src|href)="([^"#][^"]*)"', text)
    data = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', text, re.S)
    if data:
        for view in json.loads(data.group(1))["images"]:
            links += [p[k] for p in view["panels"] for k in ("src", "err") if p.get(k)]
    return links


def test_html_page_links_every_file_and_names_what_is_missing(sweep, capsys):
    (sweep / "1" / "metrics.json").write_text('{"images": [ {"psnr": 2')
    (sweep / "2" / "im1" / "restored.png").unlink()
    (sweep / "2" / "im0" / "convergence.csv").write_text("not,a\ncsv")
    assert write_report(sweep, figures=False) == 0
    report = sweep / "report"
    index = (report / "index.html").read_text()
    for needle in ("planted failure", "incompatible: solver &#x27;fista&#x27; needs prox", "corrupted metrics.json",
                   "blur: 2/im1/restored.png (red + gd)", 'href="problem_blur.html"', 'href="problem_inpaint.html"'):
        assert needle in index, needle
    assert index.count('class="cell best"') == 2
    pages = [report / "index.html", report / "problem_blur.html", report / "problem_inpaint.html"]
    for page in pages:
        text = page.read_text()
        assert "<script>" in text and "<style>" in text  # inlined, nothing to fetch
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text) and "@import" not in text
        for link in _local_links(page):
            assert (page.parent / unquote(link)).is_file(), (page.name, link)
    blur = (report / "problem_blur.html").read_text()
    assert "2/im1/restored.png (red + gd)" in blur and '"missing": "restored.png"' in blur
    assert blur.count("<details class=\"params\">") == 2 and "metrics keys" in blur
    assert blur.count('class="curve"') == 2  # red's im1 curve still counts; its unreadable im0 one is left out
    assert main([str(sweep), "--no-figures", "--no-html"]) == 0


def test_html_page_shows_recorded_parameters(sweep):
    metrics = sweep / "0" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["params"] = {"prior": {"name": "tv", "weight": 0.1}, "solver": {"name": "gd", "iterations": 3}}
    metrics.write_text(json.dumps(m))
    assert write_report(sweep, figures=False) == 0
    assert "params" not in (sweep / "summary.csv").read_text().splitlines()[0]  # the page has them, not the csv
    blur = (sweep / "report" / "problem_blur.html").read_text()
    assert "<b>tv + gd</b> (job 0): parameters</summary>" in blur and "&quot;weight&quot;: 0.1" in blur
    assert "<b>red + gd</b> (job 2): metrics keys" in blur


def test_nothing_finished_still_has_a_page(tmp_path):
    s = tmp_path / "sweep"
    make_job(s, 0, ["prior=tv", "solver=langevin"], status="skipped", reason="incompatible: needs score")
    assert main([str(s), "--no-figures"]) == 1
    index = (s / "report" / "index.html").read_text()
    assert "No job finished" in index and "incompatible: needs score" in index


def test_compare_page_of_a_single_run(tmp_path):
    from pnp.report_html import write_compare

    run = tmp_path / "run"
    make_job(tmp_path, "run", [], [entry("tv", "denoise", 25.0)])
    e = json.loads((run / "metrics.json").read_text())["images"][0]
    for name in ("ground_truth", "observed", "restored", "convergence"):  # a one-image run writes into its folder
        src = next((run / "im0").glob(f"{name}.*"))
        src.rename(run / src.name)
    (run / "uncertainty.png").write_bytes((run / "restored.png").read_bytes())
    e.pop("outdir")
    page = write_compare(run, [e])
    assert page == run / "compare.html"
    text = page.read_text()
    assert "<h1>denoise</h1>" in text and "tv + gd: uncertainty" in text
    links = _local_links(page)
    assert {"ground_truth.png", "observed.png", "restored.png", "uncertainty.png",
            "compare_files/error_m0.png"} <= set(links)
    assert all((run / unquote(link)).is_file() for link in links)
    assert write_compare(tmp_path / "nowhere", [{"prior": "tv"}]) is not None  # missing files: named, no crash
    assert "missing" in (tmp_path / "nowhere" / "compare.html").read_text()
