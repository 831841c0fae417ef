"""Train, evaluate and export the FFDNet-style denoiser: ``python -m pnp.train key=value ...``.

Training (``mode=train``, config ``pnp/conf/train.yaml``):

* data: every image of ``data.dirs`` is loaded once into memory as uint8. The colour
  model (``model.channels=3``) sees gray images replicated to 3 channels; the gray model
  (``model.channels=1``) sees colour images as BT.601 luma (``to_channels``).  A batch is ``batch`` random ``patch`` x ``patch`` crops, each with
  one of the 8 flips/rotations (dihedral group D4).
* noise: ``y = x + sigma * n``, ``n ~ N(0, I)``, one sigma per sample (0-255 units);
  a gray patch gets the same noise in its 3 channels, as a gray image replicated at
  inference does (independent noise there cost 2.8 dB on Set12 at sigma 25: 26.4
  against 29.2 dB, measured at step 7987 of a run that trained that way);
  ``sigma ~ U(sigma_range)``, except with probability ``p_high`` a log-uniform draw
  in ``sigma_high`` (up to 255, i.e. 1.0) so the annealed-Langevin sampler can use
  ``D`` at large noise.  Noisy inputs are not clipped.
* loss: MSE ``w(sigma) |D(y, sigma) - x|^2`` with ``w = min(1, sigma_ref / sigma)^2``
  (``loss_sigma_ref``, default 75): plain MSE up to sigma_ref, noise-prediction
  scaling in the high tail, whose errors would otherwise dominate the gradient.  A
  per-sigma weight does not move the minimiser, the MMSE denoiser ``E[x | y]``, which by Tweedie's formula gives the score
  ``grad log p_sigma(y) = (D(y, sigma) - y) / sigma^2`` used by RED, DAEP, DMSP and
  the score sampler (Efron 2011; Kadkhodaie & Simoncelli 2021).  A finite network does
  trade sigmas against each other, though: the MMSE grows about like sigma^1.1 over
  [15, 50], so plain MSE spends the capacity on the high sigmas.  ``loss_balance: sigma_0``
  also weights by ``sigma_0 / sigma`` between sigma_0 and sigma_ref, which makes every
  sigma's PSNR count about alike (d PSNR = -4.34 d MSE / MSE).
* optimiser: Adam, ``lr`` (1e-3, with the global gradient-norm clip ``clip_grad``; see
  ``conf/train.yaml`` for the measured alternatives) with a linear warm-up of ``warmup``
  steps, then cosine decay
  ``lr_min + (lr - lr_min) (1 + cos(pi t)) / 2``, ``t = (k - warmup) / (steps - warmup)``.
  The schedule is a pure function of the step, so its state is the step itself.
* dead units: Adam at lr 1e-3 silenced 35-60% of the hidden ReLU channels of an earlier gray
  model (they never fire on any input, so they never learn again).
  ``revive_every: N`` re-initialises, every N steps of the first ``revive_until`` of the
  run, the channels that never fire on a fixed probe batch (ReDo, Sokar et al. 2023), with
  D unchanged; ``init`` starts a run from trained weights. The count of dead channels is
  logged with each validation.
* determinism: step ``k`` draws patches, flips, sigmas and noise from a generator
  seeded with ``seed * 1_000_003 + k`` (stream k, ``pnp.seeding``); the model is initialised from ``seed``.  A
  run resumed from ``out_dir/denoiser_last.pt`` (model, Adam state, step, best
  validation PSNR) therefore gives bit-identical weights to an uninterrupted run
  (same thread count and machine).  Checkpoints are written atomically (temp file,
  fsync, ``os.replace``); SIGINT/SIGTERM finish the current step, checkpoint, exit.
* validation: centre crops of ``val.dirs`` at ``val.sigma`` with fixed noise,
  fp32; PSNR appended to ``out_dir/train_log.csv``.

``mode=eval`` prints the mean PSNR per sigma on ``eval.images`` and writes
``eval.json`` ({"15": dB, ...}) in the Hydra run directory.  ``mode=export`` writes
the fp32 state dict of the checkpoint to ``export.out`` (the shipped weights).

Bad input (missing/empty folders, images smaller than the patch, bad sigma ranges,
corrupt checkpoints) prints one ``error: ...`` line on stderr and exits with code 2.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from pnp.errors import PnPError
from pnp.io import IMAGE_SUFFIXES, atomic_write, discard_failed_run, load_image, new_folders, to_uint8
from pnp.metrics import psnr
from pnp.models.ffdnet import FFDNet
from pnp.models.loading import SHIPPED_WEIGHTS, short_message, load_denoiser, read_state_dict
from pnp.seeding import generator, stream_seed

CKPT_NAME = "denoiser_last.pt"
LOG_NAME = "train_log.csv"
LOG_FIELDS = ["step", "loss", "lr", "sec_per_step", "val_psnr", "val_detail"]
RESUME_KEYS = ["seed", "precision", "model", "data", "patch", "batch", "sigma_range", "p_high", "sigma_high",
               "loss_sigma_ref", "loss_balance", "steps", "lr", "lr_min", "warmup", "clip_grad", "threads", "revive_every",
               "revive_until", "device", "sampler"]


# ----------------------------------------------------------------------------- data
def read_image(path: Path) -> torch.Tensor:
    """An image (``pnp.io.load_image``) as a uint8 tensor C x H x W with C = 1 (gray) or 3
    (colour): a training set is held in memory at a quarter of float32's size."""
    arr = torch.from_numpy(to_uint8(load_image(path)))
    return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1).contiguous()


