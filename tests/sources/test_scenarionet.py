"""ScenarioNet source on writer-made fixtures: both converter styles, every folder layout,
conventions (ego size, rear axle, velocities, anchors), and hostile files as rejects."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

from cfpair.errors import ConfigError, DatasetFormatError, SceneRejected
from cfpair.sources.base import Rejected, get_source, load_all
from cfpair.sources.scenarionet import ScenarioNetSource
from cfpair.sources.scenarionet_writer import combine, description, write_index, write_scenario
from cfpair.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def scenes():  # noqa: ANN201
    src = SyntheticSource(n_scenes=6, seed=11)
    return [src.load(r) for r in src.list("all")]


def _union(polys) -> shapely.Geometry:  # noqa: ANN001
    return shapely.union_all([shapely.Polygon(p).buffer(0) for p in polys])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, scenes):  # noqa: ANN001, ANN201
    """nuScenes-style with a summary, Waymo-style with a mapping only, a bare folder of 0.pkl,
    1.pkl, and a combined dataset pointing into a nested part."""
    root = tmp_path_factory.mktemp("scenarionet")
    a = [write_scenario(description(s, "nuscenes", f"scene-{i:04d}"), root / "nuscenes")
         for i, s in enumerate(scenes[:2])]
    write_index(root / "nuscenes", a, mapping=False)
    b = [write_scenario(description(s, "waymo", f"w{i}"), root / "waymo") for i, s in
         enumerate(scenes[2:4])]
    write_index(root / "waymo", b, summary=False)
    for i, s in enumerate(scenes[4:5]):
        write_scenario(description(s, "waymo", f"bare{i}"), root / "bare", f"{i}.pkl")
    part = root / "combined" / "parts" / "p0"
    write_scenario(description(scenes[5], "nuscenes", "scene-0100"), part)
    combine(root / "combined", [part])
    return root


def test_lists_every_layout_without_opening_scenarios(dataset, monkeypatch) -> None:
    import cfpair.sources.scenarionet as sn

    opened: list[str] = []
    real = sn.safe_load
    monkeypatch.setattr(sn, "safe_load", lambda p: opened.append(Path(p).name) or real(p))
    refs = ScenarioNetSource(dataset).list("train")
    assert [r.scenario_id for r in refs] == [
        "bare/0", "combined/parts/p0/sd_scene-0100", "nuscenes/sd_scene-0000",
        "nuscenes/sd_scene-0001", "waymo/sd_w0", "waymo/sd_w1"]
    assert set(opened) <= {"dataset_summary.pkl", "dataset_mapping.pkl"}
    # a split naming a sub-folder lists only it
    assert [r.scenario_id for r in ScenarioNetSource(dataset).list("waymo")] == [
        "waymo/sd_w0", "waymo/sd_w1"]


def test_nuscenes_style_round_trip(dataset, scenes) -> None:
    src = ScenarioNetSource(dataset)
    ref = next(r for r in src.list("nuscenes") if r.scenario_id.endswith("0000"))
    s, orig = src.load(ref), scenes[0]
    assert s.source == "scenarionet/nuscenes" and s.meta["dataset"] == "nuscenes"
    # the swapped 1.73 x 4.08-style size is corrected and the correction recorded
    assert (s.ego_length, s.ego_width) == pytest.approx((orig.ego_length, orig.ego_width))
    assert "swapped" in s.meta["ego_size_correction"]
    # rear-axle poses: the box centre comes back where it was
    cx, cy = s.ego_box_centre()
    ox, oy = orig.ego_box_centre()
    np.testing.assert_allclose(cx, ox, atol=1e-9)
    np.testing.assert_allclose(cy, oy, atol=1e-9)
    assert s.meta["ego_reference"] == "rear axle"
    # lane polygons are used as given; the drivable area matches the scene's
    assert s.meta["map"]["lanes_with_polygon"] == len(orig.map.lanes)
    want, got = _union(orig.map.drivable), _union(s.map.drivable)
    assert want.symmetric_difference(got).area < 0.02 * want.area
    # 2 s history and 4 s future at the 10 Hz rate, 1 s apart
    assert s.anchors == (20, 30) and s.dt == pytest.approx(0.1)


def test_waymo_style_builds_the_drivable_area_from_polylines(dataset, scenes) -> None:
    src = ScenarioNetSource(dataset)
    s = src.load(src.list("waymo")[0])
    orig = scenes[2]
    assert s.meta["map"]["lanes_with_polygon"] == 0
    assert s.meta["map"]["lanes_from_width"] + s.meta["map"]["lanes_from_default_width"] == \
        len(orig.map.centerlines)
    assert s.meta["ego_reference"] == "box centre" and s.ego_rear_to_center == 0.0
    want, got = _union(orig.map.drivable), _union(s.map.drivable)
    assert want.intersection(got).area > 0.95 * want.area   # road edges close the outline
    # every logged ego box centre lies on the rebuilt drivable area
    assert shapely.intersects_xy(got, s.ego.x, s.ego.y).all()
    # agent classes and sizes survive
    assert sorted(s.agents.classes.tolist()) == sorted(orig.agents.classes.tolist())
    np.testing.assert_allclose(sorted(s.agents.length), sorted(orig.agents.length))


def test_velocities_come_from_positions_not_the_stored_forward_difference(dataset) -> None:
    src = ScenarioNetSource(dataset)
    ref = src.list("waymo")[0]
    s = src.load(ref)
    stored = ScenarioNetSource(dataset, velocity="stored").load(ref)
    # the stored last-step velocity is zero; the derived one is the log's real speed
    assert stored.ego.speed[-1] == 0.0 and s.ego.speed[-1] > 1.0
    mid = slice(1, -1)
    central = np.gradient(s.ego.x, s.ego.t)[mid]
    np.testing.assert_allclose(s.ego.vx[mid], central, atol=1e-9)
    assert "central differences" in s.meta["velocity_source"]


def test_route_is_inferred_from_the_logged_path(dataset, scenes) -> None:
    src = ScenarioNetSource(dataset)
    s = src.load(src.list("nuscenes")[0])
    orig = scenes[0]
    assert s.meta["map"]["route"].startswith("inferred")
    route_ids = {i for i, f in zip(s.map.lane_ids, s.map.on_route, strict=True) if f}
    assert route_ids == {i for i, f in zip(orig.map.lane_ids, orig.map.on_route, strict=True)
                         if f}


def _bad(root: Path, name: str, payload: object) -> None:
    (root / name).write_bytes(pickle.dumps(payload))


def test_hostile_and_broken_files_are_rejects_naming_the_file(tmp_path, scenes) -> None:
    good = description(scenes[0], "waymo", "good")
    write_scenario(good, tmp_path)
    _bad(tmp_path, "not_a_dict.pkl", [1, 2, 3])
    (tmp_path / "truncated.pkl").write_bytes(pickle.dumps(good)[:200])
    _bad(tmp_path, "no_sdc.pkl", {**good, "metadata": {**good["metadata"], "sdc_id": "x"}})
    short = description(scenes[0], "waymo", "short")
    for tr in short["tracks"].values():
        tr["state"] = {k: v[:30] for k, v in tr["state"].items()}
    short["metadata"]["ts"] = short["metadata"]["ts"][:30]
    _bad(tmp_path, "short.pkl", short)
    jumpy = description(scenes[0], "waymo", "jumpy")
    jumpy["metadata"]["ts"] = [0.0, *np.cumsum(np.r_[0.1, 0.5, [0.1] * 68]).tolist()]
    _bad(tmp_path, "jumpy.pkl", jumpy)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    out = list(load_all(get_source("scenarionet", tmp_path), "all"))
    rejected = {Path(r.ref.path).name: r.reason for r in out if isinstance(r, Rejected)}
    assert [o.scenario_id for o in out if not isinstance(o, Rejected)] == ["sd_good"]
    assert set(rejected) == {"not_a_dict.pkl", "truncated.pkl", "no_sdc.pkl", "short.pkl",
                             "jumpy.pkl", "evil.pkl"}
    for name, reason in rejected.items():
        assert name in reason, reason
    assert "not allowed" in rejected["evil.pkl"] and "no_anchor" in rejected["short.pkl"]
    assert "sdc_id" in rejected["no_sdc.pkl"] and "uniform" in rejected["jumpy.pkl"]


def test_a_malformed_agent_is_dropped_and_counted(tmp_path, scenes) -> None:
    sd = description(scenes[0], "waymo", "odd")
    first = next(k for k in sd["tracks"] if k != sd["metadata"]["sdc_id"])
    sd["tracks"][first]["state"]["position"] = np.zeros((3, 3))
    write_scenario(sd, tmp_path)
    s = ScenarioNetSource(tmp_path).load(ScenarioNetSource(tmp_path).list("all")[0])
    assert s.agents.n == scenes[0].agents.n - 1
    assert sum(s.meta["agents_dropped"].values()) == 1


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_nothing_outside_the_root_is_read(tmp_path, scenes) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_scenario(description(scenes[0], "waymo", "secret"), outside)
    write_scenario(description(scenes[1], "waymo", "inside"), root / "a")
    (root / "a" / "link.pkl").symlink_to(outside / "sd_secret.pkl")
    (root / "a" / "loop").symlink_to(root / "a")   # walked once, not 16 levels deep
    (root / "b").mkdir()
    with open(root / "b" / "dataset_mapping.pkl", "wb") as fh:
        pickle.dump({"sd_secret.pkl": "../../outside"}, fh)
    refs = ScenarioNetSource(root).list("all")
    out = list(load_all(ScenarioNetSource(root), "all"))
    ok = [o for o in out if not isinstance(o, Rejected)]
    bad = [o for o in out if isinstance(o, Rejected)]
    assert [o.scenario_id for o in ok] == ["a/sd_inside"] and len(refs) == 3
    assert len(bad) == 2 and all("outside the dataset root" in b.reason for b in bad)
    assert {Path(b.ref.path).name for b in bad} == {"link.pkl", "sd_secret.pkl"}
    assert all(b.reason.count(b.ref.path) == 1 for b in bad)   # the file named once


def test_bad_options_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError):
        ScenarioNetSource(tmp_path, velocity="guess")
    with pytest.raises(ConfigError):
        ScenarioNetSource(tmp_path, anchor_every_s=0)
    with pytest.raises(DatasetFormatError):
        ScenarioNetSource(tmp_path / "missing")
    assert issubclass(SceneRejected, Exception)


def test_cli_generates_and_validates_on_fixtures(dataset, tmp_path) -> None:
    out = tmp_path / "out"
    run = [sys.executable, "-m", "cfpair"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.run([*run, "generate", "--source", "scenarionet", "--root", str(dataset),
                        "--out", str(out), "--workers", "1", "--candidates", "64"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    # two anchors in each 7 s scene; a late anchor may have no safe candidate, nothing else
    assert counts["scenes"] == 6 and counts["pairs"] + counts["rejected"] == 12
    assert counts["pairs"] >= 10
    assert set(counts["rejects_by_reason"]) <= {"no_safe_candidate"}
    v = subprocess.run([*run, "validate", str(out)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert v.returncode == 0 and v.stdout.strip().endswith("valid"), v.stdout + v.stderr
    from cfpair.records.shards import load_records
    recs = load_records(out)
    notes = {r.provenance.source: dict(n.split(": ", 1) for n in r.provenance.source_notes)
             for r in recs}
    # what the reader guessed or corrected reaches every record (issue 17: "written in it")
    assert "swapped" in notes["scenarionet/nuscenes"]["ego_size_correction"]
    assert notes["scenarionet/nuscenes"]["ego_reference"] == "rear axle"
    assert all("velocity_source" in n for n in notes.values())


def test_garbage_anywhere_in_a_description_is_a_format_error(scenes) -> None:
    """Every key (4 levels deep) of a Waymo-style description replaced by a wrong type: the
    loader returns a valid Scenario or raises a CfpairError, nothing else."""
    import copy

    from cfpair.errors import CfpairError
    from cfpair.sources.scenarionet_tracks import LoadOptions, scenario_from_description

    sd = description(scenes[4], "waymo", "fuzz")
    paths: list[tuple] = []

    def walk(d: object, pre: tuple) -> None:
        if isinstance(d, dict) and len(pre) < 4:
            for k, v in d.items():
                paths.append((*pre, k))
                walk(v, (*pre, k))

    walk(sd, ())
    outcomes = {"ok": 0, "error": 0}
    for path in paths:
        for junk in (None, [[1, 2], [3]], np.array(["a", "b"])):
            bad = copy.deepcopy(sd)
            node = bad
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = junk
            try:
                scenario_from_description(bad, Path("fuzz.pkl"), "fuzz", LoadOptions())
                outcomes["ok"] += 1
            except CfpairError as exc:
                assert "fuzz.pkl" in str(exc) or isinstance(exc, SceneRejected), exc
                outcomes["error"] += 1
    assert outcomes["error"] > 20 and outcomes["ok"] > 20


def test_a_merge_beside_its_parts_lists_each_scenario_once(tmp_path, scenes) -> None:
    # scenarionet.merge -d root/merged --from root/a root/b writes '../a' mappings
    for part, sc in (("a", scenes[0]), ("b", scenes[1])):
        write_index(tmp_path / part, [write_scenario(description(sc, "waymo", part),
                                                     tmp_path / part)])
    combine(tmp_path / "merged", [tmp_path / "a", tmp_path / "b"])
    mapping = pickle.loads((tmp_path / "merged" / "dataset_mapping.pkl").read_bytes())
    assert mapping == {"sd_a.pkl": "../a", "sd_b.pkl": "../b"}
    src = ScenarioNetSource(tmp_path)
    assert [r.scenario_id for r in src.list("all")] == ["a/sd_a", "b/sd_b"]
    merged = src.list("merged")   # the merged folder alone, its parts reached through '..'
    assert [r.scenario_id for r in merged] == ["a/sd_a", "b/sd_b"]
    assert all(src.load(r).agents.n == sc.agents.n for r, sc in zip(merged, scenes[:2],
                                                                     strict=True))
    # with --root at the merged folder itself the parts lie outside: rejects, not reads
    bad = list(load_all(ScenarioNetSource(tmp_path / "merged"), "all"))
    assert len(bad) == 2 and all(isinstance(b, Rejected) and "outside the dataset root"
                                 in b.reason for b in bad)


def test_open_outline_pieces_bound_lanes_without_polygon_or_width() -> None:
    """Argoverse 2 style: a lane with zero widths and the drivable outline as open
    ``boundary_<n>`` pieces 2.5 m to its left and 1.2 m to its right."""
    from cfpair.sources.scenarionet_map import build_map

    xs = np.linspace(0, 40, 41)
    lane = np.stack([xs, np.zeros_like(xs)], 1)
    feats = {"lane": {"type": "LANE_SURFACE_STREET", "polyline": lane,
                      "width": np.zeros((41, 2), np.float32)},
             "boundary_00": {"type": "ROAD_LINE_SOLID_SINGLE_WHITE",
                             "polyline": lane[:20] + [0, 2.5]},
             "boundary_020": {"type": "ROAD_LINE_SOLID_SINGLE_WHITE",
                              "polyline": lane[20:] + [0, 2.5]},
             "boundary_10": {"type": "ROAD_LINE_SOLID_SINGLE_WHITE",
                             "polyline": lane + [0, -1.2]}}
    built = build_map(feats, lane[5:30], np.zeros(25))
    poly = shapely.Polygon(built.geometry.lanes[0])
    assert built.notes["lanes_from_default_width"] == 1 and built.notes["outline_faces"] == 0
    # both sides reach the outline where it runs alongside; the one-segment gap between the
    # two left pieces (x 19..20) falls back to the default half width (1.85 m)
    assert poly.contains(shapely.Point(10, 2.4)) and poly.contains(shapely.Point(10, -1.1))
    assert not poly.contains(shapely.Point(10, -1.3))
    assert built.geometry.on_route.tolist() == [True]
