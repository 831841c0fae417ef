"""One registry mechanism for priors, operators and solvers.

A name maps to a class (``"module:Class"``, imported lazily) and to a config file
``conf/<group>/<name>.yaml``. Built-in entries are listed below; third-party packages add
entries through the entry-point groups ``pnp.priors``, ``pnp.operators`` and ``pnp.solvers``
and add their config files through a Hydra ``SearchPathPlugin``.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pnp.errors import PnPError


class Registry:
    """Name -> class, built-in entries first, then entry points of group ``pnp.<kind>``."""

    def __init__(self, kind: str, builtin: dict[str, str]):
        self.kind = kind
        self._targets = dict(builtin)
        self._classes: dict[str, type] = {}
        self._plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"pnp.{self.kind}"):
            self._targets.setdefault(ep.name, ep.value)

    def register(self, name: str, cls: type) -> type:
        """Add ``cls`` under ``name`` at run time (tests, notebooks)."""
        self._targets[name] = f"{cls.__module__}:{cls.__qualname__}"
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._targets)

    def get(self, name: str) -> type:
        self._load_plugins()
        if name not in self._targets:
            raise PnPError(f"unknown {self.kind[:-1]} '{name}'; known: {', '.join(self.names())}")
        if name not in self._classes:
            module, _, attr = self._targets[name].partition(":")
            try:
                self._classes[name] = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise PnPError(f"{self.kind[:-1]} '{name}' could not be loaded from {self._targets[name]}: {err}")
        return self._classes[name]

    def build(self, name: str, **params):
        """Instantiate entry ``name`` with ``params``; a wrong parameter is a one-line error."""
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as err:
            raise PnPError(f"{self.kind[:-1]} '{name}': {err}") from None


PRIORS = Registry("priors", {
    "tv": "pnp.priors.tv:TV",
    "daep": "pnp.priors.daep:DAEP",
    "dmsp": "pnp.priors.dmsp:DMSP",
    "red": "pnp.priors.red:RED",
    "denoiser": "pnp.priors.denoiser:DenoiserPrior",
    "score": "pnp.priors.score:ScorePrior",
    "dip": "pnp.priors.dip:DeepImagePrior",
    "wiener": "pnp.priors.wiener:Wiener",
    "epll": "pnp.priors.epll:EPLL",
})

OPERATORS = Registry("operators", {
    "blur": "pnp.operators.blur:Blur",
    "sr": "pnp.operators.sr:SuperResolution",
    "inpaint": "pnp.operators.inpaint:Inpaint",
    "denoise": "pnp.operators.denoise:Denoise",
    "demosaic": "pnp.operators.demosaic:Demosaic",
    "cs": "pnp.operators.cs:CompressedSensing",
})

SOLVERS = Registry("solvers", {
    "gd": "pnp.solvers.gd:GradientDescent",
    "fista": "pnp.solvers.fista:FISTA",
    "admm": "pnp.solvers.admm:ADMM",
    "hqs": "pnp.solvers.hqs:HQS",
    "fixed_point": "pnp.solvers.fixed_point:FixedPoint",
    "langevin": "pnp.solvers.langevin:Langevin",
    "annealed_langevin": "pnp.solvers.annealed_langevin:AnnealedLangevin",
    "dip": "pnp.solvers.dip:DIPFit",
    "ddrm": "pnp.solvers.ddrm:DDRM",
    "snips": "pnp.solvers.snips:SNIPS",
    "closed_form": "pnp.solvers.closed_form:ClosedForm",
})


def _available(registry: Registry) -> dict[str, type]:
    """Entries whose class imports (an entry still being written is left out of suggestions)."""
    found = {}
    for name in registry.names():
        try:
            found[name] = registry.get(name)
        except PnPError:
            pass
    return found


def check_compatible(prior_name: str, solver_name: str) -> None:
    """Raise PnPError naming the compatible choices when ``solver`` needs what ``prior`` lacks."""
    prior_cls, solver_cls = PRIORS.get(prior_name), SOLVERS.get(solver_name)
    missing = set(solver_cls.requires) - set(prior_cls.provides)
    if not missing:
        return
    priors = [n for n, c in _available(PRIORS).items() if set(solver_cls.requires) <= set(c.provides)]
    solvers = [n for n, c in _available(SOLVERS).items() if set(c.requires) <= set(prior_cls.provides)]
    raise PnPError(
        f"incompatible: solver '{solver_name}' needs {', '.join(sorted(map(str, missing)))}, "
        f"which prior '{prior_name}' does not provide; priors that fit '{solver_name}': "
        f"{', '.join(priors) or 'none'}; solvers that fit '{prior_name}': {', '.join(solvers) or 'none'}"
    )


def check_operator(solver_name: str, op_name: str | None = None, op=None) -> None:
    """Raise PnPError naming the operators that fit when solver ``solver_name`` needs an operator
    capability (``Solver.requires_operator``, e.g. "svd") that operator ``op_name`` does not
    declare (``Operator.provides``) or that the built operator ``op`` lacks in its configuration
    (its method of that name returns None, e.g. a valid-boundary blur's ``svd()``)."""
    from pnp.operator import OPERATOR_CAPABILITIES

    needs = set(SOLVERS.get(solver_name).requires_operator)
    if not needs:
        return
    missing = set()
    if op_name is not None:
        missing |= needs - set(OPERATORS.get(op_name).provides)
    if op is not None:
        missing |= {c for c in needs if c not in type(op).provides or getattr(op, c)() is None}
    if not missing:
        return
    fits = []
    for name, cls in _available(OPERATORS).items():
        if needs <= set(getattr(cls, "provides", ())):
            when = [cls.provides_when[c] for c in sorted(needs) if c in cls.provides_when]
            fits.append(name + (f" ({', '.join(when)})" if when else ""))
    wanted = " and ".join(OPERATOR_CAPABILITIES.get(c, c) for c in sorted(missing))
    raise PnPError(f"solver '{solver_name}' needs an operator with {wanted}; operators that have one: "
                   f"{', '.join(fits) or 'none'}")


def registered_name(registry: Registry, obj) -> str | None:
    """The name under which ``type(obj)`` is registered (the first, in sorted order), or None."""
    for candidate in registry.names():
        try:
            if registry.get(candidate) is type(obj):
                return candidate
        except PnPError:
            continue
    return None


def operator_name(op) -> str | None:
    """The registry name of an operator (``op.name`` if it has one), for per-task defaults."""
    name = getattr(op, "name", None)
    if isinstance(name, str):
        return name
    for candidate in OPERATORS.names():
        try:
            if OPERATORS.get(candidate) is type(op):
                return candidate
        except PnPError:  # an entry that does not import (yet) cannot be this operator
            continue
    return None
