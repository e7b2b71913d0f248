"""Perturbation operators: each turns the expert's speed profile into a candidate speed profile
v(t) and a lateral offset profile d(t) along the expert's path.

Operators are registered by name and take keyword parameters; ``DEFAULT_VARIANTS`` is the fixed
set every scene gets, ``random_variant`` draws more (speed operator x lateral operator). Speeds
are m/s at the future steps t (s); offsets are metres to the left of the expert path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cfpair.types import F64

LANE_WIDTH = 3.5
MAX_SPEED = 40.0


@dataclass(frozen=True)
class OpInput:
    """What operators see: future times t (T,), the expert's speed along its path v_exp (T,)."""

    t: F64
    v_exp: F64

    @property
    def v0(self) -> float:
        """Speed at the anchor."""
        return float(self.v_exp[0])


Operator = Callable[..., tuple[F64, F64]]
OPERATORS: dict[str, Operator] = {}
KIND: dict[str, str] = {}


def register(name: str, kind: str) -> Callable[[Operator], Operator]:
    """Add an operator to the registry; kind is 'longitudinal', 'lateral' or 'both'."""
    def deco(fn: Operator) -> Operator:
        OPERATORS[name] = fn
        KIND[name] = kind
        return fn
    return deco


def smoothstep(x: F64) -> F64:
    """0 -> 1 with zero slope at both ends."""
    x = np.minimum(np.maximum(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _keep(inp: OpInput) -> F64:
    return np.zeros_like(inp.t)


def _clip_v(v: F64) -> F64:
    return np.minimum(np.maximum(v, 0.0), MAX_SPEED)


@register("expert", "both")
def expert(inp: OpInput) -> tuple[F64, F64]:
    """The logged future unchanged."""
    return inp.v_exp.copy(), _keep(inp)


@register("speed_scale", "longitudinal")
def speed_scale(inp: OpInput, factor: float) -> tuple[F64, F64]:
    """Drive the expert's path with every speed multiplied by ``factor`` (ramped in over 1 s)."""
    ramp = smoothstep(inp.t / 1.0)
    return _clip_v(inp.v_exp * (1 + (factor - 1) * ramp)), _keep(inp)


@register("delayed_brake", "longitudinal")
def delayed_brake(inp: OpInput, delay: float) -> tuple[F64, F64]:
    """The expert's speed changes happen ``delay`` seconds late (a late reaction)."""
    v = np.interp(inp.t - delay, inp.t, inp.v_exp, left=inp.v0)
    return _clip_v(v), _keep(inp)


@register("no_brake", "longitudinal")
def no_brake(inp: OpInput) -> tuple[F64, F64]:
    """Braking is missing: never slower than the anchor speed."""
    return _clip_v(np.maximum(inp.v_exp, inp.v0)), _keep(inp)


@register("hard_brake", "longitudinal")
def hard_brake(inp: OpInput, start: float, decel: float) -> tuple[F64, F64]:
    """Follow the expert until ``start``, then brake at ``decel`` (m/s^2, negative) to a stop."""
    vb = float(np.interp(start, inp.t, inp.v_exp))
    v = np.where(inp.t < start, inp.v_exp, vb + decel * (inp.t - start))
    return _clip_v(np.minimum(v, np.where(inp.t < start, np.inf, vb))), _keep(inp)


@register("accelerate", "longitudinal")
def accelerate(inp: OpInput, accel: float) -> tuple[F64, F64]:
    """The expert's profile plus ``accel`` m/s^2 of extra acceleration."""
    return _clip_v(inp.v_exp + accel * inp.t), _keep(inp)


@register("lateral_offset", "lateral")
def lateral_offset(inp: OpInput, offset: float, ramp: float) -> tuple[F64, F64]:
    """Shift ``offset`` metres sideways (left +) over ``ramp`` seconds and stay there."""
    return inp.v_exp.copy(), offset * smoothstep(inp.t / ramp)


@register("lane_change", "lateral")
def lane_change(inp: OpInput, direction: float, duration: float) -> tuple[F64, F64]:
    """Change one lane (3.5 m) left (+1) or right (-1) over ``duration`` seconds."""
    return inp.v_exp.copy(), direction * LANE_WIDTH * smoothstep(inp.t / duration)


@register("swerve", "lateral")
def swerve(inp: OpInput, offset: float, duration: float) -> tuple[F64, F64]:
    """Out ``offset`` metres and back within ``duration`` seconds."""
    phase = np.clip(inp.t / duration, 0.0, 1.0)
    return inp.v_exp.copy(), offset * np.sin(np.pi * phase) ** 2


@register("turn_rate", "lateral")
def turn_rate(inp: OpInput, rate: float) -> tuple[F64, F64]:
    """An extra constant yaw rate ``rate`` (rad/s) at the anchor speed: d = kappa * s^2 / 2."""
    s = np.concatenate([[0.0], np.cumsum((inp.v_exp[1:] + inp.v_exp[:-1]) / 2
                                          * np.diff(inp.t))])
    kappa = rate / max(inp.v0, 2.0)
    return inp.v_exp.copy(), np.clip(0.5 * kappa * s**2, -2.5 * LANE_WIDTH, 2.5 * LANE_WIDTH)


@register("lattice", "both")
def lattice(inp: OpInput, target: float, offset: float, accel: float = 2.0,
            decel: float = -4.0) -> tuple[F64, F64]:
    """Reach speed ``target`` as fast as the accel/decel allow and offset ``offset`` over 3 s."""
    dv = target - inp.v0
    reach = inp.v0 + np.clip(dv, decel * inp.t, accel * inp.t)
    return _clip_v(reach), offset * smoothstep(inp.t / 3.0)


def _grid(name: str, **axes: list[float]) -> list[tuple[str, dict[str, float]]]:
    keys = list(axes)
    mesh = np.meshgrid(*[np.asarray(axes[k], float) for k in keys], indexing="ij")
    return [(name, {k: float(m.flat[i]) for k, m in zip(keys, mesh, strict=True)})
            for i in range(mesh[0].size)]


#: the fixed variants (name, params) every scene gets, after the expert; lattice targets are
#: fractions of max(v0, 5 m/s) and are resolved per scene
DEFAULT_VARIANTS: list[tuple[str, dict[str, float]]] = [
    *_grid("speed_scale", factor=[0.5, 0.7, 0.85, 1.15, 1.3, 1.5]),
    *_grid("delayed_brake", delay=[0.5, 1.0, 1.5, 2.0]),
    ("no_brake", {}),
    *_grid("hard_brake", start=[0.0, 0.5, 1.0, 1.5], decel=[-3.0, -5.0, -8.0]),
    *_grid("accelerate", accel=[0.5, 1.0, 2.0, 3.0]),
    *_grid("lateral_offset", offset=[-2.5, -1.75, -1.0, -0.5, 0.5, 1.0, 1.75, 2.5],
           ramp=[1.5, 3.0]),
    *_grid("lane_change", direction=[-1.0, 1.0], duration=[2.5, 4.0]),
    *_grid("swerve", offset=[-2.0, -1.0, 1.0, 2.0], duration=[2.0, 3.0]),
    *_grid("turn_rate", rate=[-0.3, -0.2, -0.1, -0.05, 0.05, 0.1, 0.2, 0.3]),
    *_grid("lattice", target=[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
           offset=[-3.5, -1.75, -0.9, 0.0, 0.9, 1.75, 3.5]),
]

_RANDOM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "speed_scale": {"factor": (0.4, 1.6)},
    "delayed_brake": {"delay": (0.2, 2.5)},
    "hard_brake": {"start": (0.0, 2.0), "decel": (-8.0, -2.0)},
    "accelerate": {"accel": (0.2, 3.0)},
    "lateral_offset": {"offset": (-3.0, 3.0), "ramp": (1.0, 4.0)},
    "swerve": {"offset": (-2.5, 2.5), "duration": (1.5, 4.0)},
    "turn_rate": {"rate": (-0.35, 0.35)},
}


def random_variant(rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
    """A speed operator composed with a lateral operator, parameters drawn uniformly."""
    lon = [n for n in _RANDOM_RANGES if KIND[n] == "longitudinal"]
    lat = [n for n in _RANDOM_RANGES if KIND[n] == "lateral"]
    a, b = lon[rng.integers(len(lon))], lat[rng.integers(len(lat))]
    pa = {k: round(float(rng.uniform(*r)), 3) for k, r in _RANDOM_RANGES[a].items()}
    pb = {k: round(float(rng.uniform(*r)), 3) for k, r in _RANDOM_RANGES[b].items()}
    return "compose", {"lon": a, "lon_params": pa, "lat": b, "lat_params": pb}


def apply(name: str, params: dict[str, Any], inp: OpInput) -> tuple[F64, F64]:
    """Speed and offset profiles of one variant (``compose`` takes v from one, d from another)."""
    if name == "compose":
        v, _ = OPERATORS[params["lon"]](inp, **params["lon_params"])
        _, d = OPERATORS[params["lat"]](inp, **params["lat_params"])
        return v, d
    if name == "lattice":
        ref = max(inp.v0, 5.0)
        params = dict(params, target=params["target"] * ref)
    return OPERATORS[name](inp, **params)
