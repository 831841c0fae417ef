"""Fit a reparametrising prior x = f_theta(z) to the data (config ``solver=dip``), as the Deep Image
Prior authors did (Ulyanov, Vedaldi & Lempitsky 2018; their notebooks ``denoising.ipynb``,
``super-resolution.ipynb``, ``inpainting.ipynb``):

    z_t       = z + s n_t,  n_t ~ N(0, I)                     (input-noise regularisation)
    L(theta)  = mean((A f_theta(z_t) - y)^2)                  (through the problem's operator)
    theta    <- Adam(theta, grad L, lr = 0.01)
    x_avg    <- 0.99 x_avg + 0.01 f_theta(z_t)                 (exponential moving average)

Backtracking: when the fit PSNR_t = 10 log10(1 / L) drops more than ``backtrack_db`` (5 dB)
below the last accepted one, the parameters of that iteration are reloaded and its step skipped
(the authors' notebook still applied that step's gradient and averaged its output; we do neither).
Returns x_avg. ``iterations`` and ``reg_noise`` (s) null take the per-task values of the authors'
notebooks (``prior.solvers.by_op`` in conf/prior/dip.yaml); other operators use the
super-resolution values.
"""
from __future__ import annotations

import math

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.solver import Solver



def set_total(monitor, total: int) -> None:
    """Tell the monitor (built before the per-task iteration count was known) the real total."""
    if hasattr(monitor, "total"):
        monitor.total = int(total)
    bar = getattr(monitor, "bar", None)
    if bar is not None and hasattr(bar, "reset"):
        bar.reset(total=int(total))


class DIPFit(Solver):
    descent = False
    requires = frozenset({Capability.REPARAM})
    backoff_param = "lr"

    def __init__(self, iterations: int = 2000, lr: float = 0.01, reg_noise: float = 0.03,
                 ema: float = 0.99, backtrack_db: float = 5.0):
        """Defaults: the authors' super-resolution notebook (x4); the prior's per-operator
        recommendation (``prior.solvers.by_op`` in conf/prior/dip.yaml) overrides them."""
        super().__init__(iterations)
        if lr <= 0:
            raise PnPError(f"solver.lr must be > 0, got {lr}")
        if reg_noise < 0:
            raise PnPError(f"solver.reg_noise must be >= 0, got {reg_noise}")
        if not 0 <= ema < 1:
            raise PnPError(f"solver.ema must be in [0, 1), got {ema}")
        if backtrack_db <= 0:
            raise PnPError(f"solver.backtrack_db must be > 0 (dB), got {backtrack_db}")
        self.reg_noise = float(reg_noise)
        self.lr, self.ema, self.backtrack_db = float(lr), float(ema), float(backtrack_db)
        self.outputs: dict = {}

    def settings(self, problem) -> tuple[int, float]:
        """(iterations, reg_noise) this fit runs with."""
        return self.iterations, self.reg_noise

    def solve(self, problem, prior, monitor) -> torch.Tensor:
        reg_noise = self.reg_noise
        monitor.step_param = "solver.lr"
        params = [p for p in prior.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        noise = torch.Generator(device=prior.z.device).manual_seed(int(problem.seed))
        scale = problem.y.numel() / (2 * problem.sigma_eff**2)  # mean -> ||Ax - y||^2 / (2 sigma^2)
        saved, last_fit, average, backtracks = None, -math.inf, None, 0
        for t in range(1, self.iterations + 1):
            z = prior.z
            if reg_noise > 0:
                z = z + reg_noise * torch.randn(z.shape, generator=noise, device=z.device, dtype=z.dtype)
            with torch.enable_grad():
                out = prior.generator(z)
                loss = (problem.op.A(out) - problem.y).pow(2).mean()
            fit = -10 * math.log10(max(loss.item(), 1e-12))
            if fit < last_fit - self.backtrack_db:  # the fit suddenly worsened: reload, skip the step
                with torch.no_grad():
                    for p, old in zip(params, saved):
                        p.copy_(old)
                backtracks += 1
            else:
                saved = [p.detach().clone() for p in params]
                last_fit = fit
                out = out.detach()
                average = out if average is None else self.ema * average + (1 - self.ema) * out
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            monitor(t, average, math.pow(10, -last_fit / 10) * scale)  # the accepted fit's loss
            if monitor.should_stop:
                break
        self.outputs = {"backtracks": backtracks, "fit_psnr": last_fit}
        return average
