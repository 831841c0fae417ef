"""What a solver reports after each iteration: progress bar, convergence log, divergence check.

Solvers call ``monitor(step, x, objective)`` with ``step`` counting from 1 (``objective``: a
number, a 0-d tensor, a function that computes it, or None where undefined), set
``monitor.step_param`` to the config name of their step size (named in the divergence
warning) and may stop early when ``monitor.should_stop`` is true.

Divergence is judged on a watched value: the objective E(x) where the prior defines one,
else the data residual ||Ax - y||^2 (``residual``, given by the runner). The monitor keeps the
best iterate seen (lowest watched value) and raises ``Diverged`` when the iterate or the
value becomes NaN/Inf, or when the value rises above ``RISE_FACTOR`` times the best one (a
descent method, whose starting point counts too: gd, fista, fixed_point), or above
``SPLIT_FACTOR`` times the best one (``descent = False``: ADMM, HQS and the samplers, whose
early iterates may lie far above the start by design, e.g. ADMM's first data step). A
projected iterate stays bounded, so a too-large step shows as a bounded but much higher
value, not as Inf. ``Solver.run`` catches it, backs the step off and restarts from the best
iterate (``pnp.solver``).

Every host-side look at the iterate (the objective as a number, the NaN check, the best
iterate's copy, PSNR) happens on the steps a convergence row is due: every ``log_every``-th
step and the last. On a GPU each such look waits for the device, so ``log_every`` > 1 lets the
iterations between rows run without a host synchronisation; divergence is then caught up to
``log_every`` - 1 steps late and the best iterate is the best of the logged ones. The progress
bar counts every step (no synchronisation).
"""
from __future__ import annotations

import math
import sys

import torch
from tqdm.auto import tqdm

from pnp.errors import PnPError
from pnp.metrics import psnr

RISE_FACTOR = 10.0  # a descent method's watched value above this times the best value seen: divergence
SPLIT_FACTOR = 1e3  # the same for the other methods


class Diverged(PnPError):
    """The iterates diverged at ``step`` (``reason`` says how)."""

    def __init__(self, step: int, reason: str, param: str):
        super().__init__(f"diverged at iteration {step}: {reason}; lower {param}")
        self.step, self.reason, self.param = int(step), reason, param


class Monitor:
    def __init__(self, total: int, x_true: torch.Tensor | None = None, log_every: int | str = 1,
                 progress: bool = True, desc: str = "", residual=None):
        # auto: 1 on the CPU (a host look at the iterate costs nothing there), 10 on CUDA (each
        # look waits for the device); resolved at the first step, where the iterate's device is known
        self.total, self.x_true = int(total), x_true
        self.log_every = log_every if log_every == "auto" else max(1, int(log_every))
        self.residual = residual  # x -> ||Ax - y||^2 summed over the batch (watched where E is undefined)
        self.rows: list[dict] = []  # {"iteration", "objective", "psnr"}, None where undefined
        self.step_param = "the step size"
        self.should_stop = False
        self.best_value: float | None = None
        self.best_x: torch.Tensor | None = None
        self.best_step = 0
        self.steps = 0  # the last step reported
        self.last_value: float | None = None  # the objective of the last logged step
        self.descent = True  # set by Solver.run from the solver's ``descent``
        disable = not progress or not sys.stderr.isatty()
        self.bar = tqdm(total=self.total, desc=desc or None, disable=disable, leave=False)

    def due(self, step: int, device) -> bool:
        """Whether a convergence row (and so a host-side look at the iterate) is due at ``step``;
        resolves ``log_every: auto`` from the iterate's device at the first call."""
        if self.log_every == "auto":
            self.log_every = 10 if torch.device(device).type == "cuda" else 1
        return step % self.log_every == 0 or step == self.total

    def skip(self, step: int) -> None:
        """A step without a row: the progress bar advances, nothing is read from the device."""
        self.steps = int(step)
        self.bar.update(1)

    def __call__(self, step: int, x: torch.Tensor, objective=None) -> None:
        if not self.due(step, x.device):
            self.skip(step)
            return
        self.steps = int(step)
        if callable(objective):
            objective = objective()  # computed only on the steps a row is due
        value = None if objective is None else float(objective)
        self.last_value = value
        self._check(step, x, value)
        quality = None
        if self.x_true is not None and self.x_true.shape == x.shape:
            quality = float(psnr(x.detach(), self.x_true).mean())
        self.rows.append({"iteration": int(step), "objective": value, "psnr": quality})
        if quality is not None:
            self.bar.set_postfix(psnr=f"{quality:.2f}", refresh=False)
        self.bar.update(1)

    def start(self, objective, x: torch.Tensor | None = None) -> None:
        """The starting point x_0 (and E(x_0), or a function that computes it, None when undefined):
        the first candidate for the best iterate, and, for a descent method, the first reference
        value (only a descent method computes it)."""
        if x is None:
            return
        if self.descent:
            if callable(objective):
                objective = objective()
            self._watch(0, x, None if objective is None else float(objective))
        elif self.best_x is None:
            self.best_x, self.best_step = x.detach().clone(), 0

    def _watched(self, x: torch.Tensor, value: float | None) -> float | None:
        if value is not None:
            return value
        return None if self.residual is None else float(self.residual(x))

    def _watch(self, step: int, x: torch.Tensor, value: float | None) -> float | None:
        watched = self._watched(x, value)
        if watched is not None and math.isfinite(watched) and (self.best_value is None or watched < self.best_value):
            self.best_value, self.best_x, self.best_step = watched, x.detach().clone(), int(step)
        return watched

    def _check(self, step: int, x: torch.Tensor, value: float | None) -> None:
        reason = None
        if not torch.isfinite(x).all():
            reason = "the iterate has NaN/Inf"
        elif value is not None and not math.isfinite(value):
            reason = "the objective is NaN/Inf"
        else:
            best = self.best_value
            watched = self._watch(step, x, value)
            factor = RISE_FACTOR if self.descent else SPLIT_FACTOR
            if watched is not None and best is not None and best > 0 and watched > factor * best:
                which = "objective" if value is not None else "data residual"
                reason = f"the {which} {watched:.3g} exceeds {factor:g} x its best value {best:.3g}"
        if reason:
            raise Diverged(step, reason, self.step_param)

    def close(self) -> None:
        self.bar.close()
