"""Results kept as one JSON-lines file per table: suites resume from it, the docs are generated from it."""
import json
import subprocess
import sys

from conftest import REPO, run_cli

FAST = ["prior=tv", "op=blur", "solver.iterations=3", "op.kernel=gaussian", "op.kernel_size=7",
        "op.kernel_sigma=1.2", "progress=false"]


def test_folder_resumes_from_and_appends_to_a_results_file(tmp_path, color_png, gray_png):
    folder = tmp_path / "imgs"
    folder.mkdir()
    color_png.rename(folder / "a.png")
    gray_png.rename(folder / "b.png")
    results = tmp_path / "table.jsonl"
    first = run_cli(*FAST, f"image={folder}", f"results={results}", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert {"psnr", "observation_sha256", "fingerprint", "overrides", "image", "seconds"} <= set(row)
        assert "prior=tv" in row["overrides"] and "results=" not in row["overrides"]
    # a second run elsewhere with the same configuration solves nothing: every pair comes from the file
    second = run_cli(*FAST, f"image={folder}", f"results={results}", f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert len(results.read_text().splitlines()) == 2
    assert not (tmp_path / "two" / "a").exists()
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert [e["psnr"] for e in m["images"]] == [r["psnr"] for r in rows]
    # another configuration does not reuse them
    third = run_cli(*FAST, "prior.weight=2.0", f"image={folder}", f"results={results}",
                    f"hydra.run.dir={tmp_path / 'three'}", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert len(results.read_text().splitlines()) == 4


def test_docs_and_readme_tables_are_generated_from_the_results_files():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_results.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_no_per_problem_result_folders_are_tracked():
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:  # not a git checkout (an installed copy): nothing to check
        return
    files = tracked.stdout.split()
    assert not [f for f in files if f.endswith("metrics.json")]
    assert any(f.endswith(".jsonl") for f in files)


def test_validation_table_shows_only_rows_of_the_current_defaults(tmp_path, monkeypatch):
    """A value tried on the validation split and rejected is not shown, even when it was measured
    last; a row that sets no key (measured with the defaults of its time) counts as a default row."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import tune_defaults

    monkeypatch.setattr(tune_defaults, "OUT", tmp_path)
    defaults = tune_defaults.current("red", "blur", 2.55)
    rows = [({}, "set5/a", 30.0), ({}, "set5/b", 28.0), (defaults, "set5/a", 31.0),
            ({**defaults, "sigma": 8.0}, "set5/a", 20.0), ({**defaults, "solver.average": 20}, "set5/b", 19.0)]
    with (tmp_path / "red_blur_128.jsonl").open("w") as f:
        for values, image, psnr in rows:
            key = json.dumps(["validation", image, 2.55, "levin_3", values], sort_keys=True)
            f.write(json.dumps({"key": key, "split": "validation", "image": image, "kernel": "levin_3",
                                "point": 2.55, "values": values, "psnr": psnr, "baseline": 25.0}) + "\n")
    line = next(r for r in tune_defaults.validation_table().splitlines() if r.startswith("| `red`"))
    assert line.split(" | ")[1] == "29.50"  # (31 + 28) / 2: the latest default row of each image
    assert line.endswith("| 0 / 2 |")


def test_tuning_checks_read_presets_at_each_points_noise_and_scale(monkeypatch):
    """Noise-free SR is checked with the noise-free presets of its own scale (not the config's
    noise 7.65 and default scale); deblurring with the presets of its noise level."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from tune_defaults import current

    assert current("daep", "sr", 2) == {"sigma": 20.0} and current("daep", "sr", 5) == {"sigma": 30.0}
    assert current("dmsp", "sr", 3)["sigma"] == 11.0
    assert [current("denoiser", "sr", s)["solver.sigma_end_min"] for s in (2, 5)] == [2, 5]
    assert current("red", "blur", 2.55)["weight"] == 650.0 and current("red", "blur", 12.75)["weight"] == 130.0
