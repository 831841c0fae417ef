"""Fit the Gaussian-mixture patch model of the EPLL prior (``prior=epll``, priors/epll.py).

Zoran & Weiss, "From Learning Models of Natural Image Patches to Whole Image Restoration",
ICCV 2011, Sec. 3: a K-component zero-DC mixture over p x p patches,

    p(x) = sum_k pi_k N(x - mean(x); mu_k, Sigma_k),

fitted by expectation-maximisation to random patches of natural images. Here the EM is
deepinv's (``deepinv.optim.utils.GaussianMixtureModel.fit``: batched EM, the means started
from the first K patches, Sigma_k + ``cov_reg`` I after each M-step). Departures from the
paper, both for fitting time on a CPU: fewer patches than its 2 million (``--patches``), and
the means are fitted, not fixed at zero (they come out near zero; the prior's Wiener step
uses them).

Data: the training images of ``conf/train.yaml`` (``data.dirs``: CBSD432 colour and Train400
gray) without its held-out validation files (``data.holdout``); the same number of patches
from every image, at random positions (``deepinv.utils.patch_extractor``), from one random
channel of a colour image: the model is of gray patches, which the prior applies to each
channel of a colour image (priors/epll.py says why). Intensities on the [0, 1] scale; each
patch has its mean removed.

    python -m pnp.train_gmm                       # 200 components, 8x8, -> pnp/weights/epll_gmm.pt
    python -m pnp.train_gmm --components 2 --patches 500 --iterations 3 --out /tmp/gmm.pt

Options: ``--components`` K (200), ``--patch-size`` p (8), ``--patches`` (100000),
``--iterations`` EM iterations (20), ``--batch`` patches per E-step block (256: blocks of
4 x K x batch x p^2 x 4 bytes; at 2048 the allocations tripled the time of an EM step), ``--cov-reg`` (1e-5), ``--seed`` (0), ``--threads`` (1),
``--config`` (the training config naming the data folders and the held-out files),
``--out``. The file is written atomically (a temporary file renamed over ``--out``) and holds
only the mixture weights, means and covariances (fp32) and how they were fitted, read back
with ``torch.load(weights_only=True)`` by ``priors.epll.load_gmm``. Bad options or data: one
line and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from pnp.errors import PnPError

SHIPPED_GMM = Path(__file__).resolve().parent / "weights" / "epll_gmm.pt"
TRAIN_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "train.yaml"
FORMAT = "pnp-epll-gmm-1"


def training_patches(config: Path, n: int, patch: int, seed: int) -> torch.Tensor:
    """``n`` random zero-mean ``patch`` x ``patch`` gray patches (n x patch^2, [0, 1] scale) from
    the training images of ``config`` (its ``data.dirs`` without ``data.holdout``)."""
    from deepinv.utils import patch_extractor
    from omegaconf import OmegaConf

    from pnp.train import training_images

    if not config.is_file():
        raise PnPError(f"training config not found: {config}")
    train, _ = training_images(OmegaConf.load(config), min_size=patch)
    images = [im for pairs in train.values() for _, im in pairs]
    if not images:
        raise PnPError(f"no training images in the data.dirs of {config}")
    torch.manual_seed(seed)  # patch_extractor draws positions from the global generator
    per_image = [n // len(images) + (i < n % len(images)) for i in range(len(images))]
    out = []
    for im, k in zip(images, per_image):
        if k == 0:
            continue
        p, _ = patch_extractor(im[None].float() / 255.0, k, patch, duplicates=True)
        p = p[0]  # k x C x patch x patch
        channel = torch.randint(p.shape[1], (p.shape[0],))
        out.append(p[torch.arange(p.shape[0]), channel].reshape(p.shape[0], -1))
    x = torch.cat(out)
    return x - x.mean(dim=1, keepdim=True)


def fit_gmm(patches: torch.Tensor, components: int, iterations: int, batch: int, cov_reg: float):
    """A ``GaussianMixtureModel`` fitted to ``patches`` by deepinv's EM (means started from
    the first ``components`` patches), and the mean log-likelihood per patch of each step."""
    from deepinv.optim.utils import GaussianMixtureModel

    gmm = GaussianMixtureModel(components, patches.shape[1])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(patches), batch_size=batch)
    gmm.fit(loader, max_iters=iterations, cov_regularization=cov_reg)
    return gmm


def mean_log_likelihood(gmm, patches: torch.Tensor, batch: int = 256) -> float:
    """Mean log p(x) of ``patches`` under ``gmm`` (nats per patch)."""
    with torch.no_grad():
        return -float(sum(gmm(b).sum() for b in patches.split(batch))) / patches.shape[0]


def save_gmm(gmm, path: Path, info: dict) -> None:
    """Write the weights, means and covariances of ``gmm`` and ``info`` to ``path`` atomically."""
    from pnp.io import atomic_write

    state = {"format": FORMAT, "weights": gmm.get_weights().float().contiguous(),
             "mu": gmm.mu.detach().float().contiguous(), "cov": gmm.get_cov().float().contiguous(), **info}
    with atomic_write(path) as f:
        torch.save(state, f)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a positive number, got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pnp.train_gmm",
                                 description="Fit the EPLL Gaussian-mixture patch model by EM.")
    ap.add_argument("--components", type=positive_int, default=200, help="mixture components K (200)")
    ap.add_argument("--patch-size", type=positive_int, default=8, help="patch side p (8)")
    ap.add_argument("--patches", type=positive_int, default=100_000, help="training patches (100000)")
    ap.add_argument("--iterations", type=positive_int, default=20, help="EM iterations (20)")
    ap.add_argument("--batch", type=positive_int, default=256, help="patches per E-step block (256)")
    ap.add_argument("--cov-reg", type=positive_float, default=1e-5, help="added to each covariance's diagonal (1e-5)")
    ap.add_argument("--seed", type=int, default=0, help="patch positions and channels (0)")
    ap.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")
    ap.add_argument("--config", type=Path, default=TRAIN_CONFIG,
                    help="training config: data.dirs and data.holdout (conf/train.yaml)")
    ap.add_argument("--out", type=Path, default=SHIPPED_GMM, help="output file (pnp/weights/epll_gmm.pt)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if args.components > args.patches:
            raise PnPError(f"--patches ({args.patches}) must be at least --components ({args.components})")
        t0 = time.time()
        patches = training_patches(args.config, args.patches, args.patch_size, args.seed)
        print(f"{patches.shape[0]} patches of {args.patch_size}x{args.patch_size} in {time.time() - t0:.1f} s",
              flush=True)
        t1 = time.time()
        gmm = fit_gmm(patches, args.components, args.iterations, args.batch, args.cov_reg)
        seconds = time.time() - t1
        ll = mean_log_likelihood(gmm, patches, args.batch)
        if not math.isfinite(ll):
            raise PnPError(f"EM did not converge to a finite likelihood ({ll}); lower --components or raise --cov-reg")
        info = {"patch_size": args.patch_size, "components": args.components, "patches": patches.shape[0],
                "iterations": args.iterations, "cov_reg": args.cov_reg, "seed": args.seed,
                "fit_seconds": round(seconds, 1), "threads": args.threads, "train_log_likelihood": ll}
        save_gmm(gmm, args.out, info)
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"EM: {args.iterations} iterations in {seconds:.0f} s; mean log-likelihood {ll:.2f} nats per patch; "
          f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
