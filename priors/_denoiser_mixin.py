"""What the learned priors (daep, dmsp, red, denoiser) share: the denoiser D(x, sigma).

``prior.denoiser.name`` chooses D: ``network`` (the default), the learned denoiser, or a
classical one, ``bm3d`` or ``nlm`` (``pnp.models.classical``; the settings ``weights``,
``precision``, ``arch`` and ``grid_shift`` belong to the network and are ignored for them, and
the run record lists the classical denoiser's own settings instead). A prior whose gradient
needs D's Jacobian (``needs_jacobian``: DAEP's vector-Jacobian product) refuses a classical
denoiser when it is built, before any work.

``LearnedPrior`` loads the network once per (weights, precision, device) with
``pnp.models.loading.load_denoiser`` (config ``prior.denoiser: {weights, precision}``; weights
null = the shipped colour ``pnp/weights/denoiser.pt`` with ``denoiser_gray.pt`` for gray
images), draws the priors' noise eta from a generator seeded by the problem's seed, and keeps a one-entry cache of the last network call, keyed by
the identity and version of its input tensor: the solvers evaluate the objective (``energy``)
at the new iterate and then the gradient/prox at that same tensor, so the two share one call
and an iteration costs the network calls of the algorithm only.

Noise levels in configs are on the 0-255 scale (as in the papers); D works on [0, 1] images
with sigma / 255.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from pnp.errors import PnPError
from pnp.models.classical import CLASSICAL, DENOISER_NAMES, NETWORK, load_classical, require_package
from pnp.models.grid_shift import GridShift
from pnp.models.loading import load_denoiser, weights_files, weights_sha256
from pnp.precision import PRECISIONS, resolve_precision
from pnp.prior import Prior
from pnp.seeding import stream_seed

DENOISER_KEYS = ("name", "weights", "precision", "arch", "grid_shift")
NOISE_STREAM = 7  # the problem draws its observation from streams 1 and 2 of the same seed
_LOADED: dict = {}


def load_network(weights=None, precision: str = "fp32", arch=None, device="cpu") -> torch.nn.Module:
    """``load_denoiser`` memoised per (weights, precision, arch, device): a folder of images loads it once."""
    key = (None if weights is None else str(weights), precision, arch, str(device))
    if key not in _LOADED:
        try:
            _LOADED[key] = load_denoiser(weights, arch=arch, device=device, precision=precision)
        except PnPError as err:
            raise PnPError(f"prior.denoiser.weights: {err}") from None
    return _LOADED[key]


def load_classical_once(name: str) -> torch.nn.Module:
    """``load_classical`` memoised per name (it holds no state between calls)."""
    key = ("classical", name)
    if key not in _LOADED:
        _LOADED[key] = load_classical(name)
    return _LOADED[key]


def denoiser_priors(needs_jacobian: bool | None = None) -> list[str]:
    """The registered priors built on ``LearnedPrior`` (those with ``needs_jacobian`` equal to the
    argument, unless None): the priors a ``prior.denoiser.name`` applies to."""
    from pnp.registry import PRIORS

    found = []
    for name in PRIORS.names():
        try:
            cls = PRIORS.get(name)
        except PnPError:
            continue
        if isinstance(cls, type) and issubclass(cls, LearnedPrior) and \
                (needs_jacobian is None or cls.needs_jacobian == needs_jacobian):
            found.append(name)
    return found


def registered_name(cls: type) -> str:
    """The registry name of a prior class (its class name if it is not registered)."""
    from pnp.registry import PRIORS

    for name in PRIORS.names():
        try:
            if PRIORS.get(name) is cls:
                return name
        except PnPError:
            continue
    return cls.__name__


def positive(name: str, value, allow_zero: bool = False, auto: bool = False) -> float:
    """``value`` as a float, or a one-line PnPError naming the config key (``auto``: the key also
    accepts the string "auto", handled by the caller)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PnPError(f"{name} must be a number{' or auto' if auto else ''}, got {value!r}") from None
    if not (v >= 0 if allow_zero else v > 0) or v != v or v == float("inf"):
        raise PnPError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return v


