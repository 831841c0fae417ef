"""FFDNet-style denoiser and safe weights loading (pnp.models)."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from pnp.errors import PnPError
from pnp.models import SHIPPED_GRAY_WEIGHTS, SHIPPED_WEIGHTS, ByChannels, FFDNet, load_denoiser

ASTRONAUT = Path(__file__).resolve().parents[1] / "pnp" / "data" / "astronaut.png"


def psnr(x, ref):
    return 10 * math.log10(1 / torch.mean((x.clamp(0, 1) - ref) ** 2).item())


def crop(size=64):
    """A real colour crop if the package image is there, else a smooth synthetic one."""
    if ASTRONAUT.exists():
        from pnp.train import read_image

        im = read_image(ASTRONAUT).float()[None] / 255
        h, w = im.shape[2:]
        im = im[:, :, (h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2]
        return im if im.shape[1] == 3 else im.expand(-1, 3, -1, -1)
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=size, mode="bicubic").clamp(0, 1)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return FFDNet(depth=4, width=16).eval()


@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 3, 1, 3), (1, 3, 32, 33), (1, 3, 5, 5)])
def test_any_size(small, shape):
    x = torch.rand(shape)
    with torch.no_grad():
        assert small(x, 0.1).shape == shape


@pytest.mark.parametrize("shape", [(2, 3, 70, 53), (1, 1, 41, 96)])
def test_tiled_body_is_the_whole_image_result(shape):
    """CPU tiles with a margin of the body's receptive radius give the one-pass result, and so
    does the vector-Jacobian product through them; training runs in one pass (BatchNorm)."""
    torch.manual_seed(0)
    net = FFDNet(depth=4, width=16, channels=shape[1]).eval()
    x = torch.rand(shape, requires_grad=True)
    r = torch.rand(shape)
    results = []
    for tile in (None, 8):  # 8 half-resolution pixels: grids of 4 x 3 and 3 x 6 tiles
        net.tile = tile
        out = net(x, 0.1)
        results.append((out, torch.autograd.grad(out, x, r)[0]))
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=1e-5)
    calls = []
    run_body = net.run_body
    net.run_body = lambda z: calls.append(z.shape[-2:]) or run_body(z)
    net(x, 0.1)
    assert len(calls) > 1 and all(max(c) <= 1.5 * 8 + 2 * net.depth for c in calls)
    calls.clear()
    net.train()(x, 0.1)
    assert len(calls) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_conv_relu_gives_the_plain_result_and_vjp(precision):
    """Each conv with its ReLU in one oneDNN kernel (CPU inference) gives the plain chain's output
    and vector-Jacobian product, both precisions, with and without tiles."""
    from pnp.models import fused_conv

    torch.manual_seed(0)
    net = FFDNet(depth=5, width=16, channels=3, precision=precision).eval().requires_grad_(False)
    x = torch.rand(1, 3, 66, 50, requires_grad=True)
    r = torch.rand(1, 3, 66, 50)
    if not fused_conv.available(x):
        pytest.skip("PyTorch built without oneDNN")
    results = []
    for fuse, tile in ((False, None), (True, None), (True, 12)):
        net.fuse, net.tile = fuse, tile
        out = net(x, 0.1)
        results.append((out, torch.autograd.grad(out, x, r)[0]))
    atol = 1e-5 if precision == "fp32" else 1e-2
    for got in results[1:]:
        torch.testing.assert_close(got, results[0], rtol=0, atol=atol)
    assert results[0][1].abs().max() > 0.1  # the VJP is not trivially zero


def test_tiles_split_sides_into_near_equal_parts():
    from pnp.models.ffdnet import _split

    assert _split(129, 128) == [(0, 129)]  # a 256 x 256 image under the grid shift stays whole
    assert _split(257, 128) == [(0, 128), (128, 257)]
    assert [b - a for a, b in _split(300, 128)] == [150, 150]
    assert [b - a for a, b in _split(1000, 128)] == [125] * 8


def test_gray_in_gray_out(small):
    x = torch.rand(2, 1, 15, 16)
    with torch.no_grad():
        out = small(x, 0.1)
        ref = small(x.expand(-1, 3, -1, -1), 0.1).mean(1, keepdim=True)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref)


def test_sigma_float_and_tensor(small):
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        a = small(x, 0.2)
        for s in (torch.tensor([0.2, 0.2]), torch.full((2, 1, 1, 1), 0.2), torch.tensor(0.2)):
            torch.testing.assert_close(small(x, s), a)
        per = small(x, torch.tensor([0.05, 0.5]))
        torch.testing.assert_close(per, torch.cat([small(x[:1], 0.05), small(x[1:], 0.5)]))
    assert not torch.allclose(per[0], a[0])
    with pytest.raises(ValueError):
        small(x, torch.tensor([0.1, 0.2, 0.3]))


def test_far_outside_unit_range(small):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 24, 24, generator=g) + torch.randn(1, 3, 24, 24, generator=g)
    with torch.no_grad():
        for prec in ("fp32", "bf16"):
            out = small.set_precision(prec)(x, 1.0)
            assert torch.isfinite(out).all()
    small.set_precision("fp32")


def test_bf16_close_to_fp32():
    """bf16 autocast + channels_last gives the same PSNR as fp32 to ~0.1 dB."""
    net = load_denoiser() if SHIPPED_WEIGHTS.exists() else FFDNet().eval()
    x = crop(64)
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p32 = psnr(net.set_precision("fp32")(y, 25 / 255), x)
        p16 = psnr(net.set_precision("bf16")(y, 25 / 255), x)
    assert abs(p32 - p16) < 0.1, (p32, p16)


# ---------------------------------------------------------------------------- loading
def test_ffdnet_round_trip_and_arch_detection(small, tmp_path):
    f = tmp_path / "ffdnet.pt"
    torch.save(small.state_dict(), f)
    net = load_denoiser(f)
    assert (net.depth, net.width) == (4, 16)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.1), small(x, 0.1))
    with pytest.raises(PnPError, match="holds a ffdnet state dict, not dncnn"):
        load_denoiser(f, arch="dncnn")


def test_mismatched_state_dict(small, tmp_path):
    sd = dict(small.state_dict())
    sd["body.2.weight"] = torch.zeros(16, 7, 3, 3)
    f = tmp_path / "bad_shape.pt"
    torch.save(sd, f)
    with pytest.raises(PnPError, match=r"bad_shape\.pt: state dict does not fit a ffdnet model.*size mismatch"):
        load_denoiser(f)
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "unknown.pt")
    with pytest.raises(PnPError, match=r"unknown\.pt: unknown architecture"):
        load_denoiser(tmp_path / "unknown.pt")
    with pytest.raises(PnPError, match="weights file not found"):
        load_denoiser(tmp_path / "missing.pt")


def test_corrupt_file(tmp_path):
    f = tmp_path / "corrupt.pt"
    f.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(PnPError, match=r"cannot load .*corrupt\.pt with weights_only=True"):
        load_denoiser(f)


class Exploit:
    """Unpickling this would call os.system; weights-only loading must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_code_execution_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pt"
    torch.save({"model.0.weight": torch.zeros(1), "x": Exploit(marker)}, f)
    with pytest.raises(PnPError, match=r"evil\.pt with weights_only=True.*refused"):
        load_denoiser(f)
    assert not marker.exists()


