"""Shared test helpers: shapely polygons from boxes, random box generators."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def box_polygons(x, y, yaw, length, width) -> np.ndarray:
    """shapely Polygons for boxes (shapes broadcast), built from cfpair's corners."""
    from cfpair.geometry.boxes import box_corners

    return shapely.polygons(box_corners(x, y, yaw, length, width))


def random_boxes(rng: np.random.Generator, n: int, spread: float = 6.0):
    """n random boxes: centres in [-spread, spread]^2, any yaw, sizes 0.5-6 x 0.3-3 m."""
    return (rng.uniform(-spread, spread, n), rng.uniform(-spread, spread, n),
            rng.uniform(-np.pi, np.pi, n), rng.uniform(0.5, 6.0, n), rng.uniform(0.3, 3.0, n))


def rigid_xy(x, y, ang: float, tx: float, ty: float):
    """Rotate points by ang about the origin, then translate by (tx, ty)."""
    c, s = np.cos(ang), np.sin(ang)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return c * x - s * y + tx, s * x + c * y + ty


def move_box(b, ang: float, tx: float, ty: float):
    """A box tuple (x, y, yaw, length, width) moved rigidly."""
    x, y, yaw, length, width = b
    mx, my = rigid_xy(x, y, ang, tx, ty)
    return (mx, my, np.asarray(yaw) + ang, length, width)


def move_seq(b, ang: float, tx: float, ty: float):
    """A BoxSeq moved rigidly."""
    mx, my = rigid_xy(b.x, b.y, ang, tx, ty)
    return b._replace(x=mx, y=my, yaw=np.asarray(b.yaw) + ang)


def small_run_config(out: Path, n_scenes: int = 24,
                     splits: tuple[str, ...] = ("train", "val", "test")):
    """A small synthetic generate config (rules labels) used by render and export tests."""
    from cfpair.config import GenerateConfig

    return GenerateConfig(out=str(out), source_options={"n_scenes": n_scenes}, n_candidates=64,
                          shard_size=4, workers=1, splits=splits)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished output folder of 24 synthetic scenes (train, val, test); do not modify."""
    from cfpair.pipeline import generate

    out = tmp_path_factory.mktemp("small_run") / "out"
    generate(small_run_config(out))
    return out


@pytest.fixture(scope="session")
def tokenizer():
    """A small local tokenizer with a chat template that understands content parts (images
    as <|image|>), so TRL's chat-template helpers run without downloading a model."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "<|image|>", "<|system|>", "<|user|>", "<|assistant|>",
             "<|end|>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="<|end|>")
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
        "{% for p in m['content'] %}{% if p['type'] == 'image' %}<|image|>"
        "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return fast
