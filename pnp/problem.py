"""A restoration problem: the observation y = noise(A x) and everything a solver needs.

An observation is fully determined by (image, operator and its parameters, noise, seed):
it is computed on the CPU in float32 from generators seeded by ``seed`` alone (the operator's
random parts from stream 1, the noise from stream 2: ``pnp.seeding``), then moved to the
device, so every prior and solver sees bit-identical data (``observation_sha256``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from pnp.errors import PnPError
from pnp.noise import build_noise
from pnp.registry import OPERATORS
from pnp.seeding import generator

# A noise-free problem is solved as if sigma were 0.255/255 (DPIR's floor), so 1/sigma^2 stays finite.
SIGMA_FLOOR = 0.255 / 255.0
OPERATOR_STREAM, NOISE_STREAM = 1, 2  # the random streams of an observation (pnp.seeding)


@dataclass
class Problem:
    y: torch.Tensor  # observation, B x C' x h x w
    op: object  # pnp.operator.Operator
    sigma: float  # noise standard deviation on the [0, 1] scale (0 when noise-free)
    x_true: torch.Tensor | None = None
    seed: int = 0
    info: dict = field(default_factory=dict)

    @property
    def sigma_eff(self) -> float:
        return max(self.sigma, SIGMA_FLOOR)

    def data_grad(self, x: torch.Tensor) -> torch.Tensor:
        """A^T (A x - y): the gradient of ||Ax - y||^2 / 2."""
        return self.op.A_adjoint(self.op.A(x) - self.y)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """||Ax - y||^2 summed over the batch (what the divergence check watches where E is undefined)."""
        return (self.op.A(x) - self.y).pow(2).sum()

    def data_fidelity(self, x: torch.Tensor) -> torch.Tensor:
        """||Ax - y||^2 / (2 sigma^2) per batch element."""
        r = self.op.A(x) - self.y
        return r.pow(2).flatten(1).sum(1) / (2 * self.sigma_eff**2)

    def data_step(self, z: torch.Tensor, rho: float, start: torch.Tensor | None = None) -> torch.Tensor:
        """argmin_x ||Ax - y||^2 / (2 sigma^2) + (rho / 2) ||x - z||^2; ``start``: where an
        iterative solve begins (e.g. the previous solution), for operators with ``warm_start``."""
        if start is not None and self.op.warm_start:
            return self.op.data_step(self.y, z, rho, self.sigma_eff, start=start)
        return self.op.data_step(self.y, z, rho, self.sigma_eff)

    @property
    def observation_sha256(self) -> str:
        return observation_hash(self.y)

    def to(self, device) -> "Problem":
        self.y = self.y.to(device)
        self.op = self.op.to(device)
        if self.x_true is not None:
            self.x_true = self.x_true.to(device)
        return self


def observation_hash(y: torch.Tensor) -> str:
    return hashlib.sha256(y.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def make_problem(x_true: torch.Tensor, op: dict, noise: dict, seed: int = 0,
                 device: str | torch.device = "cpu") -> Problem:
    """Degrade ``x_true`` (1 x C x H x W in [0, 1]) with the operator and noise configs.

    ``op`` and ``noise`` are dicts with a ``name`` and that entry's parameters.
    """
    if x_true.dim() != 4:
        raise PnPError(f"expected an image tensor B x C x H x W, got shape {tuple(x_true.shape)}")
    op, noise = dict(op), dict(noise)
    x_cpu = x_true.detach().to("cpu", torch.float32)
    operator = OPERATORS.build(op.pop("name"), shape=tuple(x_cpu.shape[1:]), generator=generator(seed, OPERATOR_STREAM),
                               **op)
    noise_model = build_noise(noise.pop("name"), **noise)
    with torch.no_grad():  # each image draws its noise from the same seed, batched or alone
        y = torch.cat([operator.restrict(noise_model(operator.A(x_i[None]), generator(seed, NOISE_STREAM)))
                       for x_i in x_cpu])
    problem = Problem(y=y, op=operator, sigma=float(noise_model.sigma), x_true=x_cpu, seed=int(seed))
    return problem.to(device)
