"""Base class of the solvers (config group ``solver``).

A solver declares the capabilities it ``requires`` of a prior and implements ``solve``, which
starts from ``self.initial(problem)`` and reports every iteration to the ``monitor``
(progress, convergence log, divergence check). ``run`` is what the runner calls: ``solve``
guarded against divergence, the same mechanism for every solver:

    on divergence (``pnp.monitor.Diverged``): back the step off (``backoff``: half the step,
    or the solver's equivalent) and restart from the best iterate seen, at most
    ``MAX_RESTARTS`` times; then return the best iterate with one warning line naming the
    parameter to change.

``restarts``, ``diverged`` and the step actually used (``params()``) go into the run record.

``IterativeSolver`` owns the loop of the optimisation solvers (gd, fista, fixed_point, hqs,
admm), as scico's ``Optimizer`` does: a solver writes ``init`` (the state before the first
iteration) and ``update`` (one iteration on that state); the loop reports each iterate and its
objective to the monitor, stops when the monitor says so and returns ``result``. The samplers
and DIP, whose iterations are not steps on one iterate, write ``solve`` themselves.

``average: N`` (a solver that passes it on: gd, fixed_point) returns the mean of the last N
results instead of the last one (Polyak & Juditsky 1992). Where the prior's step is noisy
(DAEP's and DMSP's noisy input) or cycles (the denoiser's grid shift), the last iterate keeps
that noise or cycle; the mean averages it out.
"""
from __future__ import annotations

import sys
from types import MappingProxyType, SimpleNamespace
from typing import ClassVar, Mapping

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.monitor import Diverged

MAX_RESTARTS = 3


class Solver:
    requires: ClassVar[frozenset[Capability]] = frozenset()
    requires_operator: ClassVar[frozenset[str]] = frozenset()  # of the operator, e.g. {"svd"} (pnp.operator)
    backoff_param: ClassVar[str | None] = "step"  # the attribute the default ``backoff`` halves
    descent: ClassVar[bool] = True  # each iterate lowers the objective (the divergence check's tolerance)
    # What a run adds to its record beyond the restored image (samples, fit statistics), set by
    # ``solve``; default: nothing.
    outputs: Mapping[str, object] = MappingProxyType({})

    @property
    def batchable(self) -> bool:
        """Whether several images may be solved as one batch, each image a batch element.
        Default: true, except for a solver that needs a score or a reparametrization (sampling,
        DIP fitting), whose batch dimension holds one image's chains or network."""
        return not (set(self.requires) & {Capability.SCORE, Capability.REPARAM})

    def __init__(self, iterations: int = 100):
        if int(iterations) < 1:
            raise PnPError(f"solver.iterations must be at least 1, got {iterations}")
        self.iterations = int(iterations)
        self.restarts, self.diverged = 0, False
        self._start: torch.Tensor | None = None

    @staticmethod
    def positive(name: str, value) -> float:
        """``value`` as a float if > 0, else a one-line PnPError naming ``solver.<name>``."""
        if not float(value) > 0:
            raise PnPError(f"solver.{name} must be > 0, got {value}")
        return float(value)

    def initial(self, problem) -> torch.Tensor:
        """Where the iterations start: the best iterate of a diverged attempt, else ``op.init(y)``."""
        return self._start if self._start is not None else problem.op.init(problem.y)

    def solve(self, problem, prior, monitor) -> torch.Tensor:
        """Return the restored image for ``problem`` under ``prior``."""
        raise NotImplementedError

    def backoff(self) -> bool:
        """Make the iteration more conservative after a divergence (default: halve
        ``backoff_param``); False if there is nothing to back off."""
        name = self.backoff_param
        value = getattr(self, name, None) if name else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        setattr(self, name, value * 0.5)
        return True

    def run(self, problem, prior, monitor) -> torch.Tensor:
        """``solve`` with the divergence guard (module docstring)."""
        self.restarts, self.diverged, self._start = 0, False, None
        if self.requires_operator:  # this configuration of the operator (e.g. its boundary), before any work
            from pnp.registry import SOLVERS, check_operator, registered_name

            check_operator(registered_name(SOLVERS, self) or type(self).__name__.lower(), op=problem.op)
        monitor.descent = self.descent
        try:
            while True:
                try:
                    return self.solve(problem, prior, monitor)
                except Diverged as err:
                    if monitor.best_x is None:
                        raise PnPError(str(err)) from None
                    if self.restarts < MAX_RESTARTS and self.backoff():
                        self.restarts, self._start = self.restarts + 1, monitor.best_x
                        continue
                    self.diverged = True
                    print(f"warning: {err} (returned the best iterate, from iteration {monitor.best_step}, "
                          f"after {self.restarts} restart(s))", file=sys.stderr)
                    return monitor.best_x
        finally:
            self._start = None

    def params(self) -> dict:
        """Every hyperparameter this solver runs with (after defaults and backoff): its public
        scalar attributes."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and k not in ("restarts", "diverged")
                and (v is None or isinstance(v, (bool, int, float, str))
                     or (isinstance(v, list) and all(isinstance(i, (int, float)) for i in v)))}

    @staticmethod
    def objective(problem, prior, x: torch.Tensor) -> torch.Tensor | None:
        """E(x) = ||Ax - y||^2 / (2 sigma^2) + lambda R(x), summed over the batch, where R is defined."""
        r = prior.energy(x)
        if r is None:
            return None
        return problem.data_fidelity(x).sum() + prior.weight * r.sum()


class IterativeSolver(Solver):
    """A solver written as ``init`` and ``update``; the loop is here (module docstring)."""

    step_param: ClassVar[str] = "solver.step"  # the config key the divergence warning names

    def __init__(self, iterations: int = 100, average: int = 0):
        super().__init__(iterations)
        if not 0 <= int(average) <= self.iterations:
            raise PnPError(f"solver.average must be in [0, solver.iterations = {self.iterations}], got {average}")
        self.average = int(average)

    def init(self, problem, prior) -> SimpleNamespace:
        """The state before the first iteration; ``state.x`` is the iterate reported to the monitor."""
        raise NotImplementedError

    def update(self, state: SimpleNamespace, k: int, problem, prior) -> None:
        """Iteration k (from 1): update ``state`` in place."""
        raise NotImplementedError

    def objective_at(self, state: SimpleNamespace) -> torch.Tensor:
        """Where the objective is evaluated after an iteration (default: the reported iterate)."""
        return state.x

    def result(self, state: SimpleNamespace) -> torch.Tensor:
        """The restored image when the loop ends (default: the last iterate)."""
        return state.x

    @torch.no_grad()
    def solve(self, problem, prior, monitor) -> torch.Tensor:
        monitor.step_param = self.step_param
        state = self.init(problem, prior)
        monitor.start(lambda: self.objective(problem, prior, state.x), state.x)
        first_averaged, mean, averaged = self.iterations - self.average + 1, None, 0
        for k in range(1, self.iterations + 1):
            self.update(state, k, problem, prior)
            if self.average and k >= first_averaged:
                averaged += 1
                result = self.result(state)
                mean = result.clone() if mean is None else mean.add_((result - mean) / averaged)
            monitor(k, state.x, lambda: self.objective(problem, prior, self.objective_at(state)))
            if monitor.should_stop:
                break
        return mean if mean is not None else self.result(state)
