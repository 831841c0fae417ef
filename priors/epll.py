"""EPLL: a Gaussian-mixture model of image patches as the prior (Zoran & Weiss, "From
Learning Models of Natural Image Patches to Whole Image Restoration", ICCV 2011; code:
EPLL MATLAB package, EPLLhalfQuadraticSplit.m, aprxMAPGMM.m).

    E(x) = ||Ax - y||^2 / (2 s^2) - sum_i log p(P_i x),   p(v) = sum_k pi_k N(v - mean(v); mu_k, Sigma_k)

over every overlapping p x p patch P_i x. The authors minimise it by half-quadratic
splitting with a rising beta, alternating

    z_i = argmax_z  log p(z) - (beta / 2) ||P_i x - z||^2            (every patch)
    x   = argmin_x  ||Ax - y||^2 / (2 s^2) + (beta / 2) sum_i ||P_i x - z_i||^2 / p^2.

``prox(v, tau)`` is the z-step, averaged: each patch of v loses its mean, takes the most
likely component under the noisy model N(mu_k, Sigma_k + tau I) (the paper's approximate MAP),
is Wiener-filtered by it, mu_k + Sigma_k (Sigma_k + tau I)^-1 (P_i v - mean - mu_k), gets its
mean back, and the overlapping estimates are averaged pixel by pixel. With the averaged
patches z, the x-step above is the quadratic data step with rho = beta (inside the image every
pixel lies in p^2 patches), so ``solver=hqs`` with ``lam = 1`` (``weight``) is the authors'
iteration with beta_k = 1 / sigma_k^2. The authors' schedule is relative to the noise level,
beta = (1 / s^2) [1 4 8 16 32 64], i.e. sigma_k = s, s/2, ..., s/8; HQS's is log-spaced between
fixed levels, ``solver.sigma_start`` -> ``solver.sigma_end`` (null: the noise level).

Departures, measured on training crops (docs/epll.md): the prior's weight is 0.23, not 1 (a
weaker pull of the data step towards the patch estimates; Levin kernel 1, noise 7.65, three
gray crops: 27.14 dB against 25.86 with 1, while 0.1 fell below the observation); HQS descends from 49 to
the noise level in 6 steps for deblurring instead of going below it, and denoising is one
patch MAP step at the noise level (sigma 25: 28.51 dB, the authors' schedule 27.52). The GMM
is fitted here (``python -m pnp.train_gmm``: 200 components, 8x8, on
100,000 patches instead of 2 million, means fitted instead of fixed at zero); colour images
run the gray patch model on each RGB channel (the paper's model is of gray patches);
patches are classified and filtered in blocks of ``block`` patches (memory), which does not
change the result. The patch machinery is torch's unfold/fold and deepinv's
``GaussianMixtureModel`` (its covariances regularised by tau, ``set_cov_reg``); ``classify``
writes its quadratic form as one matrix product (4x faster on a CPU).
``energy`` is not computed (it would cost as much as a prox step).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.prior import Prior
from pnp.train_gmm import SHIPPED_GMM

def gmm_file(path=None) -> Path:
    """The GMM file ``prior.gmm`` names: None = the shipped one."""
    return SHIPPED_GMM if path is None else Path(str(path))


def load_gmm(path=None, device="cpu"):
    """A ``deepinv.optim.utils.GaussianMixtureModel`` and its patch side from a file written by
    ``python -m pnp.train_gmm``, read with ``torch.load(weights_only=True)``; any problem with
    the file is one ``PnPError`` line naming it."""
    from deepinv.optim.utils import GaussianMixtureModel

    from pnp.models.loading import short_message

    path = gmm_file(path)
    if not path.is_file():
        raise PnPError(f"GMM file not found: {path} (fit one with `python -m pnp.train_gmm --out FILE`)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PnPError(f"cannot load GMM file {path} with weights_only=True (corrupt file, or a pickle "
                       f"that needs code execution, which is refused): {short_message(e)}") from None
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), torch.Tensor) for k in ("weights", "mu", "cov")):
        raise PnPError(f"{path} is not a GMM file of `python -m pnp.train_gmm` (weights, mu and cov tensors)")
    w, mu, cov = obj["weights"].float(), obj["mu"].float(), obj["cov"].float()
    k, d = mu.shape if mu.ndim == 2 else (0, 0)
    p = int(round(d ** 0.5))
    if k < 1 or p * p != d or w.shape != (k,) or cov.shape != (k, d, d):
        raise PnPError(f"{path}: GMM shapes do not fit K components of p x p patches: weights "
                       f"{tuple(w.shape)}, mu {tuple(mu.shape)}, cov {tuple(cov.shape)}")
    if not (torch.isfinite(w).all() and torch.isfinite(mu).all() and torch.isfinite(cov).all()) or (w < 0).any() \
            or w.sum() <= 0:
        raise PnPError(f"{path}: GMM parameters are not finite, or its weights are negative")
    if torch.linalg.cholesky_ex(cov)[1].any():
        raise PnPError(f"{path}: a GMM covariance is not positive definite")
    gmm = GaussianMixtureModel(k, d)
    gmm.set_weights(w)
    gmm.mu.data = mu
    gmm.set_cov(cov)
    return gmm.to(device).requires_grad_(False), p


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class EPLL(Prior):
    """The EPLL patch prior; ``prox(v, tau)``: the averaged GMM patch MAP at noise sqrt(tau).

    Args:
        weight: lambda, the prior's weight (HQS: rho_k = lambda / sigma_k^2; the paper's 1, ours 0.23).
        gmm: the GMM file (``python -m pnp.train_gmm``); None = the shipped pnp/weights/epll_gmm.pt.
        block: patches classified at once (memory ~ block x p^4 x 4 bytes: 16 MB at 1024).
    """

    provides = frozenset({Capability.PROX})

    def __init__(self, weight: float = 0.23, gmm: str | None = None, block: int = 1024):
        if weight is None or not float(weight) > 0:
            raise PnPError(f"prior.weight must be > 0, got {weight}")
        if int(block) < 1:
            raise PnPError(f"prior.block must be a positive integer, got {block}")
        super().__init__(weight=float(weight))
        self.block = int(block)
        path = gmm_file(gmm)
        self._gmm, self.patch_size = load_gmm(path)
        self.gmm = str(path)
        self.gmm_sha256 = file_sha256(path)
        self.components = self._gmm.n_components

    def setup(self, problem) -> None:
        h, w = problem.op.init(problem.y).shape[-2:]
        if min(h, w) < self.patch_size:
            raise PnPError(f"prior=epll needs images of at least {self.patch_size}x{self.patch_size} pixels "
                           f"(its patch size), got {h}x{w}")

    def classify(self, patches: torch.Tensor) -> torch.Tensor:
        """argmax_k log pi_k + log N(patch; mu_k, C_k), C_k = Sigma_k + tau I as set by
        ``set_cov_reg``: ``GaussianMixtureModel.classify``'s quadratic form written as one matrix
        product per block, x^T C_k^-1 x = vec(x x^T) . vec(C_k^-1) (4x faster on a CPU than its
        K batched products; the same component up to rounding)."""
        gmm = self._gmm
        inv, mu = gmm._cov_inv_reg, gmm.mu
        k, d = mu.shape
        quad = inv.reshape(k, d * d).T  # d^2 x K
        inv_mu = torch.bmm(inv, mu[:, :, None])[..., 0]  # K x d
        const = -0.5 * ((inv_mu * mu).sum(1) + gmm._logdet_cov_reg) + torch.log(gmm.get_weights())
        return torch.cat([(-0.5 * ((b[:, :, None] * b[:, None, :]).flatten(1) @ quad) + b @ inv_mu.T + const)
                          .argmax(1) for b in patches.split(self.block)])

    @torch.no_grad()
    def patch_map(self, patches: torch.Tensor, tau: float) -> torch.Tensor:
        """The approximate MAP of each zero-mean patch (rows of ``patches``) under the GMM with
        noise variance ``tau``: the most likely component k of N(mu_k, Sigma_k + tau I), then
        mu_k + Sigma_k (Sigma_k + tau I)^-1 (patch - mu_k)."""
        gmm = self._gmm
        gmm.set_cov_reg(max(float(tau), 1e-10))
        k_star = self.classify(patches)
        wiener = torch.bmm(gmm.get_cov(), gmm.get_cov_inv_reg())  # Sigma_k (Sigma_k + tau I)^-1
        out = torch.empty_like(patches)
        for k in k_star.unique().tolist():
            rows = (k_star == k).nonzero().squeeze(1)
            mu = gmm.mu[k]
            out[rows] = mu + (patches[rows] - mu) @ wiener[k].T
        return out

    def prox(self, z: torch.Tensor, tau: float) -> torch.Tensor:
        """Every overlapping patch of every channel replaced by its GMM MAP at noise variance
        ``tau``, the estimates averaged per pixel."""
        b, c, h, w = z.shape
        p = self.patch_size
        if min(h, w) < p:
            raise PnPError(f"prior=epll needs images of at least {p}x{p} pixels (its patch size), got {h}x{w}")
        planes = z.reshape(b * c, 1, h, w).to(self._gmm.mu.dtype)  # the patch model's precision
        cols = F.unfold(planes, p)  # (b c) x p^2 x L
        patches = cols.transpose(1, 2).reshape(-1, p * p)
        means = patches.mean(dim=1, keepdim=True)
        est = self.patch_map(patches - means, tau) + means
        est = est.reshape(b * c, -1, p * p).transpose(1, 2)
        total = F.fold(est, (h, w), p)
        count = F.fold(torch.ones_like(cols[:1]), (h, w), p)
        return (total / count).reshape(b, c, h, w).to(z.dtype)
