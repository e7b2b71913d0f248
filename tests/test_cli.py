"""The real CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys

from cfpair import __version__


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cfpair", *args], capture_output=True,
                          text=True, timeout=120)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cfpair {__version__}"
    r = run("--help")
    assert r.returncode == 0 and "bench-geometry" in r.stdout


def test_bench_geometry_reports_rates():
    r = run("bench-geometry", "-k", "32", "-n", "8", "-t", "11")
    assert r.returncode == 0, r.stderr
    assert "K=32 candidates x N=8 agents x T=11 steps" in r.stdout
    assert "trajectories/s" in r.stdout and "swept" in r.stdout


def test_bad_option_is_a_clear_error():
    r = run("bench-geometry", "-k", "0")
    assert r.returncode != 0
    assert "--candidates" in r.stderr or "-k" in r.stderr
