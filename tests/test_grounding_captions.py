"""Colour-less captions for the GLIGEN stage (the description-omission variant): the captions, their mix, the
trainer and CLI options that use them."""

import dataclasses
import json
import random

import pytest
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.shapes.grounding_captions import colourless_caption, stage_captions
from layoutguide.shapes.model import ModelConfig
from layoutguide.shapes.train import TrainConfig, Trainer
from layoutguide.shapes.world import COLOURS, Scene, ShapeObject, make_scene


def _scene(*kinds):
    boxes = [(16 * i, 0, 16 * i + 12, 12) for i in range(len(kinds))]
    return Scene(seed=0, objects=tuple(ShapeObject(colour, shape, box) for (colour, shape), box in zip(kinds, boxes)))


def test_colourless_caption_counts_shapes_across_colours_and_names_no_colour():
    scene = _scene(("red", "circle"), ("blue", "square"), ("green", "circle"))
    assert scene.caption == "a red circle, a blue square and a green circle"
    assert colourless_caption(scene) == "two circles and a square"
    assert colourless_caption(_scene(("red", "triangle"))) == "a triangle"
    for seed in range(200):
        words = set(colourless_caption(make_scene(seed)).replace(",", " ").split())
        assert not words & set(COLOURS)


def test_stage_captions_keep_the_shipped_draws_at_share_zero_and_drop_colours_at_share_one():
    scenes = [make_scene(seed) for seed in range(64)]
    shipped_rng = random.Random(3)
    shipped = ["" if shipped_rng.random() < 0.25 else sc.caption for sc in scenes]
    assert stage_captions(scenes, 0.25, 0.0, random.Random(3), random.Random(5)) == shipped
    all_colourless = stage_captions(scenes, 0.25, 1.0, random.Random(3), random.Random(5))
    assert [c == "" for c in all_colourless] == [c == "" for c in shipped]  # the null captions do not move
    assert all(c == colourless_caption(sc) for c, sc in zip(all_colourless, scenes) if c)
    mixed = stage_captions(scenes, 0.0, 0.5, random.Random(3), random.Random(5))
    n_colourless = sum(c == colourless_caption(sc) for c, sc in zip(mixed, scenes))
    assert 16 <= n_colourless <= 48 and sum(c == sc.caption for c, sc in zip(mixed, scenes)) == 64 - n_colourless
    with pytest.raises(ValueError, match="colourless_share"):
        stage_captions(scenes, 0.0, 1.5, random.Random(3), random.Random(5))


def test_stage_captions_null_share_empties_captions_beside_the_colourless_ones():
    scenes = [make_scene(seed) for seed in range(200)]
    captions = stage_captions(scenes, 0.0, 0.3, random.Random(3), random.Random(5), null_share=0.5)
    kinds = [
        "null" if not c else "colourless" if c == colourless_caption(sc) else "whole"
        for c, sc in zip(captions, scenes)
    ]
    assert all(c == sc.caption for c, sc, k in zip(captions, scenes, kinds) if k == "whole")
    shares = {k: kinds.count(k) / len(kinds) for k in ("null", "colourless", "whole")}
    assert (
        abs(shares["null"] - 0.5) < 0.1 and abs(shares["colourless"] - 0.3) < 0.1 and abs(shares["whole"] - 0.2) < 0.1
    )
    assert stage_captions(scenes, 0.0, 0.0, random.Random(3), random.Random(5), null_share=1.0) == [""] * 200
    with pytest.raises(ValueError, match="at most 1"):
        stage_captions(scenes, 0.0, 0.6, random.Random(3), random.Random(5), null_share=0.5)


@pytest.mark.slow
def test_gligen_stage_trains_on_colourless_captions_and_records_the_share(tmp_path, monkeypatch):
    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=1,
        batch=2,
        p_uncond=0.0,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    trainer = Trainer(tmp_path / "run", config, device="cpu")
    trainer.run()
    seen: list[str] = []
    encode = trainer.encode_text
    monkeypatch.setattr(
        trainer, "encode_text", lambda captions, encoder=None: seen.extend(captions) or encode(captions, encoder)
    )
    trainer.train_gligen(steps=2, batch=3, colourless_captions=1.0)
    assert len(seen) == 6 and all(c and not set(c.replace(",", " ").split()) & set(COLOURS) for c in seen)
    state = json.loads((tmp_path / "run" / "ckpt" / "state.json").read_text())
    assert state["gligen_config"]["colourless_captions"] == 1.0 and state["gligen_step"] == 2
    seen.clear()
    trainer.train_gligen(steps=3, batch=3, null_captions=1.0)  # goes on with another mix: a new recipe stage
    assert seen == [""] * 3
    state = json.loads((tmp_path / "run" / "ckpt" / "state.json").read_text())
    assert state["gligen_config"]["null_captions"] == 1.0
    assert [(st["until_gligen_step"], st["config"]["colourless_captions"]) for st in state["gligen_stages"]] == [
        (2, 1.0)
    ]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--gligen-colourless-captions", "1.5", "--gligen-colourless-captions must be a share in [0, 1]"),
        ("--gligen-gate-lr-scale", "0", "--gligen-gate-lr-scale must be positive"),
        ("--gligen-null-captions", "-0.1", "--gligen-null-captions must be a share"),
        ("--gligen-batch", "0", "--gligen-batch must be at least 1"),
    ],
)
def test_shapes_train_rejects_bad_gligen_stage_options_in_one_line(tmp_path, flag, value, message):
    result = CliRunner().invoke(app, ["shapes", "train", "--out", str(tmp_path / "run"), flag, value])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # refused before anything is written
