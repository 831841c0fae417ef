"""Checks at the boundary: the command line before Hydra composes it, the composed config, and
the tensors and images handed to a run, so that a bad value is refused before any work, with
one line naming the key (or file) and what it must be.

- ``check_keys(argv)``: a misspelled key (``prior.sigmaa=3``, ``imgae=x.png``), with the closest
  valid key suggested;
- ``validate_config(cfg)``: types and ranges of the config values (``SCHEMA``; a numeric default
  of a prior/op/solver/noise config asks for a finite number);
- ``check_tensor(x)``: an image tensor of the Python API (float, N x C x H x W, finite, in [0, 1]);
- ``check_measurable(...)``: the metrics' border and SSIM's window against the image size.
"""
from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from pnp.errors import PnPError
from pnp.protocol import metric_border

GROUPS = ("prior", "op", "solver", "noise", "benchmark")
SSIM_MIN_SIDE = 6  # deepinv's SSIM (Gaussian window 11, reflect padding 5) needs sides > 5


# ----------------------------------------------------------------------------- values

@dataclass(frozen=True)
class Number:
    """A finite number (``integer``: a whole one) in [low, high] (``open_low``/``open_high``: open ends)."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    null: bool = False  # null allowed (the component's default)
    open_low: bool = False
    open_high: bool = False
    units: str = ""
    hint: str = ""
    hint_when: str = ""  # the hint is shown for a string value containing this

    def range_text(self) -> str:
        lo = None if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        hi = None if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        if lo and hi:
            return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        return lo or hi or ""

    def describe(self) -> str:
        if self.integer and self.low == 1 and self.high is None and not self.open_low:
            kind, rng = "a positive integer", ""
        else:
            kind, rng = ("an integer" if self.integer else "a finite number"), self.range_text()
        return " ".join(t for t in (kind, rng, f"({self.units})" if self.units else "",
                                    "or null" if self.null else "") if t)

    def check(self, key: str, value) -> None:
        if value is None:
            if self.null:
                return
            raise PnPError(f"{key} must be {self.describe()}, got null")
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok_type or not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            hint = f"; {self.hint}" if self.hint and isinstance(value, str) and self.hint_when in value else ""
            raise PnPError(f"{key} must be {self.describe()}, got {_shown(value)}{hint}")
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if below or above:
            units = f" ({self.units})" if self.units else ""
            wanted = self.describe() if self.integer else f"{self.range_text()}{units}"
            raise PnPError(f"{key} must be {wanted}, got {_shown(value)}")


@dataclass(frozen=True)
class Boolean:
    null: bool = False

    def check(self, key: str, value) -> None:
        if not isinstance(value, bool) and not (self.null and value is None):
            raise PnPError(f"{key} must be true or false, got {_shown(value)}")


@dataclass(frozen=True)
class Choice:
    options: tuple

    def check(self, key: str, value) -> None:
        if value not in self.options:
            raise PnPError(f"{key} must be one of {', '.join(map(str, self.options))}, got {_shown(value)}")


@dataclass(frozen=True)
class AutoOrNumber:
    """``auto`` (a preset chooses the value per problem) or a finite number."""

    def check(self, key: str, value) -> None:
        if value == "auto" or value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PnPError(f"{key} must be auto or a finite number, got {_shown(value)}")


@dataclass(frozen=True)
class AutoOrCount:
    """``auto`` or a positive integer."""

    def check(self, key: str, value) -> None:
        if value == "auto":
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PnPError(f"{key} must be a positive integer or auto, got {_shown(value)}")


@dataclass(frozen=True)
class Border:
    def check(self, key: str, value) -> None:
        if value in (None, "auto", "scale", "half_kernel", "none"):
            return
        Number(0, integer=True, hint="or auto, scale, half_kernel").check(key, value)


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


COUNT = Number(1, integer=True, null=True)  # an iteration count; null = the prior's recommendation
POSITIVE = Number(0, open_low=True, null=True)
NONNEGATIVE = Number(0, null=True)
SIGMA_255 = Number(0, null=True, units="0-255 units")

# Keys of the composed config (``group.key`` for any choice of the group) and what they take.
SCHEMA = {
    "seed": Number(0, integer=True),
    "progress": Boolean(),
    "log_every": AutoOrCount(),
    "overwrite": Boolean(),
    "skip_unreadable": Boolean(),
    "threads": Number(1, integer=True, null=True),
    "batch_size": Number(1, integer=True),
    "metrics.border": Border(),
    "metrics.channel": Choice(("rgb", "y")),
    "noise.sigma": Number(0, units="0-255 units", hint="it is in 0-255 units: write 25 for 25/255", hint_when="/"),
    "noise.gain": Number(0, 1e12, open_low=True, units="photons at intensity 1"),
    "op.scale": Number(1, integer=True),
    "op.kernel_size": Number(1, integer=True),
    "op.kernel_sigma": Number(0, open_low=True, units="pixels"),
    "op.missing": Number(0, 1, open_high=True),
    "op.ratio": Number(0, 1, open_low=True),
    "op.cg_tol": Number(0, open_low=True),
    "solver.iterations": COUNT,
    "solver.average": Number(0, integer=True, null=True),
    "solver.levels": COUNT,
    "solver.steps": COUNT,
    "solver.samples": Number(1, integer=True),
    "solver.step": POSITIVE,
    "solver.rho": POSITIVE,
    "solver.eps": POSITIVE,
    "solver.lr": POSITIVE,
    "solver.lam": NONNEGATIVE,
    "solver.alpha": Number(0, 2, open_low=True, null=True),
    "solver.momentum": Number(0, 1, open_high=True, null=True),
    "solver.sigma_prox": SIGMA_255,
    "solver.sigma_start": SIGMA_255,
    "solver.sigma_end": SIGMA_255,
    "solver.sigma_end_min": SIGMA_255,
    "solver.nesterov": Boolean(null=True),
    "solver.project": Boolean(),
}
PRECISION = Choice(("auto", "fp32", "bf16"))
# Keys whose default is ``auto`` but which take words, not numbers (by the key's last name).
WORD_KEYS = {"precision": PRECISION, "schedule": Choice(("auto", "fixed", "inv_sqrt"))}
COUNT_NAMES = ("iterations", "steps", "levels", "samples", "scales", "channels", "size")


@lru_cache(maxsize=None)
def _group_defaults(group: str) -> dict:
    """{config name: {key: default}} of pnp's own configs of ``group`` (the leaf values)."""
    from pnp.tune import package_conf_dir

    out = {}
    for path in sorted((Path(package_conf_dir()) / group).glob("*.yaml")):
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception:  # noqa: BLE001 - a broken config file is reported by Hydra itself
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            out.setdefault(data["name"], {k: v for k, v in _leaves(data) if k != "defaults"})
    return out


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _generic(group: str, name, key: str, default):
    """What a key without a SCHEMA entry takes, from its default: a number stays a number, and
    ``auto`` (a preset's value) takes auto or a number."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf in WORD_KEYS:
        return WORD_KEYS[leaf]
    if default == "auto":
        return AutoOrNumber()
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return None
    whole = isinstance(default, int) and any(leaf.endswith(n) for n in COUNT_NAMES)
    return Number(integer=whole, null=True)


_UNSET = object()


def validate_config(cfg) -> None:
    """PnPError (one line, naming the key, the type and the range) for the first bad value."""
    for key, rule in SCHEMA.items():
        value = OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=False)
        if value is not _UNSET and not isinstance(value, (DictConfig, ListConfig)):
            rule.check(key, value)
    for group in ("prior", "op", "solver", "noise"):
        node = cfg.get(group) if isinstance(cfg, DictConfig) else None
        if not isinstance(node, DictConfig):
            continue
        defaults = _group_defaults(group).get(node.get("name"), {})
        for sub, default in defaults.items():
            key = f"{group}.{sub}"
            rule = None if key in SCHEMA else _generic(group, node.get("name"), sub, default)
            if rule is None:
                continue
            value = OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=False)
            if value is not _UNSET and not isinstance(value, (DictConfig, ListConfig)):
                rule.check(key, value)


# ----------------------------------------------------------------------------- keys

def _config_groups() -> set[str]:
    from pnp.tune import package_conf_dir

    return {p.name for p in Path(package_conf_dir()).iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def _override_parts(argv: list[str]):
    """(overrides to compose with: group choices and additions, keys to check, swept groups)."""
    choices, keys, swept = [], [], set()
    groups = set(GROUPS) | _config_groups()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        name = key.lstrip("+~")
        if name == "hydra" or name.startswith(("hydra.", "hydra/")):
            continue
        sweep = "," in value or value.startswith(("choice(", "range(", "glob(", "interval(", "tag("))
        if name in groups or "/" in name or "@" in name:
            if sweep:
                swept.add(name)
            else:
                choices.append(arg)
        elif key != name:  # +key=value adds a key, ~key removes one: Hydra's business
            if not sweep:
                choices.append(arg)
        else:
            keys.append(key)
    return choices, keys, swept


def _compose(choices: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="pnp.conf", version_base=None):
        return compose(config_name="config", overrides=choices)


def _flat_keys(node, prefix: str = "") -> list[str]:
    out = []
    for key in node.keys() if isinstance(node, DictConfig) else ():
        if not prefix and key == "hydra":
            continue
        full = f"{prefix}{key}"
        out.append(full)
        try:
            child = node._get_node(key)
        except Exception:  # noqa: BLE001
            continue
        if isinstance(child, DictConfig):
            out += _flat_keys(child, f"{full}.")
    return out


def unknown_key_message(key: str, cfg) -> str:
    known = _flat_keys(cfg)
    parent = key.rpartition(".")[0]
    siblings = [k for k in known if k.rpartition(".")[0] == parent]
    leaf = key.rpartition(".")[2]
    by_leaf = {k.rpartition(".")[2]: k for k in siblings}
    match = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)] or \
        difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    group = key.partition(".")[0]
    where = f" (with {group}={cfg[group].get('name')})" if parent and group in GROUPS \
        and isinstance(cfg.get(group), DictConfig) else ""
    if match:
        return f"unknown key '{key}'{where}; did you mean {match[0]}?"
    if parent and siblings:
        names = ", ".join(k.rpartition(".")[2] for k in siblings)
        return f"unknown key '{key}'{where}; {parent} has: {names}"
    return f"unknown key '{key}'; see python -m pnp --help (or +{key}=VALUE to add a new key)"


def check_keys(argv: list[str]) -> None:
    """A one-line PnPError for an override of a key that the config does not have, before Hydra
    composes (its message suggests ``+key``, which leads to a second error)."""
    choices, keys, swept = _override_parts(argv)
    keys = [k for k in keys if k.partition(".")[0] not in swept]
    if not keys:
        return
    if any(a in ("--config-dir", "-cd") or a.startswith(("--config-dir=", "--config-path", "-cp"))
           for a in argv):
        return  # configs from another folder: Hydra checks these keys itself
    try:
        cfg = _compose(choices)
    except Exception:  # noqa: BLE001 - a bad choice: reported by Hydra or check_choices
        return
    for key in keys:
        if OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=False) is _UNSET:
            raise PnPError(unknown_key_message(key, cfg))


# ----------------------------------------------------------------------------- tensors and images

def check_tensor(x, observed: bool = False, name: str = "image"):
    """The API's image tensor as 1 x C x H x W (or N x C x H x W) float, else a PnPError saying how
    to fix it: non-float (uint8), 0-255 values, values below 0, NaN/Inf, H x W x C layout, empty."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise PnPError(f"{name} must be a path or a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise PnPError(f"{name} tensor has dtype {x.dtype}; pass a float tensor in [0, 1], e.g. x.float() / 255")
    if x.numel() == 0:
        raise PnPError(f"{name} tensor is empty (shape {tuple(x.shape)})")
    if x.dim() == 2:
        x = x[None]
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise PnPError(f"{name} tensor has shape {tuple(x.shape)}; expected C x H x W or N x C x H x W")
    c, h, w = x.shape[1:]
    if c not in (1, 3):
        layout = "; it looks like H x W x C: use x.permute(2, 0, 1)" if w in (1, 3) else ""
        raise PnPError(f"{name} tensor has shape {tuple(x.shape)}: {c} channels, expected 1 (gray) or 3 "
                       f"(colour) in C x H x W layout{layout}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise PnPError(f"{name} tensor has {bad} NaN/Inf value(s); replace them, e.g. torch.nan_to_num(x)")
    lo, hi = float(x.min()), float(x.max())
    tol = 0.5 if observed else 1e-2  # an observation carries noise around [0, 1]
    if hi > 1 + tol:
        raise PnPError(f"{name} tensor values reach {hi:g}; expected [0, 1]: scale 0-255 values with x / 255")
    if lo < -tol:
        raise PnPError(f"{name} tensor values go down to {lo:g}; expected [0, 1]: use x.clamp(0, 1)")
    return x


def ssim_fits(height: int, width: int, border: int) -> bool:
    return min(height, width) - 2 * border >= SSIM_MIN_SIDE


_warned: set[str] = set()


def check_measurable(shapes: dict[str, tuple[int, int]], border: int, border_spec, op_name) -> None:
    """Before solving: PnPError when the metrics' border leaves nothing of an image to measure;
    a warning line (once) when what is left is under SSIM's window (SSIM is then not computed)."""
    empty = [n for n, (h, w) in shapes.items() if min(h, w) - 2 * border < 1]
    if empty:
        h, w = shapes[empty[0]]
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise PnPError(f"metrics.border={border_spec} crops {border} px from each side (op={op_name}), which leaves "
                       f"nothing of the {w}x{h} image {empty[0]}{more} to measure; use a larger image, a smaller "
                       f"op.scale/kernel, or metrics.border=0")
    small = [n for n, (h, w) in shapes.items() if not ssim_fits(h, w, border)]
    key = f"{sorted(small)}:{border}"
    if small and key not in _warned:
        _warned.add(key)
        more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        print(f"warning: ssim not computed for {small[0]}{more}: under {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} px left after "
              f"the {border} px border (metrics.border={border_spec}); psnr still is", file=sys.stderr, flush=True)


def image_shapes(cfg) -> dict[str, tuple[int, int]]:
    """{file name: (H, W)} of the run's images, from their headers (no decoding); PnPError for
    a missing, unreadable or unsupported file."""
    from pnp.io import default_image, image_size, list_images

    images = list_images(cfg.image) if cfg.get("image") else [default_image()]
    return {path.name: image_size(path) for path in images}


def check_run(cfg) -> None:
    """Everything that can be checked before solving a (non-suite) run: values, then sizes."""
    validate_config(cfg)
    if cfg.get("benchmark"):
        return  # suites: each problem has its own protocol, checked by its own tests

    op = OmegaConf.to_container(cfg.op, resolve=True)
    shapes = image_shapes(cfg)
    if op.get("name") == "blur":  # the operator's own check, before the metrics' (whose border is half of it)
        from pnp.operators.kernels import GENERATED, make_kernel

        kernel = op.get("kernel", "gaussian")
        kh = kw = op.get("kernel_size")
        if kernel not in GENERATED:
            kh, kw = make_kernel(kernel).shape
        for name, (h, w) in shapes.items():
            if isinstance(kh, int) and (kh > h or kw > w):
                raise PnPError(f"kernel {kh}x{kw} is larger than the image {h}x{w} ({name})")
    check_measurable(shapes, metric_border(cfg.metrics.border, op), cfg.metrics.border, op.get("name"))
