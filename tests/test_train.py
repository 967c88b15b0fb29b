"""The shapes trainer, a few steps on the tiny widths: stages, resume, safetensors-only checkpoints, export."""

import dataclasses
import json

import pytest

from layoutguide.pipeline import LayoutPipeline
from layoutguide.shapes.model import ModelConfig
from layoutguide.shapes.train import TrainConfig, Trainer, export, init_run_from_export


@pytest.mark.slow
def test_train_resume_export_and_gligen(tmp_path, two_region_layout):
    config = TrainConfig(
        vae_steps=2,
        vae_batch=2,
        unet_steps=3,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    run = tmp_path / "run"
    trainer = Trainer(run, dataclasses.replace(config, unet_steps=2), device="cpu")
    trainer.run()
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"]) == (2, 2) and state["scaling_factor"] > 0
    assert sorted(p.suffix for p in (run / "ckpt").iterdir()) == [".json"] + [".safetensors"] * 6  # no pickles

    resumed = Trainer(run, config, device="cpu")  # same run, one more step planned
    resumed.run()
    assert json.loads((run / "ckpt" / "state.json").read_text())["unet_step"] == 3
    assert (
        len([line for line in (run / "log.jsonl").read_text().splitlines() if '"unet"' in line]) == 3
    )  # steps 1, 2, then 3 only

    resumed.train_gligen(steps=2, batch=2)
    assert json.loads((run / "ckpt" / "state.json").read_text())["gligen_step"] == 2

    export(run, tmp_path / "model")
    export(run, tmp_path / "gligen", gligen=True)
    plain = LayoutPipeline.from_pretrained(tmp_path / "model")
    gated = LayoutPipeline.from_pretrained(tmp_path / "gligen")
    assert gated.unet.config.attention_type == "gated" and plain.unet.config.attention_type == "default"
    out = gated(layout=two_region_layout, method="reground+refocus", num_inference_steps=2, progress=False)
    assert out.images[0].size == (64, 64)
    assert json.loads((tmp_path / "model" / "training.json").read_text())["unet_step"] == 3

    # a fine-tune stage on a restarted schedule keeps the earlier stage's recipe in the export
    Trainer(run, dataclasses.replace(config, unet_steps=4, schedule_start=3, lr=1e-4), device="cpu").train_unet()
    export(run, tmp_path / "model")
    recipe = json.loads((tmp_path / "model" / "training.json").read_text())
    assert recipe["unet_step"] == 4 and recipe["config"]["lr"] == 1e-4
    assert [(s["until_unet_step"], s["config"]["lr"], s["config"]["schedule_start"]) for s in recipe["stages"]] == [
        (3, config.lr, 0)
    ]


def test_caption_token_targets_cover_colour_and_shape_words():
    from layoutguide.shapes.model import build_tokenizer
    from layoutguide.shapes.train import caption_token_targets
    from layoutguide.shapes.world import make_scene

    tokenizer = build_tokenizer()
    for seed in range(40):
        scene = make_scene(seed, n_objects=(1, 4))
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(scene.caption).input_ids)
        targets = caption_token_targets(tokenizer, scene)
        groups = {(o.colour, o.shape) for o in scene.objects}
        assert len(targets) == 2 * len(groups)
        for (colour_tok, colour_mask), (shape_tok, shape_mask) in zip(targets[::2], targets[1::2]):
            colour, noun = tokens[colour_tok].removesuffix("</w>"), tokens[shape_tok].removesuffix("</w>")
            assert shape_tok == colour_tok + 1 and (colour_mask == shape_mask).all()
            members = [
                m for o, m in zip(scene.objects, scene.masks()) if o.colour == colour and noun.startswith(o.shape)
            ]
            assert members and (colour_mask == sum(m.astype(int) for m in members).astype(bool)).all()


def test_attention_grounding_loss_is_zero_inside_masks_and_one_outside():
    import torch

    from layoutguide.attention import LayerInfo
    from layoutguide.shapes.train import attention_grounding_loss

    layers = {"l": LayerInfo("l", "down", "cross", 1)}
    masks = torch.zeros(1, 1, 4, 4)
    masks[0, 0, :2, :2] = 1  # top-left quarter
    index, valid = torch.tensor([[3]]), torch.tensor([[True]])
    probs = torch.full((1, 2, 16, 77), 1 / 77)
    inside = probs.clone()
    inside[..., 3] = 0
    inside[:, :, [0, 1, 4, 5], 3] = 0.5  # token 3's attention only on the quarter
    outside = probs.clone()
    outside[..., 3] = 0
    outside[:, :, [10, 11, 14, 15], 3] = 0.5
    l_in, p_in = attention_grounding_loss({"l": inside}, layers, (4, 4), index, masks, valid)
    l_out, p_out = attention_grounding_loss({"l": outside}, layers, (4, 4), index, masks, valid)
    assert l_in.item() == pytest.approx(0.0, abs=1e-6) and l_out.item() == pytest.approx(1.0)
    assert p_in < 1e-3 < p_out
    none = attention_grounding_loss({"l": outside}, layers, (4, 4), index, masks, torch.tensor([[False]]))
    assert none[0].item() == 0.0  # unused slots (empty captions) contribute nothing


