"""Deep mean-shift prior, DMSP (Bigdeli, Jin, Favaro & Zwicker, "Deep Mean-Shift Priors for
Image Restoration", NIPS 2017, arXiv:1709.03749; code: github.com/siavashBigdeli/DMSP,
DMSPDeblur.m, and DMSP-tensorflow).

The prior is the natural-image density smoothed by N(0, sigma^2) (sigma = 11 on the 0-255
scale); sigma^2 times the gradient of its negative log is the mean-shift vector, which a
denoiser trained at sigma gives without backpropagation (Tweedie). Each iteration of the
Bayes-risk gradient descent draws eta ~ N(0, sigma^2 I):

    g_p = x - D(x + eta)                                   (one forward pass, no backprop)
    g_d = K^T (K x - y)
    g   = w g_d + (1 - w) g_p,   w = lambda / (lambda + sigma^-2),   lambda = sigma_d^-2

i.e. E = lambda ||Kx - y||^2 / 2 + sigma^-2 R: ``weight`` = sigma^-2. The authors iterate
x <- P_[0,255](x + v), v <- 0.9 v - 0.1 g for 300 iterations (``solver=gd``), starting from
the observation padded by replication (``op=blur op.boundary=valid``).

**Noise-blind** (``noise_blind``, the paper's "NA", DMSPDeblur.m with sigma_d < 0): lambda is
re-estimated every iteration by minimising the Bayes risk over the noise precision,

    lambda = N / (||K x - y||^2 + N c sigma^2 ||k||^2),      N = number of observed values,

N counted through the operator's ``restrict`` (a mask's kept values: inpainting and
demosaicing return a full-size y with zeros where nothing was observed); ||k||^2 = sum of the
squared kernel taps (blur); for another operator, tr(K K^T) / N (one seeded Hutchinson probe).
``outputs["sigma_estimate"]`` = 255 / sqrt(lambda) at the end.
c = ``noise_blind_factor``: 1 (the default) is the expectation over the smoothing,
E_eta ||K(x + eta) - y||^2 = ||Kx - y||^2 + N sigma^2 ||k||^2; the authors' code has 2
(DMSPDeblur.m and DMSP-tensorflow; ``prior.noise_blind_factor=2``), which counts the smoothing
twice and over-smooths at low noise. Measured (Set12 01 x the 8 Levin kernels, grid shift, bf16),
PSNR at noise 2.55 / 7.65 against 29.77 / 26.28 dB with the true noise: c = 2: 29.27 / 26.12
(-0.50 / -0.16), c = 1: 29.82 / 26.31 (+0.05 / +0.03).

**Kernel-blind** (``kernel_blind``, blur only): before each image step, one projected
gradient step on the kernel of the same Bayes data term (lambda / 2)(||k * x - y||^2 +
N c sigma^2 ||k||^2) -- lambda cancels in the step --

    k <- P_simplex(k - (X^T (k * x - y) + N c sigma^2 k) / L),   L = ||X||^2 + N c sigma^2

(X^T by autograd through the operator; ||X||^2 on zero-sum kernels by a warm-started power
iteration; P_simplex keeps k >= 0 with sum 1, Duchi et al. 2008). The kernel starts from
``kernel_init`` (a Gaussian of width ``kernel_init_sigma`` pixels, or a kernel file) of the
operator's kernel size, refined first (``kernel_estimate: l0``, the default) by coarse-to-fine
L0-gradient kernel estimation (Xu et al. 2013, ``priors/_kernel_estimate.py``) on the
observation denoised by D at its estimated noise level: the alternation alone keeps whatever
kernel it starts near (an image that fits y under k gives k back), so from a Gaussian it stays
blurry. The operator's true kernel is used only to report ``outputs["kernel_error"]`` =
||k - k_true|| / ||k_true|| and ``kernel_error_aligned``, its minimum over translations (a blind
kernel is defined up to one; the run's metrics add ``psnr_aligned``, Levin et al.'s protocol);
``outputs["kernel"]`` is the estimate (scaled to max 1), saved as kernel.png. The step order
and step size are ours: the released code has no kernel-blind variant. The blind updates are in
``priors/_blind.py``. The estimate lives in a copy of the operator (``Operator.with_kernel``),
which becomes the problem's operator for the run, so that every solver's data term uses it; the
operator the problem was built with is never changed.

**Defaults** (``sigma: auto``): per-operator presets (``conf/prior/presets/dmsp.yaml``,
tabled over the noise level: the problem's, or when noise-blind the wavelet estimate
``pnp.noise.estimate_sigma(y)``), chosen by ``benchmarks/tune_defaults.py`` on crops of the
training images and validated on held-out test images (docs/tuning.md). The authors'
fixed 11 fits noise around 2.55; above it the iterates peak and then fit the noise, and a
larger smoothing (about the authors' 11 and the noise combined) holds.

On [0, 1] images sigma is divided by 255 and lambda is in 1 / intensity^2 units, which
leaves w unchanged.
Gray images under the colour network get i.i.d. noise of std sqrt(3) sigma on the three
replicated channels and the output channel mean (``LearnedPrior.denoise_noisy``): the same
smoothing sigma in gray, and inputs like the network's training data.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.noise import estimate_sigma
from pnp.priors._blind import KernelFit, gaussian, kernel_energy, noise_precision, observed_count
from pnp.priors._denoiser_mixin import LearnedPrior, at_least_one, positive, positive_or_auto
from pnp.priors._kernel_estimate import aligned_error, estimate_kernel


AUTHORS_SIGMA = 11.0
KERNEL_ESTIMATES = ("l0", "none")


class DMSP(LearnedPrior):
    provides = frozenset({Capability.GRADIENT})
    auto_keys = {"sigma": AUTHORS_SIGMA, "noise_floor": 0.255}

    def __init__(self, sigma: float | str = "auto", noise_blind: bool = False, kernel_blind: bool = False,
                 noise_blind_factor: float = 1.0, kernel_init: str = "gaussian", kernel_init_sigma: float = 3.0,
                 kernel_estimate: str = "l0", power_iterations: int = 1, denoiser: dict | None = None,
                 noise_floor: float | str = "auto", preset: dict | None = None):
        self.sigma_is_auto, sigma = positive_or_auto("prior.sigma", sigma, AUTHORS_SIGMA)
        self.floor_is_auto, self.noise_floor = positive_or_auto("prior.noise_floor", noise_floor, 0.255)
        self.sigma = sigma / 255.0
        super().__init__(weight=1.0 / self.sigma**2, denoiser=denoiser, preset=preset)
        self.noise_blind, self.kernel_blind = bool(noise_blind), bool(kernel_blind)
        self.noise_blind_factor = positive("prior.noise_blind_factor", noise_blind_factor)
        self.kernel_init = str(kernel_init)
        self.kernel_init_sigma = positive("prior.kernel_init_sigma", kernel_init_sigma)
        if kernel_estimate not in KERNEL_ESTIMATES:
            raise PnPError(f"prior.kernel_estimate must be one of {', '.join(KERNEL_ESTIMATES)}, got {kernel_estimate!r}")
        self.kernel_estimate = kernel_estimate
        self.power_iterations = at_least_one("prior.power_iterations", power_iterations)
        self.lam, self.k_true, self.kernel_fit = None, None, None
        self.batchable = not (self.noise_blind or self.kernel_blind)  # lambda and k are per image

    def check(self, problem) -> None:
        op = problem.op
        if self.kernel_blind and op.kernel is None:
            raise PnPError(f"prior.kernel_blind=true needs a blur operator (op=blur) whose kernel it can "
                           f"estimate; {type(op).__name__} has none")

    def setup(self, problem) -> None:
        super().setup(problem)
        op = problem.op
        self.n_obs = observed_count(op, problem.y)
        self.lam, self.k_true, self.kernel_fit = None, None, None
        auto = self.preset_values(problem)  # noise-blind: estimates the noise from y once
        if self.floor_is_auto:
            self.noise_floor = auto["noise_floor"]
        if self.sigma_is_auto:
            self.sigma = auto["sigma"] / 255.0
            self.weight = 1.0 / self.sigma**2
        if self.kernel_blind:  # the estimate lives in a copy of the operator: problem_to_solve
            self.k_true = op.kernel.detach().clone()
            k = self.initial_kernel(op)
            if self.kernel_estimate == "l0":
                k = self.estimated_kernel(problem, k)
            self.kernel_fit = KernelFit(op.with_kernel(k.detach()), self.power_iterations, self._seed)
        solved_op = self.kernel_fit.op if self.kernel_blind else op
        self.kk = kernel_energy(solved_op, problem.y, self.n_obs, problem.seed)

    def problem_to_solve(self, problem):
        """Kernel-blind: the problem with the operator of the kernel estimate (updated by
        ``balance`` as the run goes); else the problem itself."""
        if self.kernel_blind and self.kernel_fit is not None:
            return dataclasses.replace(problem, op=self.kernel_fit.op)
        return problem

    def noise_level(self, problem) -> float:
        """The problem's noise level, or its wavelet estimate from y when noise-blind (0-255)."""
        return 255.0 * (estimate_sigma(problem.y) if self.noise_blind else problem.sigma)

    def params(self) -> dict:
        out = {"sigma": 255.0 * self.sigma, "weight": self.weight, "noise_floor": self.noise_floor,
               "noise_blind": self.noise_blind,
               "kernel_blind": self.kernel_blind, **self.denoiser_params()}
        if self.noise_blind:
            out["noise_blind_factor"] = self.noise_blind_factor
        if self.kernel_blind:
            out.update(kernel_init=self.kernel_init, kernel_init_sigma=self.kernel_init_sigma,
                       kernel_estimate=self.kernel_estimate, power_iterations=self.power_iterations)
        return out

    def initial_kernel(self, op) -> torch.Tensor:
        shape = tuple(op.kernel.shape)
        if self.kernel_init == "gaussian":
            return gaussian(shape, self.kernel_init_sigma, op.kernel)
        from pnp.operators.kernels import load_kernel

        k = torch.as_tensor(load_kernel(self.kernel_init)).to(op.kernel)
        if tuple(k.shape) != shape:
            raise PnPError(f"prior.kernel_init {self.kernel_init} is {tuple(k.shape)}, the operator's kernel {shape}")
        return k

    def estimated_kernel(self, problem, initial: torch.Tensor) -> torch.Tensor:
        """L0 coarse-to-fine estimate from ``initial`` on the gray observation (the channel mean)
        denoised by D at its noise level: the true one, or the wavelet estimate when noise-blind,
        over sqrt(C) for C colour channels (the mean of C independent noises)."""
        y = problem.y[:1].mean(1, keepdim=True)
        noise = (estimate_sigma(problem.y) if self.noise_blind else problem.sigma) / math.sqrt(problem.y.shape[1])
        with torch.no_grad():
            clean = self.net(y, noise) if noise > 0 else y
        return estimate_kernel(clean[0, 0], initial)

    def balance(self, x, problem, step):
        """(w, 1 - w), w = lambda / (lambda + sigma^-2); lambda = sigma_d^-2 or its noise-blind estimate."""
        if self.kernel_blind:
            c = self.n_obs * x.shape[0] * self.noise_blind_factor * self.sigma**2  # the N c sigma^2 of the batch
            self.kernel_fit.step(x, problem.y, c)
            self.kk = float(self.kernel_fit.kernel.pow(2).sum())
        if self.noise_blind:
            residual = float((problem.op.A(x) - problem.y).pow(2).sum()) / x.shape[0]
            self.lam = noise_precision(residual, self.n_obs, self.noise_blind_factor, self.sigma, self.kk)
        else:
            self.lam = 1.0 / max(problem.sigma_eff, self.noise_floor / 255.0) ** 2
        w = self.lam / (self.lam + self.weight)
        return w, 1.0 - w

    def noisy_denoised(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        """D(x + eta, sigma) (cached between the objective and the next gradient)."""
        def compute():
            with torch.no_grad():
                return self.denoise_noisy(x, self.sigma, eta)
        return compute() if eta is not None else self.cached(x, compute)

    def grad(self, x: torch.Tensor, step: int = 0, eta: torch.Tensor | None = None) -> torch.Tensor:
        """The mean-shift vector x - D(x + eta)."""
        out = self.noisy_denoised(x, eta)
        self.forget()
        return x - out

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """||x - D(x + eta)||^2 / 2, the squared mean-shift length, for the objective log only
        (the smoothed log-density itself has no closed form); free: the next gradient reuses D."""
        return 0.5 * (x - self.noisy_denoised(x)).pow(2).flatten(1).sum(1)

    @property
    def outputs(self) -> dict:
        out = {}
        if self.noise_blind and self.lam is not None:
            out["sigma_estimate"] = 255.0 / self.lam**0.5
        if self.kernel_blind and self.kernel_fit is not None:
            k = self.kernel_fit.kernel.detach()
            out["kernel"] = (k / k.max()).detach().cpu()[None, None]
            out["kernel_error"] = float((k - self.k_true).norm() / self.k_true.norm())
            out["kernel_error_aligned"] = aligned_error(k, self.k_true)
        return out
