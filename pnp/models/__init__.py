"""Learned denoisers: the FFDNet-style denoiser and safe weights loading."""

from pnp.models.ffdnet import FFDNet
from pnp.models.loading import SHIPPED_GRAY_WEIGHTS, SHIPPED_WEIGHTS, ByChannels, Denoiser, detect_arch, load_denoiser

__all__ = ["FFDNet", "ByChannels", "Denoiser", "SHIPPED_WEIGHTS", "SHIPPED_GRAY_WEIGHTS", "detect_arch",
           "load_denoiser"]
