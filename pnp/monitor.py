"""What a solver reports after each iteration: progress bar, convergence log, divergence check.

Solvers call ``monitor(step, x, objective)`` with ``step`` counting from 1, set
``monitor.step_param`` to the config name of their step size (named in the divergence error)
and may stop early when ``monitor.should_stop`` is true.

Divergence: x NaN/Inf, or the objective above 1e3 x its first reported value. A descent
solver (gd, fista, fixed_point) also reports E(x_0) with ``monitor.start(objective)``; its
objective rising above 10 x E(x_0) is divergence too (a projected iterate stays bounded, so
a too-large step shows as a bounded but much higher objective, not as Inf).
"""
from __future__ import annotations

import math
import sys

import torch
from tqdm.auto import tqdm

from pnp.errors import PnPError
from pnp.metrics import psnr

DIVERGENCE_FACTOR = 1e3  # the objective exceeding this times its first value means divergence
RISE_FACTOR = 10.0  # a descent solver's objective exceeding this times E(x_0) means divergence


class Monitor:
    def __init__(self, total: int, x_true: torch.Tensor | None = None, log_every: int = 1,
                 progress: bool = True, desc: str = ""):
        self.total, self.x_true, self.log_every = int(total), x_true, max(1, int(log_every))
        self.rows: list[dict] = []  # {"iteration", "objective", "psnr"}, None where undefined
        self.step_param = "the step size"
        self.should_stop = False
        self.first_objective: float | None = None
        self.start_objective: float | None = None
        disable = not progress or not sys.stderr.isatty()
        self.bar = tqdm(total=self.total, desc=desc or None, disable=disable, leave=False)

    def __call__(self, step: int, x: torch.Tensor, objective=None) -> None:
        value = None if objective is None else float(objective)
        self._check(step, x, value)
        if step % self.log_every == 0 or step == self.total:
            quality = None
            if self.x_true is not None and self.x_true.shape == x.shape:
                quality = float(psnr(x.detach(), self.x_true).mean())
            self.rows.append({"iteration": int(step), "objective": value, "psnr": quality})
            if quality is not None:
                self.bar.set_postfix(psnr=f"{quality:.2f}", refresh=False)
        self.bar.update(1)

    def start(self, objective) -> None:
        """E(x_0) of a descent solver (None when undefined)."""
        self.start_objective = None if objective is None else float(objective)

    def _check(self, step: int, x: torch.Tensor, value: float | None) -> None:
        if self.first_objective is None:
            self.first_objective = value
        reason = None
        if not torch.isfinite(x).all():
            reason = "the iterate has NaN/Inf"
        elif value is not None and not math.isfinite(value):
            reason = "the objective is NaN/Inf"
        elif value is not None:
            for ref, factor, which in ((self.first_objective, DIVERGENCE_FACTOR, "first"),
                                       (self.start_objective, RISE_FACTOR, "starting")):
                if ref is not None and ref > 0 and value > factor * ref:
                    reason = f"the objective {value:.3g} exceeds {factor:g} x its {which} value {ref:.3g}"
                    break
        if reason:
            raise PnPError(f"diverged at iteration {step}: {reason}; lower {self.step_param}")

    def close(self) -> None:
        self.bar.close()
