"""A 3x3 convolution and its ReLU in one oneDNN kernel on CPU, with the vector-Jacobian product.

A plain conv -> ReLU chain writes each activation twice (the convolution's output, then the
ReLU's) and reads it back between; oneDNN applies the ReLU as a post-op while the output is
still in registers. The result is the same to the bit: ReLU commutes with rounding to bf16.
On a 2-core Intel Xeon with AMX, bf16 + channels_last, 96 -> 96 channels at 128 x 128: 1.43 ms
unfused, 1.09 ms fused, the convolution alone 1.08 ms; the whole 12 x 96 denoiser at 256 x 256,
17.7 ms unfused, 14.5 ms fused. On a 2-core AMD EPYC with AVX512-BF16 and no AMX it is neutral
(65 ms either way; ``benchmarks/denoiser_speed.md``).

The backward pass is what autograd would do for ``relu(conv2d(x, w, b))`` with ``w`` and ``b``
frozen: ``g <- g * [y > 0]``, then the convolution's input gradient only (no weight gradient: the
priors differentiate the network with respect to its input, never its weights). Training keeps
the plain modules, whose weights do need gradients.
"""
from __future__ import annotations

import torch


def available(x: torch.Tensor) -> bool:
    """True where the fused kernel runs: CPU tensors, PyTorch built with oneDNN."""
    return x.device.type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn,
                                                                                          "_convolution_pointwise")


class ConvPointwise(torch.autograd.Function):
    """y = act(conv2d(x, w, b, padding=1)), act = ReLU or identity; gradient for x only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool) -> torch.Tensor:
        y = torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1,
                                                      "relu" if relu else "none", [], "")
        ctx.relu = relu
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, w, y = ctx.saved_tensors
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        gy = gy.contiguous(memory_format=fmt)  # a layout mismatch makes the elementwise step ~15x slower
        if ctx.relu:
            gy = torch.ops.aten.threshold_backward(gy, y, 0)
        gx = torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                 [True, False, False])[0]
        return gx, None, None, None


def conv_relu_chain(x: torch.Tensor, convs, dtype: torch.dtype) -> torch.Tensor:
    """conv -> ReLU -> ... -> conv (no ReLU after the last), every conv 3x3 with padding 1, in
    ``dtype``; the weights are cast on each call (they are small)."""
    h = x.to(dtype)
    last = len(convs) - 1
    for i, conv in enumerate(convs):
        w = conv.weight.to(dtype)
        b = conv.bias.to(dtype) if conv.bias is not None else None
        h = ConvPointwise.apply(h, w, b, i < last)
    return h
