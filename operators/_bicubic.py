"""MATLAB ``imresize(..., 'bicubic')`` along one axis, as a matrix.

imresize is separable and linear: resizing an H x W image X gives R_h X R_w^T with one matrix
per axis, built from MATLAB's ``contributions`` (imresize.m):

    u_i    = i / scale + (1 - 1 / scale) / 2          output pixel i (1-based) in input coordinates
    h(t)   = scale * cubic(scale * t), width 4 / scale  when shrinking (antialiasing), else cubic(t), width 4
    w_ij   = h(u_i - j) / sum_j h(u_i - j)             for the ceil(width) + 2 nearest j
    j      -> reflected symmetrically into 1..n (index sequence 1..n, n..1 repeated)

cubic is Keys' kernel with a = -0.5. For an integer factor s, scale = 1/s, output pixel i
(0-based) is centred on input coordinate s (i + 0.5) - 0.5.
"""
from __future__ import annotations

import numpy as np


def cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB imresize's ``cubic``)."""
    t = np.abs(t)
    near = ((a + 2) * t**3 - (a + 3) * t**2 + 1) * (t <= 1)
    far = (a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a) * ((t > 1) & (t <= 2))
    return near + far


def resize_matrix(in_length: int, out_length: int, scale: float, shift: float = 0.0) -> np.ndarray:
    """The (out_length x in_length) float64 matrix of imresize along one axis.

    ``shift`` moves every output sample by that many input pixels (0 for imresize itself).
    """
    if scale < 1:  # antialiasing: stretch the kernel by 1 / scale
        kernel, width = (lambda t: scale * cubic(scale * t)), 4.0 / scale
    else:
        kernel, width = cubic, 4.0
    u = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale) + shift
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]  # 1-based input indices
    weights = kernel(u[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])  # symmetric boundary
    columns = mirror[np.mod(taps.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps.shape[1]), columns.ravel()), weights.ravel())
    return matrix
