"""What a prior can give and what a solver needs.

A prior declares ``provides``; a solver declares ``requires``. A triple is compatible when
``solver.requires <= prior.provides`` (Scico's capability flags, ``has_prox``/``has_eval``).
"""
from enum import Enum


class Capability(str, Enum):
    GRADIENT = "gradient"  # prior.grad(x, step): gradient (or mean-shift direction) of the prior energy R
    PROX = "prox"  # prior.prox(z, tau): argmin_v tau R(v) + ||v - z||^2 / 2 (a denoiser: D(z, sqrt(tau)))
    SCORE = "score"  # prior.score(x, sigma): grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2
    # (sigma a number, or one per image: B x 1 x 1 x 1); a sampler that needs D uses x + sigma^2 score
    REPARAM = "reparametrization"  # prior.generator(...): x = f_theta(z), theta fitted to the data
    CLOSED_FORM = "closed_form"  # prior.estimate(problem): the restored image in one step (e.g. a Wiener filter)

    def __str__(self) -> str:
        return self.value
