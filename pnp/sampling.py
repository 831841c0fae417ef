"""What posterior samplers share: their frame and report (``Sampler``: ``langevin``,
``annealed_langevin``, ``ddrm``, ``snips``) and, for those that work in the coordinates of the
operator's SVD (``SpectralSampler``: ``ddrm``, ``snips``), the spectral data.

K samples of one posterior, K x B x C x H x W: ``summarise`` gives the outputs every sampler
writes: ``samples`` (K B x C x H x W), ``uncertainty`` (the per-pixel standard deviation over
the samples, averaged over channels, as a colour map), ``uncertainty_scale`` (the standard
deviation at the top of the colour map: its 99th percentile), and, when the ground truth is
known, ``psnr_single_sample_mean`` and ``uncertainty_error_correlation`` (Pearson, per pixel,
between that standard deviation and the absolute error of the mean).
"""
from __future__ import annotations

import numpy as np
import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.metrics import psnr
from pnp.solver import Solver


def check_colormap(name: str) -> str:
    """``name`` if matplotlib knows the colour map, else a one-line PnPError."""
    from matplotlib import colormaps

    if name not in colormaps:
        raise PnPError(f"solver.colormap: unknown matplotlib colour map '{name}'")
    return name


def summarise(samples: torch.Tensor, problem, colormap: str = "inferno") -> dict:
    """Samples, the uncertainty map and its scale, single-sample PSNR, std-error correlation."""
    k = samples.shape[0]
    outputs: dict = {"samples": samples.flatten(0, 1)}
    truth = problem.x_true
    if truth is not None and truth.shape == samples.shape[1:]:
        single = psnr(samples.flatten(0, 1), truth.repeat(k, 1, 1, 1))
        outputs["psnr_single_sample_mean"] = float(single.mean())
    if k < 2:
        return outputs
    std = samples.std(0, unbiased=True).mean(1)  # B x H x W, averaged over channels
    scale = float(torch.quantile(std[0].flatten().float(), 0.99).clamp_min(1e-8))
    outputs["uncertainty"] = colour_map(std[0] / scale, colormap)
    outputs["uncertainty_scale"] = scale
    if truth is not None and truth.shape == samples.shape[1:]:
        error = (samples.mean(0) - truth).abs().mean(1)
        outputs["uncertainty_error_correlation"] = pearson(std.flatten(), error.flatten())
    return outputs


def colour_map(values: torch.Tensor, name: str = "inferno") -> np.ndarray:
    """H x W values in [0, 1] (clipped) -> H x W x 3 uint8 picture through a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[name](values.clamp(0, 1).detach().cpu().numpy())
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation coefficient of two flattened maps."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


def geometric(start: float, stop: float, count: int) -> list[float]:
    """``count`` noise levels from ``start`` down to ``stop``, equally spaced in log sigma."""
    if count == 1:
        return [float(start)]
    return torch.logspace(np.log10(start), np.log10(stop), count, dtype=torch.float64).tolist()


class Sampler(Solver):
    """A sampler of p(x | y) with the prior's score (``Capability.SCORE``).

    K = ``samples`` chains run as one batch, each with its own copy of y, from a generator seeded
    by ``problem.seed``; the restored image is their mean, the outputs those of ``summarise``.
    Subclasses implement ``chains``, which returns the K B samples; where a denoised image is
    needed it is D(x, sigma) = x + sigma^2 s(x, sigma) (Tweedie).
    """

    descent = False
    requires = frozenset({Capability.SCORE})
    step_param = "the step size"  # the config key a divergence warning names

    def __init__(self, iterations: int, samples: int = 8, sigma_max: float = 1.0, sigma_min: float = 0.01,
                 colormap: str = "inferno"):
        super().__init__(iterations)
        if not (isinstance(samples, (int, float)) and float(samples).is_integer() and samples >= 1):
            raise PnPError(f"solver.samples must be a positive integer, got {samples}")
        if not 0 < float(sigma_min) < float(sigma_max):
            raise PnPError(f"the noise schedule must decrease: need 0 < solver.sigma_min < solver.sigma_max, "
                           f"got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.samples = int(samples)
        self.sigma_max, self.sigma_min = float(sigma_max), float(sigma_min)
        self.colormap = check_colormap(colormap)
        self.outputs: dict = {}

    def solve(self, problem, prior, monitor) -> torch.Tensor:
        monitor.step_param = self.step_param
        y = problem.y.repeat(self.samples, *[1] * (problem.y.dim() - 1))  # one observation per chain
        generator = torch.Generator(device=y.device).manual_seed(int(problem.seed))
        with torch.no_grad():
            x = self.chains(problem, prior, monitor, y, generator)
        samples = x.view(self.samples, -1, *x.shape[1:])  # K x B x C x H x W
        self.outputs = summarise(samples, problem, self.colormap)
        return samples.mean(0)

    def chains(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def normal(shape, generator, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def report(self, monitor, step: int, x: torch.Tensor) -> None:
        """The mean of the chains goes to the monitor (PSNR of the estimate, divergence check) on
        the steps a convergence row is due; on the others only the progress bar moves."""
        if monitor.due(step, x.device):
            monitor(step, x.view(self.samples, -1, *x.shape[1:]).mean(0), None)
        else:
            monitor.skip(step)


class SpectralSampler(Sampler):
    """A sampler in the coordinates of the SVD A = U diag(s) V^T (``Operator.svd``): subclasses
    implement ``spectral_chains``, which also receives the operator's SVD."""

    requires_operator = frozenset({"svd"})

    def chains(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        return self.spectral_chains(problem, prior, monitor, problem.op.svd(), y, generator)

    def spectral_chains(self, problem, prior, monitor, svd, y, generator) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def spectral_data(svd, y: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, U^T y) broadcast to the coefficient shape, in y's dtype."""
        s = svd.s.to(device=y.device, dtype=y.dtype).expand(shape)
        return s, svd.Ut(y).expand(shape)
