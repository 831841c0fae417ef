"""The README's picture: observed / TV / the best learned prior / ground truth, with PSNR.

    python -m pnp prior=tv op=blur hydra.run.dir=outputs/figure/tv
    python -m pnp solver=gd prior=daep op=blur hydra.run.dir=outputs/figure/daep
    python -m pnp prior=denoiser op=blur hydra.run.dir=outputs/figure/denoiser
    python benchmarks/readme_figure.py outputs/figure/tv outputs/figure/daep outputs/figure/denoiser

The first folder gives the observation, the ground truth and TV; of the others (learned priors
on the same problem: the observations are bit-identical), the best by PSNR is shown.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tv", type=Path)
    parser.add_argument("learned", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "observed_vs_restored.png")
    a = parser.parse_args()
    tv = json.loads((a.tv / "metrics.json").read_text())
    runs = [(json.loads((d / "metrics.json").read_text()), d) for d in a.learned]
    for m, d in runs:
        if m["observation_sha256"] != tv["observation_sha256"]:
            raise SystemExit(f"{d} solved another observation than {a.tv}")
    best, best_dir = max(runs, key=lambda r: r[0]["psnr"])
    panels = [(a.tv / "observed.png", f"observed, {tv['psnr_observed']:.2f} dB"),
              (a.tv / "restored.png", f"TV, {tv['psnr']:.2f} dB"),
              (best_dir / "restored.png", f"{best['prior']} ({best['solver']}), {best['psnr']:.2f} dB"),
              (a.tv / "ground_truth.png", "ground truth")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (path, title) in zip(axes, panels):
        ax.imshow(Image.open(path), cmap="gray")
        ax.set_title(title, fontsize=13)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