def load_folder(folder, min_size: int = 1) -> list[tuple[str, torch.Tensor]]:
    """All images of ``folder`` (sorted by name), each at least ``min_size`` on both sides."""
    d = Path(str(folder))
    if not d.is_dir():
        raise PnPError(f"image folder not found: {d}")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PnPError(f"no images (.png/.jpg/.bmp/.tif) in folder {d}")
    out = [(p.name, read_image(p)) for p in files]
    small = [n for n, im in out if min(im.shape[1:]) < min_size]
    if small:
        raise PnPError(
            f"{len(small)} image(s) in {d} are smaller than the patch size {min_size} "
            f"(e.g. {small[0]}); lower patch= or remove them"
        )
    return out


def holdout_names(cfg, folder) -> set[str]:
    """File names of ``folder`` (one of ``data.dirs``) held out of training: ``data.holdout``
    maps a folder's name to its held-out files, the validation split."""
    table = cfg.data.get("holdout") or {}
    return set(table.get(Path(str(folder)).name) or [])


def split_images(images, held: set[str], folder=None):
    """Split (name, image) pairs into those not in ``held`` and those in it; every held-out
    name must exist."""
    names = {n for n, _ in images}
    missing = sorted(held - names)
    if missing:
        raise PnPError(f"held-out image {missing[0]} (data.holdout) is not in {folder}; "
                       f"{len(missing)} of {len(held)} missing")
    return [(n, im) for n, im in images if n not in held], [(n, im) for n, im in images if n in held]


def training_images(cfg, min_size: int = 1):
    """({folder name: [(name, image)] trained on}, {folder name: [(name, image)] held out})
    over ``data.dirs``."""
    train, held = {}, {}
    for d in cfg.data.dirs:
        key = Path(str(d)).name
        if key in train:
            raise PnPError(f"data.dirs has two folders named {key}; data.holdout could not tell them apart")
        train[key], held[key] = split_images(load_folder(d, min_size), holdout_names(cfg, d), d)
    return train, held


def image_digest(img: torch.Tensor) -> str:
    return hashlib.sha1(str(tuple(img.shape)).encode() + img.contiguous().numpy().tobytes()).hexdigest()


def check_no_overlap(train: dict, val: dict) -> None:
    """Refuse a validation split that shares an image (same pixels) with the training images."""
    seen = {image_digest(im): f"{k}/{n}" for k, pairs in train.items() for n, im in pairs}
    both = [(f"{k}/{n}", seen[h]) for k, pairs in val.items() for n, im in pairs
            if (h := image_digest(im)) in seen]
    if both:
        raise PnPError(f"the validation split overlaps the training images: {len(both)} image(s), e.g. "
                       f"{both[0][0]} is training image {both[0][1]}; hold it out (data.holdout) or "
                       "validate on other images")


