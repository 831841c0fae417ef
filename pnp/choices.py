"""The names chosen on the command line, checked before Hydra composes the config: a prior, op,
solver or noise that no registry entry or config file offers, and a launcher or sweeper whose
plugin is not installed, are refused in one line naming what exists or what to install.
"""
from __future__ import annotations

import importlib.util

from pnp.errors import PnPError
from pnp.noise import NOISES
from pnp.registry import OPERATORS, PRIORS, SOLVERS
from pnp.tune import config_names

GROUP_REGISTRIES = ("prior", "op", "solver", "noise")


def known_names(group: str) -> list[str]:
    """The registered names of ``group`` (one of ``GROUP_REGISTRIES``)."""
    return {"prior": PRIORS, "op": OPERATORS, "solver": SOLVERS}[group].names() if group != "noise" \
        else sorted([*NOISES, "none"])


def check_choices(argv: list[str]) -> None:
    """Catch an unknown prior/op/solver/noise name before Hydra does, with a one-line error; a
    config file of the group (e.g. a tuned prior, ``pnp.tune``) in pnp's or a ``--config-dir``
    folder is a valid name too."""
    for arg in argv:
        group, sep, value = arg.partition("=")
        if sep and group in GROUP_REGISTRIES:
            for name in value.split(","):
                if name and name not in known_names(group) and not name.startswith(("choice(", "range(", "glob(")) \
                        and name not in config_names(group, argv):
                    raise PnPError(f"unknown {group} '{name}'; known: {', '.join(known_names(group))}")


# Launchers and sweepers by config name: (module that provides it, package to install).
PLUGINS = {
    "hydra/launcher": {
        "basic": (None, None),
        "local_parallel": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
        "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
        "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        "rq": ("hydra_plugins.hydra_rq_launcher", "hydra-rq-launcher"),
    },
    "hydra/sweeper": {
        "basic": (None, None),
        "tune": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper"),
        "optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper"),
        "ax": ("hydra_plugins.hydra_ax_sweeper", "hydra-ax-sweeper"),
        "nevergrad": ("hydra_plugins.hydra_nevergrad_sweeper", "hydra-nevergrad-sweeper"),
    },
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_plugins(argv: list[str]) -> None:
    """A one-line PnPError for ``hydra/launcher=X`` or ``hydra/sweeper=X`` whose plugin is missing."""
    for arg in argv:
        group, sep, name = arg.lstrip("+").partition("=")
        if not sep or group not in PLUGINS:
            continue
        if name not in PLUGINS[group]:
            continue  # another plugin or a config of the user's: Hydra resolves it
        module, package = PLUGINS[group][name]
        if module and not _installed(module):
            raise PnPError(f"{group}={name} needs the package {package}: pip install {package}")
