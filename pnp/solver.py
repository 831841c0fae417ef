"""Base class of the solvers (config group ``solver``).

A solver declares the capabilities it ``requires`` of a prior and implements ``solve``.
It reports every iteration to the ``monitor`` (progress, convergence log, divergence check).
"""
from __future__ import annotations

from typing import ClassVar

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError


class Solver:
    requires: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, iterations: int = 100):
        if int(iterations) < 1:
            raise PnPError(f"solver.iterations must be at least 1, got {iterations}")
        self.iterations = int(iterations)

    @staticmethod
    def positive(name: str, value) -> float:
        """``value`` as a float if > 0, else a one-line PnPError naming ``solver.<name>``."""
        if not float(value) > 0:
            raise PnPError(f"solver.{name} must be > 0, got {value}")
        return float(value)

    def solve(self, problem, prior, monitor) -> torch.Tensor:
        """Return the restored image for ``problem`` under ``prior``."""
        raise NotImplementedError

    @staticmethod
    def objective(problem, prior, x: torch.Tensor) -> torch.Tensor | None:
        """E(x) = ||Ax - y||^2 / (2 sigma^2) + lambda R(x), summed over the batch, where R is defined."""
        r = prior.energy(x)
        if r is None:
            return None
        return problem.data_fidelity(x).sum() + prior.weight * r.sum()