class KairDnCNN(nn.Module):
    """KAIR/DPIR DnCNN layout (mode 'CR', no BN): ``x - model(x)``, keys model.0, model.2, ..."""

    def __init__(self, cin, depth, nf):
        super().__init__()
        layers = [nn.Conv2d(cin, nf, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU()]
        self.model = nn.Sequential(*layers, nn.Conv2d(nf, cin, 3, padding=1))

    def forward(self, x):
        return x - self.model(x)


@pytest.mark.parametrize("cin", [3, 1])
def test_kair_dncnn_round_trip(tmp_path, cin):
    torch.manual_seed(0)
    ref = KairDnCNN(cin, depth=5, nf=16).eval()
    f = tmp_path / ("dncnn_color_blind.pth" if cin == 3 else "dncnn_25.pth")
    torch.save(ref.state_dict(), f)
    net = load_denoiser(f)
    x = torch.rand(2, cin, 19, 21)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.1), ref(x))
        if cin == 1:  # gray model on a colour image: per channel
            xc = torch.rand(1, 3, 16, 16)
            torch.testing.assert_close(net(xc, 0.1), ref(xc.transpose(0, 1)).transpose(0, 1))


def test_deepinv_dncnn_round_trip(tmp_path):
    import deepinv

    torch.manual_seed(0)
    ref = deepinv.models.DnCNN(3, 3, depth=5, nf=16, pretrained=None).eval()
    torch.save(ref.state_dict(), tmp_path / "dncnn.pth")
    net = load_denoiser(tmp_path / "dncnn.pth", arch="dncnn")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.1), ref(x))
        assert net(x[:, :1], 0.1).shape == (1, 1, 16, 16)


