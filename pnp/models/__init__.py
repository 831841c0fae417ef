"""Learned denoisers: the FFDNet-style colour denoiser and safe weights loading."""

from pnp.models.ffdnet import FFDNet
from pnp.models.loading import SHIPPED_WEIGHTS, Denoiser, detect_arch, load_denoiser

__all__ = ["FFDNet", "Denoiser", "SHIPPED_WEIGHTS", "detect_arch", "load_denoiser"]
