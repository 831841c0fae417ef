"""Registries, capabilities and the incompatible-triple check."""
import pytest

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.prior import Prior
from pnp.registry import OPERATORS, PRIORS, SOLVERS, check_compatible
from pnp.solver import Solver


class ScoreOnly(Prior):
    provides = frozenset({Capability.SCORE})


class NeedsProx(Solver):
    requires = frozenset({Capability.PROX})


def test_builtin_names_present():
    assert {"tv"} <= set(PRIORS.names())
    assert {"blur", "sr", "inpaint", "denoise", "demosaic", "cs"} <= set(OPERATORS.names())
    assert {"gd", "fista", "admm", "hqs", "fixed_point"} <= set(SOLVERS.names())


def test_unknown_name_lists_known():
    with pytest.raises(PnPError, match="unknown prior 'zzz'; known: .*tv"):
        PRIORS.get("zzz")


def test_incompatible_triple_names_the_alternatives():
    PRIORS.register("test_score_only", ScoreOnly)
    SOLVERS.register("test_needs_prox", NeedsProx)
    with pytest.raises(PnPError) as err:
        check_compatible("test_score_only", "test_needs_prox")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("incompatible")
    assert "priors that fit 'test_needs_prox': " in msg and "tv" in msg.split("priors that fit")[1]
    check_compatible("tv", "test_needs_prox")


def test_every_builtin_prior_and_solver_declares_capabilities():
    for name in PRIORS.names():
        try:
            cls = PRIORS.get(name)
        except PnPError:
            continue
        assert all(isinstance(c, Capability) for c in cls.provides)
    for name in SOLVERS.names():
        try:
            cls = SOLVERS.get(name)
        except PnPError:
            continue
        assert cls.requires, name