@pytest.mark.parametrize("cin", [3, 1])
def test_drunet_round_trip(tmp_path, cin):
    """KAIR drunet_color.pth / drunet_gray.pth and deepinv DRUNet share the same keys."""
    import deepinv

    torch.manual_seed(0)
    ref = deepinv.models.DRUNet(cin, cin, nc=(8, 16, 32, 64), nb=1, pretrained=None).eval()
    f = tmp_path / ("drunet_color.pth" if cin == 3 else "drunet_gray.pth")
    torch.save(ref.state_dict(), f)
    net = load_denoiser(f)
    x = torch.rand(2, cin, 32, 32)
    s = torch.tensor([0.05, 0.2])
    with torch.no_grad():
        torch.testing.assert_close(net(x, s), ref(x, s))
        torch.testing.assert_close(net(x, 0.1), ref(x, 0.1))


def test_training_checkpoint_loads(tmp_path, small):
    torch.save({"arch": {"name": "ffdnet"}, "model": small.state_dict(), "optimizer": {}, "step": 3,
                "best_psnr": 1.0}, tmp_path / "denoiser_last.pt")
    net = load_denoiser(tmp_path / "denoiser_last.pt")
    assert isinstance(net, FFDNet) and net.depth == 4


def test_by_channels_routes_gray_and_colour(small):
    from pnp.models import ByChannels

    gray = FFDNet(depth=3, width=8, channels=1).eval()
    pair = ByChannels(small, gray)
    xg, xc = torch.rand(1, 1, 17, 19), torch.rand(1, 3, 17, 19)
    with torch.no_grad():
        assert torch.equal(pair(xg, 0.1), gray(xg, 0.1)) and torch.equal(pair(xc, 0.1), small(xc, 0.1))
    assert pair.set_precision("bf16").precision == "bf16" and gray.precision == "bf16"


def test_shipped_weights_denoise():
    """The shipped model on a fixed colour crop and its gray version at sigma 25 (random or
    wrong weights gain about 0 dB)."""
    assert SHIPPED_WEIGHTS.exists(), f"{SHIPPED_WEIGHTS} is missing from the package"
    assert SHIPPED_GRAY_WEIGHTS.exists(), f"{SHIPPED_GRAY_WEIGHTS} is missing from the package"
    net = load_denoiser()
    assert isinstance(net, ByChannels) and net.gray.channels == 1 and net.colour.channels == 3
    x = crop(128)
    g = torch.Generator().manual_seed(0)
    y = x + 25 / 255 * torch.randn(x.shape, generator=g)
    xg = x.mean(1, keepdim=True)
    yg = xg + 25 / 255 * torch.randn(xg.shape, generator=g)
    with torch.no_grad():
        gain = psnr(net(y, 25 / 255), x) - psnr(y, x)
        gray = psnr(net(yg, 25 / 255), xg) - psnr(yg, xg)
    # measured: 6.93 dB colour, 6.73 dB gray by the gray model (6.34 by the colour model on
    # replicated channels) with the first shipped weights; with the revived ones (colour 38,000
    # steps, gray 94,000): 7.65 colour, 7.19 gray; colour 52,000, gray 136,000: 7.86 / 7.33;
    # gray 202,000: 7.86 / 7.45; after the GPU cycle (batch 64 of 96x96, 18,000 steps each): 8.22 / 7.51;
    # random weights: ~0 dB
    assert gain > 5.5 and gray > 5.5, (gain, gray)


def test_colour_keyword_loads_the_shipped_colour_model_alone():
    """weights="colour" (RED's default): the shipped colour model, gray input on replicated channels."""
    from pnp.registry import PRIORS

    net = load_denoiser("colour")
    assert not isinstance(net, ByChannels) and net.channels == 3
    x = torch.rand(1, 1, 20, 24)
    with torch.no_grad():
        assert torch.equal(net(x, 0.1), net(x.expand(-1, 3, -1, -1), 0.1).mean(1, keepdim=True))
    assert PRIORS.build("red").denoiser_cfg["weights"] == "colour"
    assert PRIORS.build("red", denoiser={"weights": None}).denoiser_cfg["weights"] is None


def test_fp32_on_the_cpu_runs_in_channels_last_with_the_same_result():
    """oneDNN's native layout on the CPU: the weights move to channels_last at the first fp32
    call; the output agrees with NCHW's to float rounding."""
    torch.manual_seed(0)
    net = FFDNet(depth=4, width=16).eval()
    x, sigma = torch.rand(1, 3, 24, 20), torch.full((1,), 0.1)
    with torch.inference_mode():
        reference = net.body(torch.cat([torch.nn.functional.pixel_unshuffle(x, 2),
                                        sigma.view(1, 1, 1, 1).expand(1, 1, 12, 10)], dim=1))
        reference = x - torch.nn.functional.pixel_shuffle(reference, 2)  # NCHW, unfused
        assert net.body[0].weight.is_contiguous()
        out = net(x, sigma)
    assert net.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, reference, atol=1e-5)
