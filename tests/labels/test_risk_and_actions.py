"""Properties of the graded risk (monotone in the facts) and of the corrective meta-action
(speed change has the action's sign; a positive that stays in lane is never a lane change)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cfpair.counterfactual.frenet import RefPath
from cfpair.counterfactual.meta_action import (
    DT,
    KEEP_MPS,
    LANE_CHANGE_M,
    STOP_MPS,
    longitudinal,
    own_action,
    window_end,
)
from cfpair.labels.risk import LEVELS, RISK_TABLE, RiskFacts, grade, table_markdown
from cfpair.records.label import RiskLevel

T = 41
ttc = st.one_of(st.none(), st.floats(0.0, 10.0))


@st.composite
def risk_facts(draw: st.DrawFn) -> RiskFacts:
    return RiskFacts(contact=draw(st.booleans()), at_fault=draw(st.booleans()),
                     closing_speed_mps=draw(st.floats(0.0, 30.0)),
                     vulnerable=draw(st.booleans()), ttc_violation=draw(st.booleans()),
                     min_ttc_s=draw(ttc), min_distance_m=draw(st.floats(0.0, 50.0)),
                     offroad_s=draw(st.floats(0.0, 4.0)))


@st.composite
def worse(draw: st.DrawFn, f: RiskFacts) -> RiskFacts:
    """Facts at least as bad as ``f`` in every dimension."""
    t = f.min_ttc_s
    new_ttc = draw(st.one_of(st.none(), st.floats(0.0, 10.0))) if t is None else draw(
        st.floats(0.0, t))
    return RiskFacts(contact=f.contact or draw(st.booleans()),
                     at_fault=f.at_fault or draw(st.booleans()),
                     closing_speed_mps=f.closing_speed_mps + draw(st.floats(0.0, 10.0)),
                     vulnerable=f.vulnerable or draw(st.booleans()),
                     ttc_violation=f.ttc_violation or draw(st.booleans()),
                     min_ttc_s=new_ttc,
                     min_distance_m=f.min_distance_m * draw(st.floats(0.0, 1.0)),
                     offroad_s=f.offroad_s + draw(st.floats(0.0, 2.0)))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_risk_is_monotone_in_every_fact(data: st.DataObject) -> None:
    a = data.draw(risk_facts())
    b = data.draw(worse(a))
    assert LEVELS.index(grade(b)) >= LEVELS.index(grade(a)), (a, b)


def test_risk_table_examples_and_markdown() -> None:
    base = RiskFacts(False, False, 0.0, False, False, None, 20.0, 0.0)
    assert grade(base) == RiskLevel.none
    assert grade(base.__class__(**{**base.__dict__, "min_distance_m": 1.0})) == RiskLevel.low
    assert grade(base.__class__(**{**base.__dict__, "ttc_violation": True})) == RiskLevel.medium
    assert grade(base.__class__(**{**base.__dict__, "min_ttc_s": 0.3})) == RiskLevel.high
    hit = {**base.__dict__, "contact": True, "at_fault": True}
    assert grade(RiskFacts(**{**hit, "closing_speed_mps": 2.0})) == RiskLevel.high
    assert grade(RiskFacts(**{**hit, "closing_speed_mps": 2.0, "vulnerable": True})
                 ) == RiskLevel.critical
    assert grade(RiskFacts(**{**hit, "closing_speed_mps": 8.0})) == RiskLevel.critical
    md = table_markdown()
    assert all(f"`{lvl}`" in md for lvl, _, _ in RISK_TABLE)


def _path(curvature: float) -> RefPath:
    """A reference path: straight (0) or an arc of the given curvature, 60 m long."""
    s = np.linspace(0.0, 60.0, 121)
    if abs(curvature) < 1e-9:
        x, y = s, np.zeros_like(s)
    else:
        x, y = np.sin(curvature * s) / curvature, (1 - np.cos(curvature * s)) / curvature
    return RefPath.from_expert(x, y, 0.0)


@st.composite
def motion(draw: st.DrawFn) -> tuple[RefPath, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     float]:
    """A path-following trajectory: speed profile from random accelerations, a lateral
    offset that stays within ``bound`` of the line, on a straight or curved road."""
    k = draw(st.sampled_from([0.0, 0.02, -0.02, 0.04, -0.04]))
    v0 = draw(st.floats(0.0, 20.0))
    acc = np.array(draw(st.lists(st.floats(-6.0, 3.0), min_size=T - 1, max_size=T - 1)))
    v = np.clip(np.concatenate([[v0], v0 + np.cumsum(acc * DT)]), 0.0, 25.0)
    bound = draw(st.floats(0.0, LANE_CHANGE_M * 0.95))
    phase = draw(st.floats(0.0, 1.0))
    d = bound * np.sin(np.linspace(0, np.pi * phase, T)) ** 2
    path = _path(k)
    s = np.concatenate([[0.0], np.cumsum((v[1:] + v[:-1]) / 2 * DT)])
    x, y = path.poses(s, d)
    step = np.hypot(np.diff(x), np.diff(y))
    yaw = np.unwrap(np.arctan2(np.diff(y), np.diff(x)))
    yaw = np.where(step > 1e-6, yaw, np.nan)
    yaw = np.concatenate([[0.0], yaw])
    for i in range(1, T):          # standing still keeps the heading
        if np.isnan(yaw[i]):
            yaw[i] = yaw[i - 1]
    return path, x, y, yaw, v, bound


@settings(max_examples=200, deadline=None)
@given(motion(), st.one_of(st.none(), st.integers(0, T - 1)))
def test_speed_change_has_the_sign_of_the_longitudinal_action(m, conflict) -> None:  # noqa: ANN001
    path, x, y, yaw, v, _ = m
    end = window_end(conflict, T)
    lon = own_action(path, x, y, yaw, v, conflict).longitudinal
    dv = v[end] - v[0]
    assert lon == longitudinal(v, end)
    if lon == "accelerate":
        assert dv > KEEP_MPS
    elif lon == "decelerate":
        assert dv < -KEEP_MPS and v.min() >= STOP_MPS
    elif lon == "keep":
        assert abs(dv) <= KEEP_MPS and v.min() >= STOP_MPS
    else:
        assert lon == "stop" and v.min() < STOP_MPS and dv <= KEEP_MPS


@settings(max_examples=200, deadline=None)
@given(motion())
def test_a_positive_that_stays_in_lane_is_never_a_lane_change(m) -> None:  # noqa: ANN001
    path, x, y, yaw, v, bound = m
    lat = own_action(path, x, y, yaw, v, None).lateral
    assert not str(lat).startswith("change_lane"), (bound, lat)
    if bound < 0.4:        # on its line (a curve or not): never a nudge or a lane change
        assert lat in ("keep_lane", "turn_left", "turn_right"), (bound, lat)


def test_the_readme_documents_the_risk_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert table_markdown() in readme
