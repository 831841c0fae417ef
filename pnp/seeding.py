"""Seeded random streams: every random draw of a run comes from its ``seed`` and a stream number.

Stream ``k`` of seed ``s`` is seeded with ``s * 1_000_003 + k`` (1,000,003 is a prime larger
than any stream number used), so that the streams of one seed are independent of each other
and of the streams of the neighbouring seeds, and a draw never depends on what was drawn
before it in another stream: the operator (stream 1) and the noise (stream 2) of an
observation, a prior's own noise, a training step.
"""
from __future__ import annotations

import torch

STREAM_STRIDE = 1_000_003


def stream_seed(seed: int, stream: int) -> int:
    """The seed of stream ``stream`` of ``seed``: ``seed * 1_000_003 + stream``."""
    return int(seed) * STREAM_STRIDE + int(stream)


def generator(seed: int, stream: int, device: str | torch.device | None = None) -> torch.Generator:
    """A torch generator (on ``device``, default the CPU) seeded with ``stream_seed(seed, stream)``."""
    g = torch.Generator() if device is None else torch.Generator(device=device)
    return g.manual_seed(stream_seed(seed, stream))
