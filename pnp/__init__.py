"""pnp: plug-and-play image restoration. Priors x operators x solvers, from Hydra configs.

    >>> from pnp import restore
    >>> x, metrics = restore("photo.png", op="blur", prior="tv", **{"noise.sigma": 7.65})
"""
from pnp.api import restore
from pnp.errors import PnPError

__all__ = ["restore", "PnPError"]
__version__ = "0.1.0"