def positive_or_auto(name: str, value, authors: float) -> tuple[bool, float]:
    """(True, authors) for "auto" (the caller sets the value per problem in ``setup``), else
    (False, ``value`` checked by ``positive``)."""
    if value == "auto":
        return True, float(authors)
    return False, positive(name, value, auto=True)


def at_least_one(name: str, value) -> int:
    if int(value) != value or int(value) < 1:
        raise PnPError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


class LearnedPrior(Prior):
    """A prior built on a Gaussian denoiser ``D(x, sigma)`` (x in [0, 1], sigma on [0, 1])."""

    needs_jacobian: ClassVar[bool] = False  # the prior differentiates through D (a classical D is refused)

    def __init__(self, weight: float = 1.0, denoiser: dict | None = None, preset: dict | None = None):
        super().__init__(weight, preset)
        cfg = {"name": NETWORK, "weights": None, "precision": "auto", "arch": None, "grid_shift": False,
               **dict(denoiser or {})}
        unknown = sorted(set(cfg) - set(DENOISER_KEYS))
        if unknown:
            raise PnPError(f"prior.denoiser: unknown key(s) {', '.join(unknown)}; known: {', '.join(DENOISER_KEYS)}")
        if cfg["name"] not in DENOISER_NAMES:
            raise PnPError(f"prior.denoiser.name must be one of {', '.join(DENOISER_NAMES)}, got {cfg['name']!r}")
        if cfg["name"] in CLASSICAL:
            self.refuse_classical(cfg["name"])
            require_package(cfg["name"])
        if cfg["precision"] not in PRECISIONS:
            raise PnPError(f"prior.denoiser.precision must be one of {', '.join(PRECISIONS)}, got {cfg['precision']!r}")
        if not isinstance(cfg["grid_shift"], bool):
            raise PnPError(f"prior.denoiser.grid_shift must be true or false, got {cfg['grid_shift']!r}")
        self.denoiser_cfg = cfg
        self.precision = cfg["precision"]  # as run: auto resolved in setup (pnp.precision)
        self.net = None  # D; loaded in setup, or injected with set_network
        self._injected = False
        self._seed, self._generators = 0, []
        self._cache = None

    @property
    def classical(self) -> bool:
        """D is a classical denoiser (``prior.denoiser.name`` bm3d or nlm), not the network."""
        return self.denoiser_cfg["name"] in CLASSICAL and not self._injected

    def refuse_classical(self, name: str) -> None:
        """A one-line PnPError if this prior needs D's Jacobian, which classical ``name`` lacks."""
        if not self.needs_jacobian:
            return
        fits = "/".join(denoiser_priors(needs_jacobian=False)) or "none"
        raise PnPError(f"prior '{registered_name(type(self))}' needs a differentiable denoiser (its gradient "
                       f"is a vector-Jacobian product through D); prior.denoiser.name={name} is not; use "
                       f"prior.denoiser.name={NETWORK}, or prior {fits} with {name}")

    def denoiser_params(self) -> dict:
        """The denoiser's settings as run: its name; for the network the weights file and its
        sha256, precision and grid shift; for a classical denoiser its package and settings."""
        if self.classical:
            name = self.denoiser_cfg["name"]
            return {"denoiser": {"name": name, **load_classical_once(name).settings()}}
        weights = self.denoiser_cfg["weights"]
        if self._injected:
            files, digests = "module given with set_network", []
        else:
            files, digests = [str(p) for p in weights_files(weights)], weights_sha256(weights)
        return {"denoiser": {"name": NETWORK, "weights": files, "sha256": digests,
                             "precision": self.precision, "grid_shift": self.denoiser_cfg["grid_shift"]}}

    def params(self) -> dict:
        return {**super().params(), **self.denoiser_params()}

    def set_network(self, net: torch.nn.Module) -> "LearnedPrior":
        """Use ``net`` (any module ``net(x, sigma)``) as D instead of loading the configured weights."""
        self.net, self._injected = net, True
        return self

    def check(self, problem) -> None:
        """Raise a one-line PnPError if the prior cannot serve ``problem`` (before any loading)."""

    def setup(self, problem) -> None:
        self.check(problem)
        if self.classical:  # weights, precision, arch and grid_shift are the network's
            self.net, self.precision = load_classical_once(self.denoiser_cfg["name"]), None
        else:
            if self.net is None:
                self.precision = resolve_precision(self.denoiser_cfg["precision"], problem.y.device)
                self.net = load_network(self.denoiser_cfg["weights"], self.precision,
                                        self.denoiser_cfg["arch"], problem.y.device)
            base = self.net.net if isinstance(self.net, GridShift) else self.net
            self.net = GridShift(base) if self.denoiser_cfg["grid_shift"] else base  # a fresh cycle per problem
        self._seed, self._generators = stream_seed(problem.seed, NOISE_STREAM), []
        self._cache = None

    def generator(self, i: int = 0) -> torch.Generator:
        """The noise generator of batch element ``i``: all seeded alike, so an image draws the same
        noise whether it is solved alone or in a batch."""
        while len(self._generators) <= i:
            self._generators.append(torch.Generator().manual_seed(self._seed))
        return self._generators[i]

    def noise(self, like: torch.Tensor, sigma: float) -> torch.Tensor:
        """eta ~ N(0, sigma^2 I) shaped like ``like``, drawn on the CPU (same draws on every device)."""
        eta = torch.stack([torch.randn(like.shape[1:], generator=self.generator(i)) for i in range(like.shape[0])])
        return (sigma * eta).to(like.device, like.dtype)

    def denoise_noisy(self, x: torch.Tensor, sigma: float, eta: torch.Tensor | None = None) -> torch.Tensor:
        """D(x + eta, sigma) with eta ~ N(0, sigma^2 I) drawn here (or given).

        A gray image under a colour-only network (a user's weights file; the shipped pair
        sends gray images to its gray model) is replicated to 3 channels with independent noise
        of std sqrt(3) sigma per channel, and the output channels averaged: the network sees
        the gray images with i.i.d. colour noise, and the channel mean, the sufficient
        statistic, carries noise of std sigma, the prior's smoothing level. Measured against
        replicating one gray draw (which the network is also trained on), the shipped colour model,
        three 128x128 Set12 crops, Levin kernel 1, noise 7.65, 150 iterations: DMSP 25.79 vs
        25.62 dB, DAEP 24.24 vs 24.12 dB.
        """
        channels = getattr(self.net, "channels", x.shape[1])
        if x.shape[1] == 1 and channels == 3:
            s3 = 3**0.5 * sigma
            z = x.expand(-1, 3, -1, -1)
            z = z + (self.noise(z, s3) if eta is None else eta)
            return self.net(z, s3).mean(1, keepdim=True)
        return self.net(x + (self.noise(x, sigma) if eta is None else eta), sigma)

    def noise_like(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The eta that ``denoise_noisy(x, sigma)`` would draw (for tests that fix eta)."""
        channels = getattr(self.net, "channels", x.shape[1])
        if x.shape[1] == 1 and channels == 3:
            return self.noise(x.expand(-1, 3, -1, -1), 3**0.5 * sigma)
        return self.noise(x, sigma)

    def cached(self, x: torch.Tensor, compute):
        """``compute()`` for input ``x``, reused while ``x`` is the same, unmodified tensor."""
        c = self._cache
        if c is not None and c[0] is x and c[1] == x._version:
            return c[2]
        value = compute()
        self._cache = (x, x._version, value)
        return value

    def forget(self) -> None:
        self._cache = None