def to_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 C x H x W image as ``channels`` (1 or 3) channels: colour to gray by the ITU-R
    BT.601 luma 0.299 R + 0.587 G + 0.114 B (as PIL's "L"); gray to colour is replication
    (done lazily by ``expand`` where the patches are cut)."""
    if channels == 1 and img.shape[0] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (img.float() * luma).sum(0, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    return img


def sample_batch(images: list[torch.Tensor], g: torch.Generator, batch: int, patch: int, channels: int = 3):
    """``batch`` random patches (float, [0,1], B x channels x p x p) with random D4 transforms,
    and a (B,) bool tensor that marks the patches of gray images."""
    out, gray = [], []
    for i in torch.randint(len(images), (batch,), generator=g).tolist():
        img = images[i]
        top = int(torch.randint(img.shape[1] - patch + 1, (1,), generator=g))
        left = int(torch.randint(img.shape[2] - patch + 1, (1,), generator=g))
        t = int(torch.randint(8, (1,), generator=g))
        gray.append(img.shape[0] == 1)
        x = img[:, top : top + patch, left : left + patch].expand(channels, -1, -1)
        x = torch.rot90(x, t % 4, (1, 2))
        out.append(x.flip(2) if t >= 4 else x)
    return torch.stack(out).float().div_(255), torch.tensor(gray)


def sample_noise(g: torch.Generator, shape, gray: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise of ``shape`` (B x C x p x p), channel-identical where ``gray``."""
    n = torch.randn(shape, generator=g, device=g.device)
    return torch.where(gray.view(-1, 1, 1, 1), n[:, :1].expand_as(n), n)


def sample_sigmas(g: torch.Generator, n: int, cfg) -> torch.Tensor:
    """Per-sample noise levels on the [0,1] scale (see module docstring)."""
    lo, hi = cfg.sigma_range
    u, v, coin = (torch.rand(n, generator=g, device=g.device) for _ in range(3))
    s = lo + (hi - lo) * u
    if cfg.p_high > 0:
        hlo, hhi = cfg.sigma_high
        s_high = torch.exp(math.log(hlo) + (math.log(hhi) - math.log(hlo)) * v)
        s = torch.where(coin < cfg.p_high, s_high, s)
    return s / 255


class PatchStore:
    """All training images in one flat uint8 buffer on ``device``, cut into batches by a single
    gather (``sampler: gather``, the default on CUDA): the patch positions, the D4 transforms and
    the channel replication of gray images are index arithmetic, so a batch of any size costs a
    handful of kernels and never leaves the device. Same distribution as ``sample_batch`` (image
    uniform, position uniform, one of the 8 flips/rotations), other random numbers."""

    def __init__(self, images: list[torch.Tensor], channels: int, patch: int, device="cpu"):
        self.device, self.channels, self.patch = torch.device(device), channels, patch
        sizes = [im.numel() for im in images]
        self.buf = torch.cat([im.reshape(-1) for im in images]).to(self.device)
        off = torch.tensor([0] + sizes[:-1]).cumsum(0)
        self.off = off.to(self.device)
        self.c = torch.tensor([im.shape[0] for im in images], device=self.device)
        self.h = torch.tensor([im.shape[1] for im in images], device=self.device)
        self.w = torch.tensor([im.shape[2] for im in images], device=self.device)
        # the 8 transforms as maps output (i, j) -> source position i' * p + j' in the patch,
        # made by the very operations sample_batch applies (rot90 k times, then flip if t >= 4)
        grid = torch.arange(patch * patch).view(1, patch, patch)
        maps = [torch.rot90(grid, t % 4, (1, 2)) for t in range(8)]
        self.maps = torch.stack([m.flip(2) if t >= 4 else m for t, m in enumerate(maps)])[:, 0].to(self.device)

    def cut(self, idx: torch.Tensor, top: torch.Tensor, left: torch.Tensor, t: torch.Tensor):
        """Patches of images ``idx`` at (``top``, ``left``) under transforms ``t`` (B,), as float
        [0, 1] B x channels x p x p, and the (B,) mask of gray images."""
        p, cs = self.patch, torch.arange(self.channels, device=self.device)
        w, c = self.w[idx], self.c[idx]
        src = self.maps[t]                                            # B x p x p
        sy, sx = src // p, src % p
        chan = torch.where(c.view(-1, 1) == 1, 0, cs.view(1, -1))    # B x channels: gray replicated
        plane = self.off[idx].view(-1, 1) + chan * (self.h[idx] * w).view(-1, 1)
        pos = (top.view(-1, 1, 1) + sy) * w.view(-1, 1, 1) + left.view(-1, 1, 1) + sx
        flat = plane.view(-1, self.channels, 1, 1) + pos.unsqueeze(1)
        return self.buf[flat].float().div_(255), c == 1

    def sample(self, g: torch.Generator, batch: int):
        """``batch`` random patches drawn with ``g`` (a generator on the store's device)."""
        dev, p = self.device, self.patch
        idx = torch.randint(len(self.off), (batch,), generator=g, device=dev)
        u = torch.rand(2, batch, generator=g, device=dev, dtype=torch.float64)
        top = (u[0] * (self.h[idx] - p + 1)).long()
        left = (u[1] * (self.w[idx] - p + 1)).long()
        t = torch.randint(8, (batch,), generator=g, device=dev)
        return self.cut(idx, top, left, t)


def probe_batch(images, cfg, channels: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of noisy training patches and their sigmas (0-1 scale), to probe the network."""
    g = torch.Generator().manual_seed(int(cfg.seed) + 7)
    clean, gray = sample_batch(images, g, n, int(cfg.patch), channels)
    sig = sample_sigmas(g, n, cfg)
    return clean + sig.view(-1, 1, 1, 1) * sample_noise(g, clean.shape, gray), sig


def check_config(cfg) -> None:
    """Reject bad sizes and sigma ranges with a PnPError."""
    def rng(name, r, positive_lo=False):
        if r is None or len(r) != 2:
            raise PnPError(f"{name} must be a list [low, high] in 0-255 units, got {r}")
        try:
            lo, hi = float(r[0]), float(r[1])
        except (TypeError, ValueError):
            raise PnPError(f"{name} must be two numbers [low, high] in 0-255 units, got {r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise PnPError(f"{name}={[lo, hi]} must be finite numbers in 0-255 units")
        if lo < 0 or hi < lo or hi <= 0 or (positive_lo and lo <= 0):
            raise PnPError(f"{name}={[lo, hi]} is empty or negative; need 0 <= low <= high, high > 0"
                           + (", low > 0 (log-uniform)" if positive_lo else ""))

    rng("sigma_range", cfg.sigma_range)
    if not 0 <= cfg.p_high <= 1:
        raise PnPError(f"p_high={cfg.p_high} must be in [0, 1]")
    if cfg.p_high > 0:
        rng("sigma_high", cfg.sigma_high, positive_lo=True)
    if int(cfg.model.get("channels", 3)) not in (1, 3):
        raise PnPError(f"model.channels={cfg.model.channels} must be 3 (colour) or 1 (gray)")
    for k in ("patch", "batch", "steps"):
        if int(cfg[k]) < 1:
            raise PnPError(f"{k}={cfg[k]} must be a positive integer")
    if int(cfg.get("revive_every") or 0) < 0 or not 0 <= float(cfg.get("revive_until", 1)) <= 1:
        raise PnPError("revive_every must be >= 0 and revive_until in [0, 1]")
    if cfg.get("revive_every") and cfg.model.get("norm"):
        raise PnPError("revive_every needs model.norm=false (revival is written for the norm-free network)")
    if cfg.precision not in ("fp32", "bf16"):
        raise PnPError(f"precision={cfg.precision} must be fp32 or bf16")
    if cfg.get("loss_balance") is not None and not float(cfg.loss_balance) > 0:
        raise PnPError(f"loss_balance={cfg.loss_balance} must be a positive sigma (0-255) or null")
    dev = str(cfg.get("device") or "cpu")
    if dev.split(":")[0] not in ("cpu", "cuda"):
        raise PnPError(f"device={dev} must be cpu or cuda (cuda:N)")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise PnPError(f"device={dev}: no CUDA device is available; use device=cpu")
    if cfg.get("sampler", "auto") not in ("auto", "loop", "gather"):
        raise PnPError(f"sampler={cfg.sampler} must be auto, loop or gather")
    if cfg.get("time_limit") is not None and not float(cfg.time_limit) > 0:
        raise PnPError(f"time_limit={cfg.time_limit} must be a positive number of seconds or null")


def loss_weight(sig: torch.Tensor, cfg) -> torch.Tensor:
    """Per-sample loss weight ``min(1, sigma_ref / sigma)^2`` (1 everywhere if sigma_ref is null),
    times ``min(1, sigma_0 / min(sigma, sigma_ref))`` if ``loss_balance = sigma_0`` is set."""
    ref, sigma_0 = cfg.get("loss_sigma_ref"), cfg.get("loss_balance")
    sig = sig.clamp_min(1e-8)
    w = torch.ones_like(sig) if ref is None else (ref / 255 / sig).clamp(max=1).square()
    if sigma_0 is not None:
        w = w * (sigma_0 / 255 / (sig if ref is None else sig.clamp(max=ref / 255))).clamp(max=1)
    return w


def lr_at(k: int, cfg) -> float:
    """Learning rate of step ``k`` (0-based): linear warm-up then cosine to lr_min."""
    if k < cfg.warmup:
        return cfg.lr * (k + 1) / cfg.warmup
    t = min(1.0, (k - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * t))


# ----------------------------------------------------------------------- checkpoints
def save_atomic(obj, path: Path) -> None:
    """torch.save through ``pnp.io.atomic_write`` (temp file, fsync, os.replace), then fsync the folder."""
    with atomic_write(path) as f:
        torch.save(obj, f)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_checkpoint(path: Path) -> dict:
    """Load a training checkpoint with weights_only=True; PnPError if unusable."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PnPError(f"corrupt or unsafe checkpoint {path}: {short_message(e, 1)}") from None
    need = {"arch", "model", "optimizer", "step", "best_psnr"}
    if not isinstance(ck, dict) or not need <= ck.keys():
        raise PnPError(f"{path} is not a pnp training checkpoint (needs keys {sorted(need)})")
    return ck


def init_weights(model: FFDNet, path: Path) -> None:
    """Start a run from trained weights (a training checkpoint or exported weights of the same
    architecture), e.g. to continue with another batch size or schedule; PnPError if they do not fit."""
    sd = {k: v for k, v in read_state_dict(path).items() if k != "__arch__"}
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise PnPError(f"init weights {path} do not fit the model: {short_message(e)}") from None


@torch.no_grad()
def dead_units(model: FFDNet, noisy: torch.Tensor, sig: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden ReLU layer, a mask of the channels that never fire on this batch (fp32 probe)."""
    net, fired = copy.deepcopy(model).set_precision("fp32"), []
    for m in net.body:
        if isinstance(m, torch.nn.ReLU):
            m.register_forward_hook(lambda m, i, o: fired.append((o > 0).any(dim=(0, 2, 3))))
    net(noisy, sig)
    return [~f for f in fired]


@torch.no_grad()
def revive_dead_units(model: FFDNet, noisy: torch.Tensor, sig: torch.Tensor,
                      opt: torch.optim.Optimizer | None = None) -> list[int]:
    """Recycle ReLU channels that never fire (ReDo: Sokar et al., "The Dormant Neuron Phenomenon
    in Deep Reinforcement Learning", ICML 2023): their incoming filters get a fresh He-normal
    draw and zero bias, their outgoing weights are zeroed (and the Adam moments of all three
    are reset), so D is unchanged and the channels learn again. Returns the count per layer."""
    if model.norm:
        raise PnPError("revive_every needs model.norm=false")
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    state = opt.state if opt is not None else {}
    counts = []
    for conv, nxt, dead in zip(convs, convs[1:], dead_units(model, noisy, sig)):
        fresh = torch.empty_like(conv.weight)
        torch.nn.init.kaiming_normal_(fresh, nonlinearity="relu")
        conv.weight[dead] = fresh[dead]
        conv.bias[dead] = 0
        nxt.weight[:, dead] = 0
        for param, index in ((conv.weight, dead), (conv.bias, dead), (nxt.weight, (slice(None), dead))):
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in state.get(param, {}):
                    state[param][moment][index] = 0
        counts.append(int(dead.sum()))
    return counts


def contiguous_fp32(sd: dict) -> dict:
    return {k: v.detach().float().cpu().contiguous().clone() for k, v in sd.items()}


def inference_state(model: FFDNet) -> dict:
    """fp32 state dict of the norm-free network (BatchNorm folded in)."""
    return contiguous_fp32(model.fused().state_dict())


# ------------------------------------------------------------------------ validation
def make_val_set(folders: dict, crop: int, sigma: float, seed: int,
                 channels: int = 3) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """{folder name: [(clean, noisy)]} for {folder name: [(file name, image)]}, with centre crops
    and fixed noise (0-255 sigma); colour images become gray for a gray model (``channels`` = 1)."""
    sets = {}
    for j, (key, images) in enumerate(folders.items()):
        pairs = []
        for i, (_, im) in enumerate(images):
            im = to_channels(im, channels)
            h, w = im.shape[1:]
            ch, cw = min(crop, h), min(crop, w)
            top, left = (h - ch) // 2, (w - cw) // 2
            x = im[None, :, top : top + ch, left : left + cw].float() / 255
            g = torch.Generator().manual_seed(seed + 1000 * j + i)
            pairs.append((x, x + sigma / 255 * torch.randn(x.shape, generator=g)))
        sets[key] = pairs
    return sets


def val_folders(cfg, held: dict) -> dict:
    """{name: [(file name, image)]}: the folders of ``val.dirs``, then, with ``val.holdout``, the
    held-out images of each of ``data.dirs`` as ``<folder>-holdout``."""
    out = {Path(str(d)).name: load_folder(d) for d in cfg.val.dirs or []}
    if cfg.val.get("holdout", False):
        out.update({f"{k}-holdout": v for k, v in held.items() if v})
    return out


@torch.no_grad()
def validate(model: FFDNet, sets, sigma: float) -> dict[str, float]:
    """Mean PSNR per folder, evaluated in fp32 on a copy of the model (on its device)."""
    net = model.fused().set_precision("fp32").eval()
    dev = next(net.parameters()).device
    return {name: sum(float(psnr(net(y.to(dev), sigma / 255), x.to(dev))) for x, y in pairs) / len(pairs)
            for name, pairs in sets.items()}


def append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, LOG_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, LOG_FIELDS)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in LOG_FIELDS} for r in rows)


# -------------------------------------------------------------------------- training
def train(cfg: DictConfig) -> FFDNet:
    """Run (or resume) training as configured; return the model at the last step done."""
    check_config(cfg)
    torch.set_num_threads(int(cfg.threads))
    out_dir = Path(str(cfg.out_dir))
    ckpt_path, log_path = out_dir / CKPT_NAME, out_dir / LOG_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PnPError(f"cannot create out_dir {out_dir}: {e.strerror}") from None
    arch = {"name": "ffdnet", "depth": int(cfg.model.depth), "width": int(cfg.model.width),
            "channels": int(cfg.model.get("channels", 3)),
            "norm": bool(cfg.model.get("norm", False))}

    c = arch["channels"]
    train_sets, held = training_images(cfg, min_size=int(cfg.patch))
    images = [to_channels(im, c) for pairs in train_sets.values() for _, im in pairs]
    if not images:
        raise PnPError("every image of data.dirs is held out (data.holdout); nothing to train on")
    val_sets = {}
    if cfg.val_every > 0:
        folders = val_folders(cfg, held)
        check_no_overlap(train_sets, folders)
        val_sets = make_val_set(folders, int(cfg.val.crop), float(cfg.val.sigma), int(cfg.val.seed), c)

    device = torch.device(str(cfg.get("device") or "cpu"))
    sampler = cfg.get("sampler", "auto")
    store = None
    if sampler == "gather" or (sampler == "auto" and device.type == "cuda"):
        store = PatchStore(images, c, int(cfg.patch), device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(int(cfg.seed))
    model = FFDNet(arch["depth"], arch["width"], c, precision=cfg.precision, norm=arch["norm"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best, best_step, best_model = 0, -math.inf, -1, None
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if {"norm": False, "channels": 3, **ck["arch"]} != arch:  # older checkpoints lack these keys
            raise PnPError(f"checkpoint {ckpt_path} has architecture {ck['arch']}, config asks for {arch}; "
                           "set model.depth/width/channels to match or use another out_dir")
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise PnPError(f"checkpoint {ckpt_path} does not fit the model: {short_message(e)}") from None
        step, best, best_step, best_model = ck["step"], ck["best_psnr"], ck.get("best_step", -1), ck.get("best_model")
        truncate_log(log_path, step)
        old = ck.get("config") or {}
        now = OmegaConf.to_container(cfg, resolve=True)
        changed = [k for k in RESUME_KEYS if k in old and old[k] != now.get(k)]
        if cfg.get("time_limit") and "steps" in old:  # the length fitted to the time limit at the start
            cfg.steps = old["steps"]
            changed = [k for k in changed if k != "steps"]
        if changed:  # allowed (e.g. a longer run), but then not bit-identical to one run
            print(f"warning: resuming with changed settings {changed}", flush=True)
        print(f"resumed from {ckpt_path} at step {step} (best val PSNR {best:.2f} dB)", flush=True)
    elif cfg.get("init"):
        init_weights(model, Path(str(cfg.init)))
        print(f"initialised from {cfg.init} (fresh optimiser and schedule)", flush=True)
    probe = tuple(t.to(device) for t in probe_batch(images, cfg, c))  # fixed noisy patches: dead units, revival
    revive_every = int(cfg.get("revive_every") or 0)
    n_held = sum(len(v) for v in held.values())
    print(f"training {arch} on {len(images)} images ({n_held} held out), "
          f"{sum(p.numel() for p in model.parameters())} params, steps {step} -> {cfg.steps}, "
          f"device {device}, sampler {'gather' if store is not None else 'loop'}, out_dir {out_dir}", flush=True)

    def checkpoint():
        save_atomic({"arch": arch, "model": contiguous_fp32(model.state_dict()), "optimizer": opt.state_dict(),
                     "step": step, "best_psnr": best, "best_step": best_step, "best_model": best_model,
                     "config": OmegaConf.to_container(cfg, resolve=True)}, ckpt_path)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stop_at = int(cfg.steps if cfg.get("stop_at") is None else min(cfg.stop_at, cfg.steps))
    # time_limit: stop (and checkpoint) after that many seconds of training; a fresh run first
    # measures its speed over steps [calibrate / 4, calibrate) and shortens `steps` to what fits
    # (95%), so the cosine schedule ends in time. Steps are not bit-exact on CUDA anyway.
    time_limit = cfg.get("time_limit")
    calibrate = int(cfg.get("time_calibrate") or 200) if time_limit and step == 0 else 0
    t_cal, timed_out = None, False
    on_cpu = device.type == "cpu"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    bar = tqdm(total=int(cfg.steps), initial=step, disable=not sys.stderr.isatty(), dynamic_ncols=True)
    loss_sum, n_loss, t0 = 0.0, 0, time.perf_counter()
    deadline = t0 + float(time_limit) if time_limit else None
    try:
        model.train()
        while step < stop_at and not stop["flag"]:
            if revive_every and step % revive_every == 0 and step < float(cfg.revive_until) * int(cfg.steps):
                torch.manual_seed(stream_seed(cfg.seed, step))
                counts = revive_dead_units(model, *probe, opt)
                if any(counts):
                    print(f"step {step}: revived dead ReLU channels per layer {counts}", flush=True)
            if store is not None:
                g = generator(cfg.seed, step, device=device)
                clean, gray = store.sample(g, int(cfg.batch))
            else:
                g = generator(cfg.seed, step)
                clean, gray = sample_batch(images, g, int(cfg.batch), int(cfg.patch), c)
            sig = sample_sigmas(g, clean.shape[0], cfg)
            noisy = clean + sig.view(-1, 1, 1, 1) * sample_noise(g, clean.shape, gray)
            clean, noisy, sig = clean.to(device), noisy.to(device), sig.to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            err = (model(noisy, sig) - clean).square().mean(dim=(1, 2, 3))
            loss = (loss_weight(sig, cfg) * err).mean()
            if on_cpu and not math.isfinite(loss.item()):
                raise PnPError(f"loss became {loss.item()} at step {step}; lower lr= (last good checkpoint kept)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.get("clip_grad"):  # spikes from high-noise batches killed ReLUs and undid training
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.clip_grad))
            opt.step()
            step += 1
            # on CUDA the loss is read (a synchronisation) only where it is logged or checkpointed
            loss_sum, n_loss = loss_sum + (loss.item() if on_cpu else loss.detach().double()), n_loss + 1
            bar.update(1)
            if not bar.disable:
                bar.set_postfix(loss=f"{loss.item():.2e}")
            if calibrate and step == max(1, calibrate // 4):
                sync()
                t_cal = time.perf_counter()
            elif calibrate and step == calibrate and t_cal is not None:
                sync()
                now = time.perf_counter()
                fits = step + int(0.95 * (deadline - now) * (step - max(1, calibrate // 4)) / max(now - t_cal, 1e-9))
                if fits < cfg.steps:
                    cfg.steps = max(step, fits)
                    stop_at = min(stop_at, int(cfg.steps))
                print(f"step {step}: {(now - t_cal) / (step - max(1, calibrate // 4)):.4f} s/step; "
                      f"{cfg.steps} steps fit the time limit of {time_limit} s", flush=True)
            if deadline is not None and step < stop_at and time.perf_counter() >= deadline:
                stop["flag"] = timed_out = True
            due_ckpt = step % cfg.checkpoint_every == 0 or step == stop_at or stop["flag"]
            row = None
            if not on_cpu and (step % cfg.log_every == 0 or step == stop_at or due_ckpt):
                total = float(loss_sum)  # one synchronisation
                loss_sum = total
                if not math.isfinite(total):
                    raise PnPError(f"loss became {total} before step {step}; lower lr= (last good checkpoint kept)")
            if step % cfg.log_every == 0 or step == stop_at:
                dt = (time.perf_counter() - t0) / n_loss
                row = {"step": step, "loss": f"{loss_sum / n_loss:.4e}", "lr": f"{lr_at(step - 1, cfg):.3e}",
                       "sec_per_step": f"{dt:.3f}"}
                if bar.disable:
                    print(f"step {step}/{cfg.steps} loss {row['loss']} lr {row['lr']} {dt:.3f} s/step", flush=True)
                loss_sum, n_loss = 0.0, 0
            if val_sets and (step % cfg.val_every == 0 or step == cfg.steps or timed_out):
                res = validate(model, val_sets, float(cfg.val.sigma))
                mean = sum(res.values()) / len(res)
                if mean > best:
                    best, best_step, best_model = mean, step, inference_state(model)
                row = row or {"step": step}
                dead = sum(int(d.sum()) for d in dead_units(model, *probe))  # ReLU channels that never fire
                row.update(val_psnr=f"{mean:.3f}",
                           val_detail=";".join(f"{k}={v:.3f}" for k, v in res.items()) + f";dead={dead}")
                msg = f"step {step}: val PSNR (sigma {cfg.val.sigma}) {row['val_detail']} mean {mean:.3f} dB"
                bar.write(msg) if not bar.disable else print(msg, flush=True)
            if row:
                append_log(log_path, row)
            if due_ckpt:
                checkpoint()
            if row is not None:
                t0 = time.perf_counter()
    finally:
        bar.close()
        for s, h in old.items():
            signal.signal(s, h)
    if timed_out:
        print(f"time limit of {time_limit} s reached: checkpoint saved at step {step} of {cfg.steps} "
              f"in {ckpt_path}", flush=True)
    elif stop["flag"]:
        print(f"interrupted: checkpoint saved at step {step} in {ckpt_path}", flush=True)
    elif step >= cfg.steps:
        print(f"done: step {step}, best val PSNR {best:.3f} dB at step {best_step}; checkpoint {ckpt_path}", flush=True)
    return model


# ------------------------------------------------------------------ eval and export
def default_weights(cfg) -> Path | None:
    """None (the shipped models, ``load_denoiser()``) if shipped, else the training checkpoint."""
    if SHIPPED_WEIGHTS.exists():
        return None
    ck = Path(str(cfg.out_dir)) / CKPT_NAME
    if ck.exists():
        return ck
    raise PnPError(f"no weights: neither {SHIPPED_WEIGHTS} nor {ck} exists; pass eval.weights=PATH")


def eval_images(cfg) -> list:
    """The images of ``eval.images``: a folder, or ``holdout:NAME``, the held-out images
    (``data.holdout``) of the folder NAME of ``data.dirs``."""
    spec = str(cfg.eval.images)
    if not spec.startswith("holdout:"):
        return load_folder(spec)
    name = spec.split(":", 1)[1]
    dirs = [d for d in cfg.data.dirs if Path(str(d)).name == name]
    if not dirs:
        raise PnPError(f"eval.images={spec}: no folder named {name} in data.dirs")
    held = holdout_names(cfg, dirs[0])
    if not held:
        raise PnPError(f"eval.images={spec}: data.holdout holds out no image of {name}")
    return split_images(load_folder(dirs[0]), held, dirs[0])[1]


@torch.no_grad()
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Mean PSNR (dB) per sigma over eval.images; writes eval.json in the run dir."""
    torch.set_num_threads(int(cfg.threads))
    weights = Path(str(cfg.eval.weights)) if cfg.eval.weights else default_weights(cfg)
    net = load_denoiser(weights, precision=cfg.eval.precision)
    imgs = eval_images(cfg)
    sigmas = list(cfg.eval.sigmas)
    if not sigmas or any(float(s) < 0 for s in sigmas):
        raise PnPError(f"eval.sigmas={sigmas} must be a non-empty list of non-negative numbers (0-255)")
    print(f"weights {weights or 'shipped'}, {len(imgs)} images from {cfg.eval.images}, precision {cfg.eval.precision}")
    res = {}
    for s in sigmas:
        vals = []
        for i, (_, im) in enumerate(imgs):
            x = im[None].float() / 255
            g = torch.Generator().manual_seed(int(cfg.eval.seed) + i)
            y = x + float(s) / 255 * torch.randn(x.shape, generator=g)
            vals.append(float(psnr(net(y, float(s) / 255), x)))
        key = f"{float(s):g}"
        res[key] = sum(vals) / len(vals)
        print(f"sigma {key}: {res[key]:.3f} dB", flush=True)
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir) / "eval.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return res


def export(cfg: DictConfig) -> Path:
    """Write the fp32 model state dict of the training checkpoint to export.out."""
    ck_path = Path(str(cfg.out_dir)) / CKPT_NAME
    if not ck_path.exists():
        raise PnPError(f"no checkpoint to export: {ck_path} does not exist")
    ck = load_checkpoint(ck_path)
    which = cfg.export.which
    if which not in ("last", "best"):
        raise PnPError(f"export.which={which} must be last or best")
    if which == "best" and ck.get("best_model"):
        sd = ck["best_model"]  # stored norm-free
    else:
        arch = ck["arch"]
        net = FFDNet(arch["depth"], arch["width"], arch.get("channels", 3), norm=arch.get("norm", False))
        net.load_state_dict(ck["model"])
        sd = inference_state(net)
    out = Path(str(cfg.export.out))
    save_atomic(sd, out)
    load_denoiser(out)  # sanity check: loads back as an FFDNet
    print(f"exported {which} weights (step {ck['step']}, best val {ck['best_psnr']:.3f} dB at step "
          f"{ck.get('best_step')}) to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


@hydra.main(config_path="pkg://pnp.conf", config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    fresh = new_folders(cfg.get("out_dir"))  # removed again if the run fails before using it
    try:
        modes = {"train": train, "eval": evaluate, "export": export}
        if cfg.mode not in modes:
            raise PnPError(f"mode={cfg.mode} must be one of {sorted(modes)}")
        modes[cfg.mode](cfg)
    except PnPError as e:
        discard_failed_run(fresh)  # no empty out_dir, no run folder with only an empty train.log
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
