"""CARLA: OpenDRIVE maps through carla.Map (hand-written .xodr), recordings, the no-server error."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

pytest.importorskip("carla")

from cfpair.errors import DatasetFormatError  # noqa: E402
from cfpair.sources.base import get_source, load_all  # noqa: E402
from cfpair.sources.carla import (  # noqa: E402
    ActorState,
    CarlaUnavailable,
    class_of,
    connect,
    load_xodr,
    snapshots_to_scenario,
    xodr_to_map,
)
from cfpair.sources.scenario_io import save_scenario  # noqa: E402

XODR = Path(__file__).parent / "data" / "two_roads.xodr"


@pytest.fixture(scope="module")
def two_roads():  # noqa: ANN201
    return load_xodr(XODR, resolution=0.5)


def test_lane_polygons_match_the_road_geometry(two_roads) -> None:
    ids = two_roads.lane_ids
    assert ids == ("1:0:-1", "1:0:1", "2:0:-1", "2:0:1")   # the sidewalk is not drivable
    areas = [shapely.Polygon(p).area for p in two_roads.lanes]
    # straight: 60 m x 3.5 m; arc of length 30, curvature k: 30 * 3.5 * (1 -/+ k * 1.75)
    k = 0.02
    expected = [210.0, 210.0, 105.0 * (1 + k * 1.75), 105.0 * (1 - k * 1.75)]
    np.testing.assert_allclose(areas, expected, rtol=1e-3)
    assert all(shapely.Polygon(p).is_valid for p in two_roads.lanes)


def test_frame_is_right_handed_and_centrelines_follow_driving_direction(two_roads) -> None:
    right, left = two_roads.centerlines[0], two_roads.centerlines[1]
    # right-hand traffic on a road along +x: the lane driving +x lies at y < 0 in our frame
    np.testing.assert_allclose(right[[0, -1]], [[0.0, -1.75], [60.0, -1.75]], atol=1e-6)
    np.testing.assert_allclose(left[[0, -1]], [[60.0, 1.75], [0.0, 1.75]], atol=1e-6)
    # the arc turns left (counter-clockwise): its end lies at y > 0, heading arc length * k
    arc = two_roads.centerlines[2]
    r = 1 / 0.02 + 1.75
    theta = 30.0 / 50.0
    np.testing.assert_allclose(arc[-1], [60 + r * math.sin(theta), -r * math.cos(theta) + 50],
                               atol=1e-3)


def test_drivable_union_covers_the_roads_only(two_roads) -> None:
    area = shapely.union_all([shapely.Polygon(p) for p in two_roads.drivable])
    assert area.contains(shapely.Point(30, -1.0)) and area.contains(shapely.Point(30, 3.0))
    assert not area.contains(shapely.Point(30, -4.5))   # the sidewalk
    assert not area.contains(shapely.Point(30, 8.0))


def test_bad_xodr_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xodr"
    bad.write_text("<OpenDRIVE><road")
    with pytest.raises(DatasetFormatError, match="broken.xodr"):
        load_xodr(bad)
    with pytest.raises(DatasetFormatError, match="missing.xodr"):
        load_xodr(tmp_path / "missing.xodr")
    empty = '<?xml version="1.0"?><OpenDRIVE><header revMajor="1" revMinor="4"/></OpenDRIVE>'
    with pytest.raises(DatasetFormatError, match="no driving lanes"):
        xodr_to_map(empty, name="empty.xodr")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_fails_within_the_timeout_with_how_to_start_one() -> None:
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(CarlaUnavailable) as err:
        connect("127.0.0.1", port, timeout=1.0)
    assert time.monotonic() - started < 5.0
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "CarlaUE4.sh" in msg and "carla-rpc-port" in msg


def test_class_of_blueprints() -> None:
    table = {"vehicle.tesla.model3": "vehicle", "walker.pedestrian.0012": "pedestrian",
             "vehicle.bh.crossbike": "cyclist", "vehicle.harley-davidson.low_rider": "motorcycle",
             "vehicle.carlamotors.carlacola": "truck", "vehicle.mitsubishi.fusorosa": "vehicle",
             "static.prop.trafficcone01": "static", "traffic.traffic_light": "unknown"}
    assert {k: class_of(k) for k in table} == table


def _ticks(n: int = 30) -> list[list[ActorState]]:
    out = []
    for i in range(n):
        t = i * 0.1
        ego = ActorState(7, "vehicle.lincoln.mkz", 10 * t, 2.0, 0.0, 10.0, 0.0, 4.9, 2.1)
        other = ActorState(9, "walker.pedestrian.0001", 30.0, 5.0 - 1.5 * t, 90.0, 0.0, -1.5,
                           0.5, 0.5)
        out.append([ego, other] if i >= 3 else [ego])
    return out


def test_snapshots_flip_to_our_frame_and_round_trip(tmp_path: Path, two_roads) -> None:
    scn = snapshots_to_scenario("carla-test-0", 7, _ticks(), 0.1, two_roads, anchor_s=1.0)
    np.testing.assert_allclose(scn.ego.y, -2.0)   # CARLA y right -> our y left
    assert scn.agents.ids.tolist() == ["9"] and scn.agents.classes.tolist() == ["pedestrian"]
    assert not scn.agents.valid[0, :3].any() and scn.agents.valid[0, 3:].all()
    np.testing.assert_allclose(scn.agents.yaw[0, 3:], -math.pi / 2)   # CARLA yaw 90 deg (right)
    np.testing.assert_allclose(scn.agents.vy[0, 3:], 1.5)
    assert scn.ego.t[scn.anchors[0]] == pytest.approx(0.0)
    save_scenario(scn, tmp_path / "train" / "carla-test-0.npz")
    (tmp_path / "train" / "broken.npz").write_bytes(b"not a zip")
    out = list(load_all(get_source("carla", tmp_path), "train"))
    good = [o for o in out if hasattr(o, "scenario_id")]
    bad = [o for o in out if not hasattr(o, "scenario_id")]
    assert len(good) == 1 and len(bad) == 1 and "broken.npz" in bad[0].reason
    back = good[0]
    for name in ("x", "y", "yaw", "vx", "vy", "valid"):
        np.testing.assert_array_equal(getattr(back.agents, name), getattr(scn.agents, name))
    assert back.map.lane_ids == scn.map.lane_ids and back.ego_rear_to_center == 0.0


# --- crashes, libcarla exceptions, short lane sections, hostile recordings -------------------

REALDATA = next((p / "carla-towns" for p in (Path(__file__).resolve().parents[3] / "shared"
                                             / "realdata", Path("/work/shared/realdata"))
                 if (p / "carla-towns").is_dir()), None)
CRASHERS = ("Town03_v2635k.xodr", "Town03_v2635k_MINIMAL_SEGFAULT_roads16_242.xodr")


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = XODR.read_text()
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


def test_a_libcarla_crash_is_a_format_error_naming_the_file(tmp_path: Path) -> None:
    # a lane linked to a successor lane that does not exist segfaults carla.Map() (0.9.16)
    bad = _variant(tmp_path, "dangling_lane_link.xodr", '<link><successor id="-1"/></link>',
                   '<link><successor id="-7"/></link>')
    with pytest.raises(DatasetFormatError, match=r"dangling_lane_link\.xodr.*crashed \(SIG"):
        load_xodr(bad)
    assert load_xodr(XODR, resolution=0.5).lane_ids   # and this process goes on working


def test_libcarla_exceptions_are_format_errors(tmp_path: Path) -> None:
    no_centre = _variant(tmp_path, "no_centre.xodr",
                         '<center><lane id="0" type="none" level="false"/></center>', "")
    with pytest.raises(DatasetFormatError, match=r"no_centre\.xodr.*IndexError"):
        load_xodr(no_centre)
    zero = _variant(tmp_path, "zero_length.xodr", 'length="30.0" id="2"', 'length="0.0" id="2"')
    with pytest.raises(DatasetFormatError, match=r"zero_length\.xodr.*RuntimeError"):
        load_xodr(zero)


def _centre_points(text: str, step: float = 0.1) -> np.ndarray:
    """Lane-centre points an independent sampler finds: every ``step`` m, and every section's
    start and end (CARLA frame flipped to ours)."""
    import carla

    cmap = carla.Map("check", text)
    wps = list(cmap.generate_waypoints(step))
    for a, b in cmap.get_topology():
        wps += [a, b, *a.next_until_lane_end(step)[-1:]]
    return np.array([[w.transform.location.x, -w.transform.location.y] for w in wps])


def _outside(gmap, pts: np.ndarray) -> int:  # noqa: ANN001
    area = shapely.union_all([shapely.Polygon(p).buffer(0) for p in gmap.drivable])
    return int((shapely.distance(area, shapely.points(pts)) > 0.01).sum())


def test_short_lane_sections_leave_no_hole(tmp_path: Path) -> None:
    # the straight road split into sections at s = 0, 30 and 30.6: a 0.6 m section that
    # 2 m waypoint sampling never lands in
    text = XODR.read_text()
    first = text.index("<laneSection")
    end = text.index("</laneSection>", first) + len("</laneSection>")
    section = text[first:end]
    more = section + section.replace('s="0.0"', 's="30.0"') + section.replace('s="0.0"',
                                                                                's="30.6"')
    path = tmp_path / "short_section.xodr"
    path.write_text(text[:first] + more + text[end:])
    gmap = load_xodr(path, resolution=2.0)
    assert {"1:0:-1", "1:1:-1", "1:2:-1", "1:1:1"} <= set(gmap.lane_ids)
    short = gmap.centerlines[gmap.lane_ids.index("1:1:-1")]
    assert np.linalg.norm(short[-1] - short[0]) == pytest.approx(0.6, abs=1e-3)
    assert _outside(gmap, _centre_points(path.read_text())) == 0


def test_a_recording_header_of_the_wrong_type_is_a_reject(tmp_path: Path, two_roads) -> None:
    scn = snapshots_to_scenario("carla-ok", 7, _ticks(), 0.1, two_roads, anchor_s=1.0)
    good = save_scenario(scn, tmp_path / "ok.npz")
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for name, header in (("list", np.array("[1, 2]")), ("number", np.array("3")),
                         ("ints", np.arange(3)), ("counts", np.array(
                             '{"format": "cfpair-scenario/1", "map_counts": 5}'))):
        np.savez(tmp_path / f"bad_{name}.npz", **{**arrays, "header": header})
    out = list(load_all(get_source("carla", tmp_path), "all"))
    rejected = sorted(Path(o.ref.path).name for o in out if not hasattr(o, "scenario_id"))
    assert rejected == ["bad_counts.npz", "bad_ints.npz", "bad_list.npz", "bad_number.npz"]
    assert [o.scenario_id for o in out if hasattr(o, "scenario_id")] == ["carla-ok"]


@pytest.mark.skipif(REALDATA is None, reason="shared CARLA towns not present")
def test_every_shared_town_loads_with_no_lane_centre_outside() -> None:
    towns = sorted(REALDATA.rglob("*.xodr"))
    assert len(towns) >= 8
    for town in towns:
        if town.name in CRASHERS:
            with pytest.raises(DatasetFormatError, match=town.name + r".*crashed \(SIGSEGV\)"):
                load_xodr(town)
            continue
        gmap = load_xodr(town)
        assert all(shapely.Polygon(p).is_valid for p in gmap.drivable), town.name
        assert _outside(gmap, _centre_points(town.read_text(), 0.5)) == 0, town.name
