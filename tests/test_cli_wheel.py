"""The built wheel, installed (not editable) into a fresh venv, carries its prompts: the LLM
labeler loads them, asks a dead server and falls back to rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sources(dest: Path) -> None:
    """The repository's files (tracked and new, not ignored) copied to ``dest``."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("needs a git checkout to list the package files")
    for rel in listed.stdout.splitlines():
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.slow
def test_wheel_install_loads_prompts_and_falls_back(tmp_path: Path):
    pytest.importorskip("setuptools")
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    _sources(src)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("cfpair-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cfpair/labels/prompts/v1/system.md" in names
    assert "cfpair/labels/prompts/v1/user.md" in names

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; "
                                   "print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # install the wheel (no deps) into the fresh venv, then let it see this venv's dependencies
    # (a plain path line: this venv's editable-install hooks are not processed there)
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True,
                          text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    (purelib / "cfpair-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    where = subprocess.run([str(py), "-c", "import cfpair.labels.prompt as p; "
                            "print(p.PROMPTS_DIR)"], capture_output=True, text=True, env=env,
                           cwd=run_dir, timeout=120)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout

    r = subprocess.run([str(py), "-m", "cfpair", "generate", "--labeler", "openai", "--model",
                        "tiny", "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0",
                        "--request-timeout", "2", "--llm-cache", "none", "--source-option",
                        "n_scenes=3", "--n-candidates", "16", "--workers", "1", "--out",
                        str(run_dir / "out")], capture_output=True, text=True, env=env,
                       cwd=run_dir, timeout=300)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "fallback:" in text and "failures" in text, text
    bad = subprocess.run([str(py), "-m", "cfpair", "generate", "--labeler", "openai", "--model",
                          "tiny", "--prompt-version", "v9", "--out", str(run_dir / "o2")],
                         capture_output=True, text=True, env=env, cwd=run_dir, timeout=120)
    assert bad.returncode == 2 and "known versions ['v1']" in bad.stderr, bad.stderr
