"""precision: auto picks bf16 only where the hardware has it natively."""
from __future__ import annotations

import pytest

import pnp.precision as precision
from pnp.errors import PnPError


@pytest.mark.parametrize("flags, expected", [({"avx2", "amx_bf16"}, "bf16"), ({"avx512f", "avx512_bf16"}, "bf16"),
                                             ({"avx2", "fma"}, "fp32"), (set(), "fp32")])
def test_auto_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("fp32", "cpu") == "fp32"


def test_bf16_without_native_support_runs_with_one_warning(monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(precision, "_WARNED", set())
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slow" in err[0] and "auto or fp32" in err[0]


def test_an_unknown_precision_lists_the_choices():
    with pytest.raises(PnPError, match="must be one of auto, fp32, bf16, got 'fp8'"):
        precision.resolve_precision("fp8", "cpu")
