"""The closed-form solver: the prior's estimate in one step, x = prior.estimate(problem).

For priors whose restoration is a formula rather than an iteration (``Capability.CLOSED_FORM``),
e.g. the Wiener filter (``prior=wiener``). One step: ``iterations`` is 1 and nothing backs off.
"""
from __future__ import annotations

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.solver import Solver


class ClosedForm(Solver):
    requires = frozenset({Capability.CLOSED_FORM})
    backoff_param = None  # no step to back off: a NaN/Inf estimate is reported as it is
    descent = False

    def __init__(self, iterations: int = 1):
        if iterations != 1:
            raise PnPError(f"solver.iterations must be 1 for closed_form (the estimate is one step), got {iterations}")
        super().__init__(1)

    @torch.no_grad()
    def solve(self, problem, prior, monitor) -> torch.Tensor:
        x = prior.estimate(problem)
        monitor(1, x, lambda: self.objective(problem, prior, x))
        return x
