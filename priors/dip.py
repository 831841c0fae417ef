"""Deep Image Prior (Ulyanov, Vedaldi & Lempitsky, "Deep Image Prior", CVPR 2018 / IJCV 2020).

The image is the output of an untrained network with a fixed random input, x = f_theta(z); the
``dip`` solver fits theta to the observation, min_theta ||A f_theta(z) - y||^2. The network's
structure, not training data, is the prior: it fits natural images before noise, so stopping
early (and averaging) regularises.

Network: the authors' "skip" encoder-decoder (``models/skip.py`` of
github.com/DmitryUlyanov/deep-image-prior, built as their denoising and super-resolution notebooks
build it: ``get_net(32, 'skip', 'reflection', skip_n33d=128, skip_n33u=128, skip_n11=4,
num_scales=5, upsample_mode='bilinear')``). At each of the 5 scales, from the input h:

    down(h)  = LReLU(BN(conv3x3(LReLU(BN(conv3x3_stride2(h))))))
    skip(h)  = LReLU(BN(conv1x1(h)))                                   (4 channels)
    level(h) = LReLU(BN(conv1x1(LReLU(BN(conv3x3(BN([skip(h), up2(level'(down(h)))])))))))

with level' the next scale (the identity below the deepest), up2 bilinear upsampling, every
convolution reflection-padded, LeakyReLU slope 0.2; x = sigmoid(conv1x1(level(z))). z has 32
channels drawn from U(0, 0.1) (their ``get_noise(32, 'noise', size)``, var = 1/10).
Inpainting uses their inpainting notebook's network instead: 128 skip channels and nearest
upsampling (``kate.png``, ``peppers.png``).

The network runs on z padded up to a multiple of 2^scales (the authors crop images to a
multiple of 32) and its output is cropped back to the image size.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.precision import PRECISIONS, resolve_precision
from pnp.prior import Prior


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """[reflection pad, conv, batch norm, LeakyReLU(0.2)]: the authors' conv -> bn -> act."""
    pad = [nn.ReflectionPad2d((kernel - 1) // 2)] if kernel > 1 else []
    return [*pad, nn.Conv2d(cin, cout, kernel, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]


def channels_last(grad: torch.Tensor) -> torch.Tensor:
    """The gradient made channels_last-contiguous: bilinear upsampling's backward is several
    times slower on the strided channel slice that the concatenation's backward hands it."""
    return grad.contiguous(memory_format=torch.channels_last)


class SkipLevel(nn.Module):
    """One scale of the skip network: concat(skip(h), up2(deeper(down(h)))) -> BN -> conv3x3 -> conv1x1."""

    def __init__(self, cin: int, channels: int, skip: int, depth: int, upsample: str):
        super().__init__()
        self.skip = nn.Sequential(*conv_bn_act(cin, skip, 1)) if skip else None
        self.down = nn.Sequential(*conv_bn_act(cin, channels, 3, stride=2), *conv_bn_act(channels, channels, 3))
        self.deeper = SkipLevel(channels, channels, skip, depth - 1, upsample) if depth > 1 else nn.Identity()
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample)
        self.up = nn.Sequential(nn.BatchNorm2d(skip + channels), *conv_bn_act(skip + channels, channels, 3),
                                *conv_bn_act(channels, channels, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        deep = self.upsample(self.deeper(self.down(h)))
        if deep.requires_grad and h.is_contiguous(memory_format=torch.channels_last):
            deep.register_hook(channels_last)  # the concat's gradient slice, else a slow upsample backward
        return self.up(deep if self.skip is None else torch.cat([self.skip(h), deep], 1))


class SkipNet(nn.Sequential):
    """The authors' ``skip`` network: ``scales`` levels of ``channels`` channels, sigmoid output."""

    def __init__(self, cin: int = 32, cout: int = 3, channels: int = 128, skip: int = 4, scales: int = 5,
                 upsample: str = "bilinear"):
        super().__init__(SkipLevel(cin, channels, skip, scales, upsample), nn.Conv2d(channels, cout, 1), nn.Sigmoid())


class DeepImagePrior(Prior):
    """x = f_theta(z): the skip network and its fixed input z, built for the problem in ``setup``.

    ``skip_channels`` and ``upsample`` null take the per-operator values of the authors' notebooks
    (``prior.presets`` in conf/prior/presets/dip.yaml; 4 and bilinear without one). ``precision: bf16`` runs the network under bfloat16 autocast with
    channels_last tensors (the loss and the output stay float32).
    """

    provides = frozenset({Capability.REPARAM})
    auto_keys = {"skip_channels": 4, "upsample": "bilinear"}

    def __init__(self, input_channels: int = 32, input_scale: float = 0.1, channels: int = 128,
                 skip_channels: int | None = None, scales: int = 5, upsample: str | None = None,
                 precision: str = "auto", preset: dict | None = None):
        super().__init__(preset=preset)
        if min(input_channels, channels, scales) < 1:
            raise PnPError("prior.input_channels, prior.channels and prior.scales must be at least 1")
        if upsample not in (None, "bilinear", "nearest"):
            raise PnPError(f"prior.upsample must be bilinear or nearest, got {upsample}")
        if precision not in PRECISIONS:
            raise PnPError(f"prior.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.input_channels, self.input_scale = int(input_channels), float(input_scale)
        self.channels, self.skip_channels, self.scales = int(channels), skip_channels, int(scales)
        self.upsample, self.precision = upsample, precision
        self.net: SkipNet | None = None
        self.register_buffer("z", None)
        self.size: tuple[int, int] = (0, 0)

    @property
    def min_size(self) -> int:
        """The smallest side: 2 x 2 pixels at the deepest scale (reflection padding needs 2)."""
        return 2 ** (self.scales + 1)

    def setup(self, problem) -> None:
        """Build the network (seeded by ``problem.seed``) and draw z ~ U(0, input_scale) for its image size."""
        channels, height, width = problem.op.shape
        if min(height, width) < self.min_size:
            raise PnPError(f"prior dip: the image is {height}x{width}, smaller than the {self.min_size}x"
                           f"{self.min_size} minimum of its {self.scales} scales; use a larger image or "
                           f"fewer prior.scales")
        auto = self.preset_values(problem)
        skip = int(auto["skip_channels"] if self.skip_channels is None else self.skip_channels)
        upsample = self.upsample or auto["upsample"]
        self.skip_used, self.upsample_used = skip, upsample
        step = 2**self.scales
        padded = (math.ceil(height / step) * step, math.ceil(width / step) * step)
        generator = torch.Generator().manual_seed(int(problem.seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(problem.seed))
            net = SkipNet(self.input_channels, channels, self.channels, skip, self.scales, upsample)
        z = torch.rand(1, self.input_channels, *padded, generator=generator) * self.input_scale
        self.precision_used = resolve_precision(self.precision, problem.y.device, "prior.precision")
        memory = torch.channels_last if self.precision_used == "bf16" else torch.contiguous_format
        self.net = net.to(problem.y.device, memory_format=memory)
        self.z = z.to(problem.y.device)
        self.size = (height, width)

    def generator(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """x = f_theta(z) (z defaults to the fixed input), cropped to the image size, float32."""
        if self.net is None:
            raise PnPError("prior dip: setup(problem) must run before generator()")
        z = self.z if z is None else z
        context = contextlib.nullcontext()
        if self.precision_used == "bf16":
            z = z.contiguous(memory_format=torch.channels_last)
            context = torch.autocast(device_type=z.device.type, dtype=torch.bfloat16)
        with context:
            out = self.net(z)
        return out[..., : self.size[0], : self.size[1]].float().contiguous()
