"""The TV prior: energy, smoothed gradient, and the FGP prox against independent references."""
import numpy as np
import pytest
import torch

from pnp.errors import PnPError
from pnp.priors.tv import TV, nabla, nabla_adjoint


pytestmark = pytest.mark.usefixtures("one_thread")


def test_energy_of_a_step_edge_is_length_times_jump():
    x = torch.zeros(1, 1, 8, 10)
    x[..., 4:] = 0.7  # vertical edge of length 8
    assert TV().energy(x).item() == pytest.approx(8 * 0.7)
    assert TV().energy(x.transpose(-1, -2)).item() == pytest.approx(8 * 0.7)


def test_colour_channels_share_one_gradient_magnitude():
    x = torch.zeros(2, 3, 6, 6)
    x[:, 0, :, 3:], x[:, 1, :, 3:] = 0.3, 0.4  # per pixel sqrt(0.3^2 + 0.4^2) = 0.5
    assert torch.allclose(TV().energy(x), torch.full((2,), 6 * 0.5))


def test_nabla_adjoint_is_the_adjoint():
    g = torch.Generator().manual_seed(0)
    x, ph, pv = (torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64) for _ in range(3))
    dh, dv = nabla(x)
    assert (dh * ph + dv * pv).sum().item() == pytest.approx((x * nabla_adjoint(ph, pv)).sum().item(), rel=1e-12)


def test_grad_matches_central_finite_differences():
    tv = TV(eps=1e-3)
    x = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def smoothed(v):
        dh, dv = nabla(v)
        return (dh.pow(2) + dv.pow(2)).sum(1).add(tv.eps**2).sqrt().sum().item()

    h, fd = 1e-6, torch.zeros_like(x).flatten()
    for i in range(x.numel()):
        e = torch.zeros_like(x).flatten()
        e[i] = h
        fd[i] = (smoothed(x + e.view_as(x)) - smoothed(x - e.view_as(x))) / (2 * h)
    g = tv.grad(x, 1).flatten()
    assert ((g - fd).norm() / g.norm()).item() < 1e-5


def _np_nabla(v):
    dh, dv = np.zeros_like(v), np.zeros_like(v)
    dh[..., :, :-1] = v[..., :, 1:] - v[..., :, :-1]
    dv[..., :-1, :] = v[..., 1:, :] - v[..., :-1, :]
    return dh, dv


def _np_nabla_adjoint(ph, pv):
    out = np.zeros_like(ph)
    out[..., :, 1:] += ph[..., :, :-1]
    out[..., :, :-1] -= ph[..., :, :-1]
    out[..., 1:, :] += pv[..., :-1, :]
    out[..., :-1, :] -= pv[..., :-1, :]
    return out


def chambolle_pock_prox(z, tau, iterations=5000):
    """Reference: accelerated primal-dual (Chambolle & Pock 2011, Alg. 2, gamma = 1) on the
    primal min_v ||v - z||^2 / 2 + tau sum_i |(Dv)_i|, written independently in numpy."""
    v, vbar = z.copy(), z.copy()
    ph, pv = np.zeros_like(z), np.zeros_like(z)
    s = t = 1 / np.sqrt(8)
    for _ in range(iterations):
        dh, dv = _np_nabla(vbar)
        ph, pv = ph + s * dh, pv + s * dv
        m = np.maximum(1, np.sqrt((ph**2 + pv**2).sum(0, keepdims=True)) / tau)
        ph, pv = ph / m, pv / m
        v_new = (v - t * _np_nabla_adjoint(ph, pv) + t * z) / (1 + t)
        theta = 1 / np.sqrt(1 + 2 * t)
        t, s = theta * t, s / theta
        vbar, v = v_new + theta * (v_new - v), v_new
    return v


@pytest.mark.parametrize("shape", [(1, 6, 6), (3, 4, 4)])
def test_prox_matches_a_brute_force_reference(shape):
    rng = np.random.default_rng(0)
    z = rng.random(shape)
    z[..., :, 2:] += 0.5
    tau = 0.1
    ref = torch.from_numpy(chambolle_pock_prox(z, tau))[None]
    zt = torch.from_numpy(z)[None]
    tv = TV(prox_tol=1e-7, prox_iterations=100_000)
    v = tv.prox(zt, tau)

    def objective(u):
        return (tau * tv.energy(u) + 0.5 * (u - zt).pow(2).flatten(1).sum(1)).item()

    assert objective(v) == pytest.approx(objective(ref), rel=1e-6)
    assert (v - ref).abs().max().item() < 1e-3


def test_prox_stops_at_its_tolerance():
    g = torch.Generator().manual_seed(2)
    z = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    exact = TV(prox_tol=1e-9, prox_iterations=100_000).prox(z, 0.05)
    tv = TV(prox_tol=1e-4, prox_iterations=100_000)
    approx = tv.prox(z, 0.05)
    assert (approx - exact).pow(2).flatten(1).mean(1).sqrt().max().item() <= 1e-4
    again = tv.prox(z, 0.05)  # warm-started from the previous dual: at least as good
    assert (again - exact).pow(2).flatten(1).mean(1).sqrt().max().item() <= 1e-4


def test_prox_with_zero_tau_is_the_identity_and_constants_are_fixed():
    z = torch.rand(1, 3, 8, 8)
    assert torch.equal(TV().prox(z, 0.0), z)
    c = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(TV().prox(c, 1.0), c)
    with pytest.raises(PnPError):
        TV().prox(z, -1.0)