@pytest.mark.slow
def test_attention_supervision_trains_and_logs(tmp_path):
    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=2,
        batch=3,
        checkpoint_every=1,
        sample_every=0,
        attn_token_weight=1.0,
        attn_pixel_weight=0.1,
        text_mask=True,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    Trainer(tmp_path, config, device="cpu").run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"unet"' in line]
    assert len(records) == 2 and all(0 <= r["l_token"] <= 1 and r["l_pixel"] > 0 for r in records)


@pytest.mark.slow
def test_exported_models_are_resumable_checkpoints(tmp_path):
    import torch
    from safetensors.torch import load_file

    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=2,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    first = Trainer(tmp_path / "run", config, device="cpu")
    first.run()
    first.train_gligen(steps=1, batch=2)
    export(tmp_path / "run", tmp_path / "gligen", gligen=True)
    init_run_from_export(tmp_path / "gligen", tmp_path / "again")
    with pytest.raises(FileExistsError):
        init_run_from_export(tmp_path / "gligen", tmp_path / "again")
    state = json.loads((tmp_path / "again" / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"], state["gligen_step"]) == (1, 2, 1)
    ema = load_file(tmp_path / "run" / "ckpt" / "ema.safetensors")
    resumed = Trainer(tmp_path / "again", dataclasses.replace(config, unet_steps=3), device="cpu")
    for k, v in resumed.unet.state_dict().items():
        torch.testing.assert_close(v, ema[f"unet.{k}"])  # the export's (EMA) weights, now the live ones
    resumed.run()
    resumed.train_gligen(steps=2, batch=2)
    state = json.loads((tmp_path / "again" / "ckpt" / "state.json").read_text())
    assert (state["unet_step"], state["gligen_step"]) == (3, 2)


@pytest.mark.slow
def test_gligen_stage_diagnostic_options(tmp_path):
    """attn_gate_init starts a fresh GLIGEN stage's attention gates there (dense gates stay at GLIGEN's zero) and
    is ignored on resume; min_timestep restricts the noise levels and is range-checked."""
    from safetensors.torch import load_file

    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=1,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    trainer = Trainer(tmp_path, config, device="cpu")
    trainer.run()
    trainer.train_gligen(steps=1, batch=2, lr=1e-8, attn_gate_init=0.5, min_timestep=900)
    gates = load_file(tmp_path / "ckpt" / "gligen.safetensors")
    attn = [float(v) for k, v in gates.items() if k.endswith("alpha_attn")]
    dense = [float(v) for k, v in gates.items() if k.endswith("alpha_dense")]
    assert attn and all(abs(a - 0.5) < 1e-3 for a in attn) and all(abs(d) < 1e-3 for d in dense)
    trainer.train_gligen(steps=2, batch=2, lr=1e-8, attn_gate_init=0.9)  # resumed: no re-initialisation
    attn = [
        float(v) for k, v in load_file(tmp_path / "ckpt" / "gligen.safetensors").items() if k.endswith("alpha_attn")
    ]
    assert all(abs(a - 0.5) < 1e-3 for a in attn)
    with pytest.raises(ValueError, match="min_timestep"):
        trainer.train_gligen(steps=3, batch=2, min_timestep=5000)


def test_grounding_attention_loss_reads_visual_rows_and_grounding_columns():
    """The GLIGEN-stage supervision: grounding token k's attention from the visual tokens, against box k."""
    import torch

    from layoutguide.attention import AttentionStore, LayerInfo
    from layoutguide.methods.gligen import MAX_OBJECTS
    from layoutguide.shapes.gligen_stage import grounding_attention_loss

    store = AttentionStore()
    store.layers, store.latent_hw = {"f": LayerInfo("f", "down", "grounding", 1)}, (4, 4)
    n = 16
    boxes = torch.zeros(1, 2, 8, 8)
    boxes[0, 0, :4, :4] = 1  # object 0: top-left quarter of the canvas
    boxes[0, 1, 4:, 4:] = 1  # object 1: bottom-right quarter
    probs = torch.full((1, 2, n + MAX_OBJECTS, n + MAX_OBJECTS), 1e-4)
    top_left, bottom_right = [0, 1, 4, 5], [10, 11, 14, 15]
    probs[:, :, top_left, n + 0] = 0.5  # grounding token 0 drawn from its box only
    probs[:, :, bottom_right, n + 1] = 0.5
    probs[:, :, n:, :] = 0.3  # the grounding tokens' own rows must not count
    store.maps = {"f": probs}
    valid = torch.zeros(1, MAX_OBJECTS, dtype=torch.bool)
    valid[0, :2] = True
    right, right_pixel = grounding_attention_loss(store, boxes, valid)
    store.maps = {"f": probs[..., [*range(n), n + 1, n + 0, *range(n + 2, n + MAX_OBJECTS)]]}  # tokens swapped
    wrong, wrong_pixel = grounding_attention_loss(store, boxes, valid)
    assert right.item() < 1e-3 and wrong.item() > 0.99 and right_pixel < wrong_pixel
    store.maps = {"f": probs}
    assert grounding_attention_loss(store, boxes, torch.zeros_like(valid))[0].item() == 0.0  # null grounding: no loss


@pytest.mark.slow
def test_gligen_stage_grounding_supervision_trains_logs_and_is_recorded(tmp_path):
    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=1,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    trainer = Trainer(tmp_path / "run", config, device="cpu")
    trainer.run()
    trainer.train_gligen(
        steps=2, batch=3, p_drop=0.0, grounding_token_weight=1.0, grounding_pixel_weight=0.1, position_code=True
    )
    records = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"gligen"' in line
    ]
    assert len(records) == 2 and all(0 < r["g_token"] <= 1 and r["g_pixel"] > 0 for r in records)
    with pytest.raises(ValueError, match="position_code=True"):
        trainer.train_gligen(steps=3, batch=3)  # resuming without the code the stage was trained with
    export(tmp_path / "run", tmp_path / "gligen", gligen=True)
    recipe = json.loads((tmp_path / "gligen" / "training.json").read_text())
    assert (
        recipe["gligen_config"]["grounding_token_weight"] == 1.0
        and recipe["gligen_config"]["position_code"]
        and recipe["gligen_step"] == 2
    )
    pipe = LayoutPipeline.from_pretrained(tmp_path / "gligen")
    assert (
        pipe.method_with_defaults("gligen").options.position_code
        and pipe.method_with_defaults("reground").options.position_code
    )


@pytest.mark.slow
def test_gligen_stage_phrase_grounding_is_exported(tmp_path):
    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=1,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    trainer = Trainer(tmp_path / "run", config, device="cpu")
    trainer.run()
    with pytest.raises(ValueError, match="grounding_text"):
        trainer.train_gligen(steps=1, batch=2, grounding_text="noun")
    trainer.train_gligen(steps=1, batch=2, p_drop=0.0, position_code=True)  # head nouns first, as the shipped stage
    export(tmp_path / "run", tmp_path / "head", gligen=True)
    assert (
        LayoutPipeline.from_pretrained(tmp_path / "head").method_with_defaults("gligen").options.grounding_text
        == "head"
    )
    trainer.train_gligen(
        steps=2, batch=2, p_drop=0.0, position_code=True, grounding_text="phrase"
    )  # then whole phrases
    export(tmp_path / "run", tmp_path / "phrase", gligen=True)
    recipe = json.loads((tmp_path / "phrase" / "training.json").read_text())
    assert recipe["gligen_config"]["grounding_text"] == "phrase"
    # the head-noun steps are kept in the recipe's history, and a run started from the export keeps it too
    assert [(st["until_gligen_step"], st["config"]["grounding_text"]) for st in recipe["gligen_stages"]] == [
        (1, "head")
    ]
    init_run_from_export(tmp_path / "phrase", tmp_path / "again")
    assert (
        json.loads((tmp_path / "again" / "ckpt" / "state.json").read_text())["gligen_stages"]
        == recipe["gligen_stages"]
    )
    pipe = LayoutPipeline.from_pretrained(tmp_path / "phrase")
    assert {pipe.method_with_defaults(m).options.grounding_text for m in ("gligen", "reground")} == {"phrase"}


def test_object_count_weights_draw_scene_sizes_deterministically():
    import random
    from collections import Counter

    from layoutguide.shapes.train import render_batch

    seeds = list(range(600))
    _, _, uniform = render_batch(seeds, 0.0, random.Random(0), 4)
    _, captions, single = render_batch(seeds, 0.0, random.Random(1), 4, [1.0, 0.0, 0.0, 0.0])
    _, _, leaning = render_batch(seeds, 0.0, random.Random(2), 4, [0.4, 0.2, 0.2, 0.2])
    assert {len(s.objects) for s in single} == {1} and all(c.startswith("a ") for c in captions)
    counts = Counter(len(s.objects) for s in leaning)
    assert 0.33 < counts[1] / len(seeds) < 0.47 and set(counts) == {1, 2, 3, 4}
    # uniform draws, but a failed placement redraws the count, so small scenes are a little over a quarter
    assert 0.2 < Counter(len(s.objects) for s in uniform)[1] / len(seeds) < 0.36
    # seeded by the scene: the same seeds give the same scenes whatever the batch's random state
    _, _, again = render_batch(seeds[:50], 0.0, random.Random(99), 4, [0.4, 0.2, 0.2, 0.2])
    assert [s.objects for s in again] == [s.objects for s in leaning[:50]]
