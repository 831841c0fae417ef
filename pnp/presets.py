"""Per-operator presets: the values a prior uses for its keys set to ``auto``.

Each learned prior's config includes ``prior.presets`` (``conf/prior/presets/<prior>.yaml``,
written by ``benchmarks/tune_defaults.py``), one entry per operator config name plus
``default`` (for the keys an operator's entry does not set):

    blur:
      sigma: {noise: [2.55, 7.65, 12.75], value: [25.0, 25.0, 15.7]}
      gamma: 6.9
    sr:
      sigma: {noise: [0, 12.75], scale: [2, 3, 4, 5], value: [[30, 40, 55, 55], [25, 25, 25, 25]]}

A rule is a number (or a string, for a choice), or a table over the problem's noise level (0-255 units, as ``noise.sigma``)
and/or the operator's scale, linearly interpolated between its points and constant beyond
them. ``python -m pnp prior=daep op=sr --cfg job`` shows the presets in force, and every run
records the values it used (``params`` in metrics.json).
"""
from __future__ import annotations

import bisect

from pnp.errors import PnPError

AXES = ("noise", "scale")


def select(presets: dict | None, op_name: str | None, prior_name: str, allowed: set[str]) -> dict:
    """The preset of operator ``op_name``: its entry over the ``default`` one (keys it does not
    set come from ``default``), the keys checked against ``allowed``."""
    presets = dict(presets or {})
    preset = {**dict(presets.get("default") or {}), **dict(presets.get(op_name) or {})}
    unknown = sorted(set(preset) - allowed)
    if unknown:
        raise PnPError(f"prior.presets.{op_name if op_name in presets else 'default'} of prior '{prior_name}' "
                       f"names unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed)) or 'none'}")
    for key, rule in preset.items():
        check_rule(f"prior.presets.{op_name}.{key}", rule)
    return preset


def check_rule(name: str, rule) -> None:
    """A one-line PnPError unless ``rule`` is a number or a well-formed table."""
    if isinstance(rule, bool):
        raise PnPError(f"{name}: expected a number or a table, got {rule!r}")
    if isinstance(rule, (int, float, str)):
        return
    if not isinstance(rule, dict) or "value" not in rule or not set(rule) - {"value"} <= set(AXES) or len(rule) < 2:
        raise PnPError(f"{name}: expected a number or {{noise: [...], scale: [...], value: [...]}}, got {rule!r}")
    axes = [a for a in AXES if a in rule]
    shape = [len(rule[a]) for a in axes]
    for a in axes:
        points = [float(p) for p in rule[a]]
        if not points or points != sorted(points) or len(set(points)) != len(points):
            raise PnPError(f"{name}.{a} must be an increasing list, got {rule[a]!r}")
    value = rule["value"]
    ok = len(value) == shape[0] if len(axes) == 1 else \
        len(value) == shape[0] and all(isinstance(row, (list, tuple)) and len(row) == shape[1] for row in value)
    if not ok:
        raise PnPError(f"{name}.value must have the shape of {' x '.join(axes)} ({' x '.join(map(str, shape))})")


def evaluate(rule, noise: float = 0.0, scale: float = 1.0) -> float | str:
    """The rule's value at (noise in 0-255 units, scale); a string (a choice) is constant."""
    if isinstance(rule, str):
        return rule
    if isinstance(rule, (int, float)):
        return float(rule)
    axes = [a for a in AXES if a in rule]
    at = {"noise": float(noise), "scale": float(scale)}
    if len(axes) == 1:
        return _interp(rule[axes[0]], [float(v) for v in rule["value"]], at[axes[0]])
    rows = [_interp(rule[axes[1]], [float(v) for v in row], at[axes[1]]) for row in rule["value"]]
    return _interp(rule[axes[0]], rows, at[axes[0]])


def _interp(points, values: list[float], t: float) -> float:
    points = [float(p) for p in points]
    if t <= points[0]:
        return values[0]
    if t >= points[-1]:
        return values[-1]
    i = bisect.bisect_right(points, t)
    a, b = points[i - 1], points[i]
    return values[i - 1] + (values[i] - values[i - 1]) * (t - a) / (b - a)
