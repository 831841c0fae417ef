"""FFDNet-style noise-conditional colour Gaussian denoiser ``D(x, sigma)``.

Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based
Image Denoising", IEEE TIP 27(9), 2018.  Design (colour variant, no BatchNorm):

    y   = x padded to even H, W                        (replicate padding)
    z   = [PixelUnshuffle_2(y), sigma * 1]              (4*3 + 1 = 13 ch, H/2 x W/2)
    r   = Conv3x3 -> (depth-2) x [Conv3x3 + ReLU] -> Conv3x3   (ReLU after the first too)
    D   = y - PixelShuffle_2(r)                         (residual learning), cropped to H x W

For training, the middle convolutions can carry BatchNorm (``norm=True``, as in
the original FFDNet and DnCNN; off by default: not faster here); ``fused()`` folds each
BatchNorm into its convolution, ``W' = W g / sqrt(v + eps)``,
``b' = beta - m g / sqrt(v + eps)``, giving the norm-free network that is shipped.

``x`` is on the [0, 1] scale, ``sigma`` the noise standard deviation on the same
scale (a float, or a tensor of shape (B,), (B,1) or (B,1,1,1)).  A colour model
(``channels=3``) replicates gray inputs to 3 channels and averages the 3 outputs; a
gray model (``channels=1``) denoises each channel of a colour input on its own.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from pnp.models import fused_conv

PRECISIONS = ("fp32", "bf16")
TILE = 128  # CPU tiles of the half-resolution body: 256 x 256 image pixels (None: one pass)


def sigma_map(sigma, x: torch.Tensor) -> torch.Tensor:
    """Return ``sigma`` as a float tensor of shape (B, 1, 1, 1) on ``x``'s device."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if s.numel() == 1:
        return s.reshape(1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
    if s.numel() != x.shape[0]:
        raise ValueError(f"sigma has {s.numel()} values for a batch of {x.shape[0]}")
    return s.reshape(-1, 1, 1, 1)


def _split(n: int, tile: int) -> list[tuple[int, int]]:
    """[start, end) of round(n / tile) near-equal parts of 0..n: parts of 2/3 to 3/2 tiles, none
    ragged (a 257-pixel side, a 256 x 256 image under the grid shift, stays whole)."""
    parts = max(1, round(n / tile))
    edges = [round(k * n / parts) for k in range(parts + 1)]
    return list(zip(edges, edges[1:]))


class FFDNet(nn.Module):
    """Noise-conditional denoiser; ``forward(x, sigma) -> estimate of the clean x``.

    Args:
        depth: number of conv layers (>= 3).  width: feature channels.
        channels: image channels the network works on (3; gray is replicated).
        precision: "fp32", or "bf16" (autocast bf16 + channels_last; 5-9x faster
            on CPUs with AMX, and fast on CUDA).  Changeable with ``set_precision``.
    """

    def __init__(self, depth: int = 12, width: int = 96, channels: int = 3, precision: str = "fp32",
                 norm: bool = False):
        super().__init__()
        if depth < 3:
            raise ValueError("depth must be >= 3")
        self.depth, self.width, self.channels, self.norm = depth, width, channels, norm
        self.tile = TILE
        self.fuse = True  # CPU inference: each conv and its ReLU in one oneDNN kernel (fused_conv)
        c4 = 4 * channels
        layers = [nn.Conv2d(c4 + 1, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            if norm:
                layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)]
            else:
                layers.append(nn.Conv2d(width, width, 3, padding=1))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(width, c4, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.reset_parameters()
        self.set_precision(precision)

    def reset_parameters(self) -> None:
        """He-normal init (He et al., ICCV 2015), zero biases, last layer scaled by 0.1.

        Without BatchNorm, PyTorch's default init shrinks activations ~2.4x per layer,
        so a 12-layer net starts with a vanishing residual and sits on the identity
        plateau (loss = noise variance) for hundreds of steps; He init keeps the
        activation scale, and the small last layer keeps D close to identity at start.
        """
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for m in convs:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            convs[-1].weight.mul_(0.1)

    @torch.no_grad()
    def fused(self) -> "FFDNet":
        """A norm-free copy (eval-mode BatchNorm folded into the convolutions, by
        ``torch.nn.utils.fusion.fuse_conv_bn_weights``), same precision."""
        if not self.norm:
            return copy.deepcopy(self)
        out = FFDNet(self.depth, self.width, self.channels).to(next(self.parameters()).device)
        layers = [m for m in self.body if not isinstance(m, nn.ReLU)]  # conv, [bn,] conv, ...
        targets = iter(m for m in out.body if isinstance(m, nn.Conv2d))
        for conv, nxt in zip(layers, layers[1:] + [None]):
            if not isinstance(conv, nn.Conv2d):
                continue
            w, b = conv.weight, conv.bias
            if isinstance(nxt, nn.BatchNorm2d):
                w, b = fuse_conv_bn_weights(w, b, nxt.running_mean, nxt.running_var, nxt.eps, nxt.weight, nxt.bias)
            target = next(targets)
            target.weight.copy_(w)
            target.bias.copy_(b)
        return out.set_precision(self.precision)

    def set_precision(self, precision: str) -> "FFDNet":
        """Select "fp32" or "bf16" (bf16 autocast; the memory layout follows at the next call,
        ``_layout``)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        return self

    def run_body(self, z: torch.Tensor) -> torch.Tensor:
        """The body; on CPU in eval mode without BatchNorm, each conv with its ReLU fused into one
        oneDNN kernel (the same result, see ``fused_conv``)."""
        if not self.fuse or self.training or self.norm or not fused_conv.available(z):
            return self.body(z)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        return fused_conv.conv_relu_chain(z, [m for m in self.body if isinstance(m, nn.Conv2d)], dtype)

    def tiled_body(self, z: torch.Tensor) -> torch.Tensor:
        """The body on tiles of ``tile`` x ``tile`` half-resolution pixels, each with a margin of
        ``depth`` pixels, its receptive radius (``depth`` 3x3 convolutions): every kept output
        pixel sees exactly the inputs it sees in one pass, so the result is the same (and so is
        its vector-Jacobian product, by autograd through the slices). On CPU only, in eval mode
        (BatchNorm statistics are per batch), for sides of 1.5 tiles or more: a 513 x 513 input
        (a 512 x 512 image under the grid shift) runs 1.5x faster forward and 1.4x with the VJP
        here, as large activations leave the caches (docs/benchmarks.md); CUDA runs one pass."""
        h, w = z.shape[-2:]
        if not self.tile or self.training or z.device.type != "cpu" or max(h, w) < 1.5 * self.tile:
            return self.run_body(z)
        m = self.depth
        rows = []
        for i0, i1 in _split(h, self.tile):
            row = []
            for j0, j1 in _split(w, self.tile):
                a, b = max(i0 - m, 0), max(j0 - m, 0)
                out = self.run_body(z[..., a:min(i1 + m, h), b:min(j1 + m, w)])
                row.append(out[..., i0 - a:i1 - a, j0 - b:j1 - b])
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)

    def _layout(self, z: torch.Tensor) -> torch.memory_format:
        """The memory layout of this call, which the weights are moved to when they are in another:
        channels_last for bf16, and for fp32 on the CPU, where oneDNN's convolutions run in that
        layout natively (fp32 at 256x256 on a 2-core AMD EPYC: forward 1.08-1.34x, vector-Jacobian
        product 1.15-1.25x faster than NCHW); NCHW for fp32 on CUDA (unmeasured there)."""
        fmt = torch.channels_last if self.precision == "bf16" or z.device.type == "cpu" else torch.contiguous_format
        if not self.body[0].weight.is_contiguous(memory_format=fmt):
            self.to(memory_format=fmt)
        return fmt

    def _autocast(self, x: torch.Tensor):
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected a B x C x H x W tensor, got shape {tuple(x.shape)}")
        c_in, h, w = x.shape[1], x.shape[2], x.shape[3]
        if self.channels == 1 and c_in > 1:  # gray model, colour input: each channel on its own
            b = x.shape[0]
            if torch.is_tensor(sigma) and sigma.numel() > 1:
                sigma = sigma.reshape(b).repeat_interleave(c_in)
            return self(x.reshape(b * c_in, 1, h, w), sigma).reshape(b, c_in, h, w)
        if c_in == 1 and self.channels != 1:
            x = x.expand(-1, self.channels, -1, -1)
        elif c_in != self.channels:
            raise ValueError(f"expected 1 or {self.channels} channels, got {c_in}")
        x = x.float()
        s = sigma_map(sigma, x)
        ph, pw = h % 2, w % 2
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        z = F.pixel_unshuffle(x, 2)
        z = torch.cat([z, s.expand(-1, 1, z.shape[2], z.shape[3])], dim=1)
        z = z.contiguous(memory_format=self._layout(z))
        with self._autocast(x):
            r = self.tiled_body(z)
        out = x - F.pixel_shuffle(r.float(), 2)
        out = out[:, :, :h, :w].contiguous()
        if c_in == 1 and self.channels != 1:
            out = out.mean(dim=1, keepdim=True)
        return out
