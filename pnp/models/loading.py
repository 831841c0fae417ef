"""Load a Gaussian denoiser ``D(x, sigma)`` from a weights file, safely.

``load_denoiser()`` with no argument returns the shipped FFDNet-style models
(``pnp/weights/denoiser.pt``, colour, and ``pnp/weights/denoiser_gray.pt``, gray, trained by
``python -m pnp.train``), as one module that sends 1-channel input to the gray model and
3-channel input to the colour model (``ByChannels``); ``load_denoiser("colour")`` the shipped
colour model alone (RED's default: see ``priors/red.py``).  A user path
may also hold, detected from the state-dict keys and shapes:

* ``ffdnet``: our own weights, or a ``pnp.train`` checkpoint (``denoiser_last.pt``);
* ``dncnn``: DnCNN (Zhang et al., TIP 2017) in deepinv format (``in_conv``,
  ``conv_list.i``, ``out_conv``; output ``x + out_conv(...)``) or KAIR/DPIR format
  (``model.0``, ``model.2``, ...; output ``x - model(x)``, e.g. ``dncnn_color_blind.pth``,
  ``dncnn_25.pth``).  KAIR weights are remapped to ``deepinv.models.DnCNN`` with the
  last layer negated, since deepinv adds the residual that KAIR subtracts.
  DnCNN is blind: ``sigma`` is accepted and ignored.
* ``drunet``: DRUNet (Zhang et al., "Plug-and-Play Image Restoration with Deep
  Denoiser Prior", TPAMI 2021); KAIR (``drunet_color.pth``, ``drunet_gray.pth``) and
  deepinv use the same keys (``m_head``, ``m_down1.*``, ..., ``m_tail``).

Files are always read with ``torch.load(..., weights_only=True)``: pickles that
need code execution are refused.  Every failure raises ``PnPError`` naming the file.
Gray models applied to colour input run per channel; colour models applied to gray
input run on replicated channels and return the channel mean. Every loaded model has
``differentiable = True`` (gradients reach its input); the classical denoisers of
``pnp.models.classical`` have False.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from pnp.errors import PnPError
from pnp.models.ffdnet import PRECISIONS, FFDNet, sigma_map

SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "denoiser.pt"
SHIPPED_GRAY_WEIGHTS = SHIPPED_WEIGHTS.with_name("denoiser_gray.pt")
COLOUR_ONLY = "colour"  # weights keyword: the shipped colour model alone, gray input included
ARCHS = ("ffdnet", "dncnn", "drunet")
_WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "net")


class Denoiser(nn.Module):
    """Wrap a deepinv denoiser as ``forward(x, sigma)`` with channel handling and precision.

    Args:
        net: module called as ``net(x, sigma)`` (sigma a (B,) tensor on the [0,1] scale).
        channels: channels ``net`` expects (1 or 3).
        precision: "fp32" or "bf16" (autocast bf16 + channels_last).
    """

    differentiable = True  # torch.autograd reaches the input (DAEP's vector-Jacobian product)

    def __init__(self, net: nn.Module, channels: int, precision: str = "fp32"):
        super().__init__()
        self.net, self.channels = net, channels
        self.set_precision(precision)

    def set_precision(self, precision: str) -> "Denoiser":
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.net.to(memory_format=torch.channels_last if precision == "bf16" else torch.contiguous_format)
        return self

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        b, c = x.shape[:2]
        s = sigma_map(sigma, x).view(-1)
        if c == self.channels:
            pass
        elif self.channels == 1:  # gray model, colour input: per channel
            x, s = x.reshape(b * c, 1, *x.shape[2:]), s.repeat_interleave(c)
        elif c == 1:  # colour model, gray input: replicate
            x = x.expand(-1, self.channels, -1, -1)
        else:
            raise ValueError(f"expected 1 or {self.channels} channels, got {c}")
        x = x.float()
        ctx = contextlib.nullcontext()
        if self.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
            ctx = torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)
        with ctx:
            out = self.net(x, s)
        out = out.float().contiguous()
        if c == self.channels:
            return out
        if self.channels == 1:
            return out.reshape(b, c, *out.shape[2:])
        return out.mean(dim=1, keepdim=True)


class ByChannels(nn.Module):
    """D(x, sigma) by a gray model for 1-channel x and a colour model for 3-channel x.

    ``channels`` is None: the pair serves both, so callers need no gray-under-colour handling.
    """

    channels = None
    differentiable = True

    def __init__(self, colour: nn.Module, gray: nn.Module):
        super().__init__()
        self.colour, self.gray = colour, gray

    def set_precision(self, precision: str) -> "ByChannels":
        self.colour.set_precision(precision)
        self.gray.set_precision(precision)
        return self

    @property
    def precision(self) -> str:
        return self.colour.precision

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return (self.gray if x.shape[1] == 1 else self.colour)(x, sigma)


def short_message(e: Exception, n: int = 2, limit: int = 300) -> str:
    """The first ``n`` lines of an exception message, on one line."""
    msg = " ".join(line.strip() for line in str(e).strip().splitlines()[:n]) or type(e).__name__
    return msg[:limit]


def read_state_dict(path: Path) -> dict:
    """torch.load(weights_only=True) and unwrap to a flat {name: tensor} dict (plus arch hint)."""
    if not path.is_file():
        raise PnPError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PnPError(f"cannot load {path} with weights_only=True (corrupt file, or a pickle "
                       f"that needs code execution, which is refused): {short_message(e)}") from None
    hint = obj.get("arch") if isinstance(obj, dict) and isinstance(obj.get("arch"), dict) else None
    for _ in range(2):  # e.g. {"state_dict": {...}} or a pnp.train checkpoint {"model": {...}}
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not all(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PnPError(f"{path} does not hold a state dict of tensors")
    sd = {re.sub(r"^(module\.)+", "", k): v for k, v in obj.items()}
    if hint is not None:
        sd["__arch__"] = hint
    return sd


def detect_arch(sd: dict) -> str:
    """Architecture family from the state-dict keys."""
    if "body.0.weight" in sd:
        return "ffdnet"
    if "m_head.weight" in sd and "m_tail.weight" in sd:
        return "drunet"
    if "in_conv.weight" in sd or "model.0.weight" in sd:
        return "dncnn"
    raise PnPError("unknown architecture (expected FFDNet 'body.*', DnCNN 'in_conv'/'model.0', "
                   f"or DRUNet 'm_head' keys; first keys: {list(sd)[:4]})")


def _conv_indices(sd: dict, prefix: str) -> list[int]:
    return sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k)))


def _build_ffdnet(sd: dict):
    """FFDNet from its state dict; a training state with BatchNorm is loaded, then fused."""
    idx = [i for i in _conv_indices(sd, "body.") if sd[f"body.{i}.weight"].ndim == 4]
    w0 = sd["body.0.weight"]
    norm = any(k.endswith("running_mean") for k in sd)
    net = FFDNet(depth=len(idx), width=w0.shape[0], channels=(w0.shape[1] - 1) // 4, norm=norm)
    if not norm:
        return net, sd
    net.load_state_dict(sd, strict=True)
    fused = net.fused()
    return fused, fused.state_dict()


def _build_dncnn(sd: dict):
    import deepinv

    if "model.0.weight" in sd:  # KAIR layout -> deepinv layout
        if any(k.endswith("running_mean") for k in sd):
            raise PnPError("KAIR DnCNN with BatchNorm layers is not supported (use a BN-merged model)")
        idx = _conv_indices(sd, "model.")
        names = ["in_conv"] + [f"conv_list.{i}" for i in range(len(idx) - 2)] + ["out_conv"]
        new = {}
        for name, i in zip(names, idx):
            for p in ("weight", "bias"):
                if f"model.{i}.{p}" in sd:
                    v = sd[f"model.{i}.{p}"]
                    new[f"{name}.{p}"] = -v if name == "out_conv" else v
        extra = set(sd) - {f"model.{i}.{p}" for i in idx for p in ("weight", "bias")}
        if extra:
            raise PnPError(f"unexpected keys for a KAIR DnCNN: {sorted(extra)[:3]}")
        sd = new
    depth = 2 + len(_conv_indices(sd, "conv_list."))
    w = sd["in_conv.weight"]
    net = deepinv.models.DnCNN(in_channels=w.shape[1], out_channels=sd["out_conv.weight"].shape[0],
                               depth=depth, bias="in_conv.bias" in sd, nf=w.shape[0], pretrained=None)
    return Denoiser(net, channels=w.shape[1]), sd


def _build_drunet(sd: dict):
    import deepinv

    nb = max(_conv_indices(sd, "m_down1."), default=None)
    if nb is None:
        raise PnPError("DRUNet state dict lacks the m_down1 downsampling layer")
    nc = tuple(sd[k].shape[0] for k in ("m_head.weight", f"m_down1.{nb}.weight", f"m_down2.{nb}.weight",
                                        f"m_down3.{nb}.weight"))
    cin, cout = sd["m_head.weight"].shape[1] - 1, sd["m_tail.weight"].shape[0]
    net = deepinv.models.DRUNet(in_channels=cin, out_channels=cout, nc=nc, nb=nb, pretrained=None)
    return Denoiser(net, channels=cin), sd


_BUILDERS = {"ffdnet": _build_ffdnet, "dncnn": _build_dncnn, "drunet": _build_drunet}


def weights_files(weights=None) -> list[Path]:
    """The files ``load_denoiser(weights)`` reads: the shipped pair for None, the shipped colour
    file for "colour", else the given path."""
    if weights is None:
        return [f for f in (SHIPPED_WEIGHTS, SHIPPED_GRAY_WEIGHTS) if f.exists()]
    return [SHIPPED_WEIGHTS if weights == COLOUR_ONLY else Path(str(weights))]


def weights_sha256(weights=None) -> list[str | None]:
    """The sha256 of each file ``load_denoiser(weights)`` reads (None for one that cannot be read:
    loading it reports that). 13 ms for both shipped files, so it is not memoised."""
    digests = []
    for path in weights_files(weights):
        try:
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            digests.append(None)
    return digests


def load_denoiser(weights=None, arch: str | None = None, device="cpu", precision: str = "fp32") -> nn.Module:
    """Return a denoiser module ``D(x, sigma)`` in eval mode, parameters frozen.

    Args:
        weights: path to a weights file; None = the shipped ``pnp/weights/denoiser.pt``, paired
            (``ByChannels``) with ``denoiser_gray.pt`` for gray input where that file is shipped;
            "colour" = the shipped colour model alone (gray input on replicated channels).
        arch: "ffdnet", "dncnn" or "drunet"; None = detect from the keys.
        device: torch device.  precision: "fp32" or "bf16" (autocast + channels_last).
    """
    if weights is None:
        if not SHIPPED_WEIGHTS.exists():
            raise PnPError(f"no shipped denoiser weights at {SHIPPED_WEIGHTS} yet; train with `python -m "
                           "pnp.train` then `python -m pnp.train mode=export`, or pass a weights file")
        colour = load_denoiser(SHIPPED_WEIGHTS, arch, device, precision)
        if not SHIPPED_GRAY_WEIGHTS.exists():
            return colour
        return ByChannels(colour, load_denoiser(SHIPPED_GRAY_WEIGHTS, arch, device, precision))
    (path,) = weights_files(weights)
    if precision not in PRECISIONS:
        raise PnPError(f"precision={precision!r} must be one of {PRECISIONS}")
    sd = read_state_dict(path)
    sd.pop("__arch__", None)
    try:
        found = detect_arch(sd)
    except PnPError as e:
        raise PnPError(f"{path}: {e}") from None
    if arch is not None and arch != found:
        if arch not in ARCHS:
            raise PnPError(f"unknown arch={arch!r}; choose one of {ARCHS}")
        raise PnPError(f"{path} holds a {found} state dict, not {arch}")
    try:
        model, sd = _BUILDERS[found](sd)
        target = model.net if isinstance(model, Denoiser) else model
        target.load_state_dict(sd, strict=True)
    except PnPError as e:
        raise PnPError(f"{path}: {e}") from None
    except (RuntimeError, KeyError, ValueError, IndexError) as e:
        raise PnPError(f"{path}: state dict does not fit a {found} model: {short_message(e)}") from None
    model.set_precision(precision)
    model.eval().requires_grad_(False)
    model.differentiable = True  # a network: gradients reach its input (classical denoisers: False)
    return model.to(device)
