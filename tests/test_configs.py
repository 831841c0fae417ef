"""Every config file composes and builds what it names.

Each file of the groups prior, op, solver, noise, benchmark and experiment of the installed
``pnp.conf`` (a new file is picked up by its presence), and ``train.yaml``, is composed with
Hydra's compose API as the command line composes it, its values are checked
(``pnp.validate.validate_config``), and what it names is built the way a run builds it:

- prior and solver: ``pnp.runner.build_triple`` (compatibility, presets of the operator,
  constructor arguments: an unknown key is an error); every prior also with every operator
  that its default solver accepts, so that each operator's presets are built;
- operator and noise: ``pnp.problem.make_problem`` on a small image;
- suite and experiment: its problems (``pnp.benchmark.suite_tasks``), each operator and noise
  of the grid built on a small image, and the triple;
- training: ``pnp.train.check_config`` and the network of ``model``.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from pnp.benchmark import suite_tasks
from pnp.models.ffdnet import FFDNet
from pnp.problem import make_problem
from pnp.records import plain
from pnp.registry import OPERATORS, PRIORS, SOLVERS
from pnp.runner import build_triple
from pnp.train import check_config
from pnp.validate import validate_config

pytestmark = pytest.mark.usefixtures("one_thread")

CONF = Path(str(files("pnp.conf")))
SIDE = 40  # an image side every operator's defaults fit (a 25x25 valid blur, x4 SR, 8x8 CS blocks)


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_module(config_module="pnp.conf", version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    validate_config(cfg)
    return cfg


def image(channels: int = 3, side: int = SIDE) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.interpolate(torch.rand(1, channels, 6, 6, generator=g), size=(side, side),
                                           mode="bilinear", align_corners=False).clamp(0, 1)


def build_problem(cfg, op: dict | None = None, noise: dict | None = None):
    problem = make_problem(image(), op or plain(cfg.op), noise or plain(cfg.noise), seed=0)
    assert torch.isfinite(problem.y).all()
    return problem


def fits(solver: str, op: str) -> bool:
    return set(SOLVERS.get(solver).requires_operator) <= set(OPERATORS.get(op).provides)


def fitting_prior(solver: str) -> str:
    """The first prior config (by name) whose class provides what ``solver`` requires."""
    needs = set(SOLVERS.get(solver).requires)
    for name in names("prior"):
        prior = composed(f"prior={name}").prior.name
        if needs <= set(PRIORS.get(prior).provides):
            return name
    raise AssertionError(f"no prior config provides what solver {solver} requires: {sorted(map(str, needs))}")


def fitting_op(solver: str) -> str:
    return next(op for op in ["blur", *names("op")] if fits(solver, op))


def test_every_group_has_configs():
    for group in ("prior", "op", "solver", "noise", "benchmark", "experiment"):
        assert names(group), f"no config files in conf/{group}"
    assert (CONF / "train.yaml").is_file()


@pytest.mark.parametrize("name", names("prior"))
def test_prior_config_builds(name):
    cfg = composed(f"prior={name}")
    prior, solver = build_triple(cfg)
    assert isinstance(prior, PRIORS.get(cfg.prior.name)) and isinstance(solver, SOLVERS.get(cfg.solver.name))
    assert isinstance(prior.params(), dict) and isinstance(solver.params(), dict)
    solver_name = cfg.solver.name
    for op in names("op"):
        if op != cfg.op.name and fits(solver_name, op):
            with_op = composed(f"prior={name}", f"op={op}")
            build_problem(with_op)
            build_triple(with_op)


@pytest.mark.parametrize("name", names("solver"))
def test_solver_config_builds(name):
    cfg = composed(f"solver={name}")
    solver_name = cfg.solver.name
    cfg = composed(f"prior={fitting_prior(solver_name)}", f"solver={name}", f"op={fitting_op(solver_name)}")
    _, solver = build_triple(cfg)
    assert isinstance(solver, SOLVERS.get(solver_name))


@pytest.mark.parametrize("name", names("op"))
def test_operator_config_builds(name):
    cfg = composed(f"op={name}")
    problem = build_problem(cfg)
    assert isinstance(problem.op, OPERATORS.get(cfg.op.name))
    assert problem.op.A_adjoint(problem.y).shape == problem.x_true.shape


@pytest.mark.parametrize("name", names("noise"))
def test_noise_config_builds(name):
    cfg = composed(f"noise={name}")
    problem = build_problem(cfg)
    assert problem.sigma >= 0


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    """Two small blur kernels as files, for the suites over a folder of kernels."""
    folder = tmp_path_factory.mktemp("kernels")
    for i, size in enumerate((5, 7)):
        k = np.random.default_rng(i).random((size, size))
        np.save(folder / f"k_{i + 1}.npy", k / k.sum())
    return folder


def suite_builds(cfg) -> None:
    tasks = suite_tasks(cfg)
    assert tasks, "a suite without problems"
    build_triple(cfg)
    for task in tasks:
        build_problem(cfg, task.op, task.noise)


@pytest.mark.parametrize("name", names("benchmark"))
def test_benchmark_config_builds(name, kernels):
    cfg = composed(f"benchmark={name}")
    extra = [f"benchmark.kernels={kernels}"] if "kernels" in cfg.benchmark.keys() else []  # ??? is not "in"
    suite_builds(composed(f"benchmark={name}", *extra))


@pytest.mark.parametrize("name", names("experiment"))
def test_experiment_config_builds(name, kernels):
    cfg = composed(f"+experiment={name}")
    assert cfg.get("experiment") and cfg.experiment.name
    extra = [f"benchmark.kernels={kernels}"] if cfg.get("benchmark") and "kernels" in cfg.benchmark.keys() else []
    cfg = composed(f"+experiment={name}", *extra)
    if cfg.get("benchmark"):
        suite_builds(cfg)
    else:
        build_problem(cfg)
        build_triple(cfg)


def test_train_config_builds():
    with initialize_config_module(config_module="pnp.conf", version_base=None):
        cfg = compose(config_name="train")
    check_config(cfg)
    net = FFDNet(**plain(cfg.model), precision=cfg.precision)
    assert net.channels == cfg.model.channels


def test_a_bad_value_is_caught():
    """The checks above fail where they should: a misspelled prior key and a bad range."""
    from pnp.errors import PnPError

    with pytest.raises(PnPError, match="weigth"):
        build_triple(composed("prior=tv", "+prior.weigth=3"))
    with pytest.raises(PnPError, match="noise.sigma"):
        composed("noise.sigma=-1")


WORDS = [(prior, key, word) for prior in names("prior")
         for key in ("prior.precision", "prior.denoiser.precision")
         if composed(f"prior={prior}").prior.get(key.split(".", 1)[1].split(".")[0]) is not None
         for word in ("auto", "fp32", "bf16")] + [("daep", "prior.schedule", w) for w in ("auto", "fixed", "inv_sqrt")]


@pytest.mark.parametrize("prior,key,word", WORDS, ids=[" ".join(w) for w in WORDS])
def test_every_documented_word_of_an_auto_key_validates(prior, key, word):
    validate_config(composed(f"prior={prior}", f"{key}={word}"))


@pytest.mark.parametrize("key", ["prior.denoiser.precision", "prior.schedule"])
def test_an_undocumented_word_is_refused_with_the_choices(key):
    from pnp.errors import PnPError

    with pytest.raises(PnPError, match=f"{key} must be one of auto, "):
        validate_config(composed("prior=daep", f"{key}=fp16"))
