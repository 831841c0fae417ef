"""Operator SVDs: every registered operator whose configuration has one, A = U diag(s) V^T checked
against A itself in float64 (plugins included), and the operator capability check."""
from __future__ import annotations

import pytest
import torch

from pnp.errors import PnPError
from pnp.registry import OPERATORS, check_operator
from pnp.svd import real_fourier, real_fourier_inverse

from test_operators import build, config, rand

SHAPE = (3, 12, 10)  # small, not square, sides not multiples of 4
VARIANTS = [
    ("blur", {"boundary": "circular", "kernel": "motion", "kernel_size": 5}),
    ("blur", {"boundary": "circular", "kernel": "gaussian", "kernel_size": 5}),
    ("sr", {"scale": 3}),  # 12 x 10 is not a multiple of 3: y is 4 x 4
    ("inpaint", {"missing": 0.7}),
]
SMALL = {"blur": {"kernel_size": 5}}
CASES = [(name, SMALL.get(name, {})) for name in OPERATORS.names()] + VARIANTS


pytestmark = pytest.mark.usefixtures("one_thread")


def operator(name, params, shape=SHAPE):
    op = build(name, shape=shape, **params).double()
    return op, op.svd()


def declared(name, params):
    """The operator class declares "svd" exactly when some configuration returns one."""
    op, decomposition = operator(name, params)
    if decomposition is not None:
        assert "svd" in type(op).provides, f"{name} returns an SVD but does not declare it"
    return op, decomposition


@pytest.mark.parametrize("name,params", CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_svd_reproduces_the_operator(name, params):
    op, svd = declared(name, params)
    if svd is None:
        pytest.skip(f"{name} {params}: no SVD")
    x = rand(2, *SHAPE, seed=3)
    s = svd.s.to(x)
    torch.testing.assert_close(svd.U(s * svd.Vt(x)), op.A(x), rtol=1e-4, atol=1e-10)
    y = op.A(rand(2, *SHAPE, seed=4))
    torch.testing.assert_close(svd.V(s * svd.Ut(y)), op.A_adjoint(y), rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize("name,params", CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_svd_transforms_are_orthogonal(name, params):
    op, svd = declared(name, params)
    if svd is None:
        pytest.skip(f"{name} {params}: no SVD")
    x = rand(2, *SHAPE, seed=5)
    c = svd.Vt(x)
    assert c.shape == x.shape
    torch.testing.assert_close(c.norm(), x.norm())  # V^T V = I and V V^T = I (square)
    torch.testing.assert_close(svd.V(c), x)
    torch.testing.assert_close(svd.Vt(svd.V(x)), x)
    y = op.A(rand(2, *SHAPE, seed=6)) + rand(*op.A(x).shape, seed=7)  # any y, not only A x
    y = op.restrict(y)
    d = svd.Ut(y)
    torch.testing.assert_close(d.norm(), y.norm())  # U^T U = I
    torch.testing.assert_close(svd.U(d), y)
    observed = (svd.s.to(x) > 0).expand_as(d)
    torch.testing.assert_close(svd.Ut(svd.U(d))[observed], d[observed])
    assert bool((svd.s >= 0).all())


def test_real_fourier_is_an_orthonormal_real_dft():
    for size in ((6, 8), (5, 7), (4, 5)):
        x = rand(2, 1, *size, seed=8)
        r = real_fourier(x)
        assert r.dtype == torch.float64
        torch.testing.assert_close(r.norm(), x.norm())
        torch.testing.assert_close(real_fourier_inverse(r), x)
        basis = torch.eye(size[0] * size[1], dtype=torch.float64).view(-1, 1, *size)
        matrix = real_fourier(basis).flatten(1)
        torch.testing.assert_close(matrix @ matrix.T, torch.eye(matrix.shape[0], dtype=torch.float64))


def test_singular_values_of_known_operators():
    _, inpaint = operator("inpaint", {"missing": 0.5})
    assert set(inpaint.s.unique().tolist()) == {0.0, 1.0}
    assert int((inpaint.s == 0).sum()) == 3 * round(0.5 * 120)
    _, denoise = operator("denoise", {})
    assert bool((denoise.s == 1).all())
    op, sr = operator("sr", {"scale": 2})
    assert int((sr.s > 0).sum()) == 6 * 5  # rank: the size of y
    box = build("blur", shape=(1, 8, 8), boundary="circular", kernel="box", kernel_size=2).double().svd()
    assert float(box.s.max()) == pytest.approx(1.0)  # a normalised kernel passes the mean unchanged
    assert int((box.s < 1e-12).sum()) == 8 + 8 - 1  # the 2-box kills the Nyquist row and column


def test_configurations_without_an_svd():
    assert build("blur", shape=SHAPE, boundary="valid", kernel_size=5).svd() is None
    assert build("sr", shape=(3, 12, 12), scale=2, kernel="gaussian", kernel_size=5).svd() is None
    assert build("cs", shape=SHAPE).svd() is None
    assert "svd" not in OPERATORS.get("cs").provides


def test_check_operator_names_what_fits():
    check_operator("ddrm", "inpaint")
    check_operator("gd", "cs")  # a solver that needs nothing of the operator
    with pytest.raises(PnPError) as err:
        check_operator("ddrm", "cs")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("solver 'ddrm' needs an operator with an SVD; operators that have one: ")
    for name in ("blur (op.boundary=circular)", "denoise", "inpaint", "demosaic", "sr (op.kernel=bicubic)"):
        assert name in message
    assert " cs" not in message
