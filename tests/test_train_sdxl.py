"""The SDXL-architecture shapes model and its trainer, on tiny widths: SDXL's structure and conditioning, one
training step, export as a StableDiffusionXLPipeline folder, reload, resume from a checkpoint and from an export."""

import dataclasses
import json
import random

import numpy as np
import pytest
import torch

from layoutguide.errors import InputError
from layoutguide.shapes.sdxl_model import (
    SDXLModelConfig,
    build_sdxl_components,
    encode_prompts,
    size_ids,
    zero_empty_captions,
)
from layoutguide.shapes.sdxl_train import EMASampler, SDXLTrainer, init_sdxl_run, sdxl_stage1_config
from layoutguide.shapes.train import export, init_run_from_export, open_trainer

CAPTIONS = ["a red circle", "two blue squares and a yellow triangle"]


def tiny_config(**changes):
    tiny = dict(vae_steps=1, vae_batch=2, unet_steps=1, batch=2, checkpoint_every=1, sample_every=0)
    return sdxl_stage1_config(**{**tiny, "model": dataclasses.asdict(SDXLModelConfig.tiny()), **changes})


def test_unet_has_sdxl_block_structure_and_conditioning():
    config = SDXLModelConfig()  # the trained widths; building them costs no forward pass
    parts = build_sdxl_components(config)
    unet = parts["unet"]
    assert unet.config.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert unet.config.up_block_types == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    assert list(unet.config.transformer_layers_per_block)[1:] == [2, 2]  # depth > 1 in the deeper blocks
    assert len(unet.mid_block.attentions[0].transformer_blocks) == 2
    assert unet.config.addition_embed_type == "text_time" and unet.config.use_linear_projection
    widths = (parts["text_encoder"].config.hidden_size, parts["text_encoder_2"].config.hidden_size)
    assert unet.config.cross_attention_dim == sum(widths) == 128
    pooled = parts["text_encoder_2"].config.projection_dim
    assert unet.config.projection_class_embeddings_input_dim == pooled + 6 * unet.config.addition_time_embed_dim
    # the factor-2 autoencoder puts the attention on 16x16 and 8x8 for 64 px images (see the module docstring)
    assert unet.config.sample_size == 32 and config.image_size == 64
    # OpenCLIP's padding in the second tokenizer, the end token in the first; the same words either way
    t1, t2 = parts["tokenizer"], parts["tokenizer_2"]
    assert t2.pad_token == "!" and t1.pad_token == t1.eos_token
    assert t1(CAPTIONS[1]).input_ids == t2(CAPTIONS[1]).input_ids


def test_conditioning_is_what_the_diffusers_sdxl_pipeline_builds():
    from diffusers import StableDiffusionXLPipeline

    parts = build_sdxl_components(SDXLModelConfig.tiny())
    hidden, pooled = encode_prompts(
        [parts["tokenizer"], parts["tokenizer_2"]],
        [parts["text_encoder"], parts["text_encoder_2"]],
        CAPTIONS,
        torch.device("cpu"),
    )
    pipe = StableDiffusionXLPipeline(**parts)
    with torch.no_grad():
        ref_hidden, ref_neg, ref_pooled, ref_neg_pooled = pipe.encode_prompt(
            CAPTIONS, device="cpu", do_classifier_free_guidance=True
        )
    torch.testing.assert_close(hidden, ref_hidden)
    torch.testing.assert_close(pooled, ref_pooled)
    # the unconditional branch of the diffusers pipeline is zeros, which zero_empty_captions gives for ""
    empty_hidden, empty_pooled = zero_empty_captions(hidden, pooled, ["", ""], rng=None)
    torch.testing.assert_close(empty_hidden, ref_neg)
    torch.testing.assert_close(empty_pooled, ref_neg_pooled)
    ids = size_ids(2, 64, torch.device("cpu"))
    projection = parts["text_encoder_2"].config.projection_dim
    reference = pipe._get_add_time_ids((64, 64), (0, 0), (64, 64), torch.float32, projection)
    assert ids.tolist() == reference.tolist() * 2 == [[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * 2


def test_training_zeroes_only_a_share_of_the_empty_captions():
    hidden, pooled = torch.ones(400, 3, 2), torch.ones(400, 2)
    captions = ["", "a red circle"] * 200
    zh, zp = zero_empty_captions(hidden, pooled, captions, random.Random(0))
    zeroed = (zh.abs().sum((1, 2)) == 0).tolist()
    assert not any(zeroed[1::2])  # captions keep their conditioning
    assert 70 < sum(zeroed[0::2]) < 130  # about half of the 200 empty ones
    assert [bool(z) for z in zeroed] == (zp.abs().sum(1) == 0).tolist()


@pytest.mark.slow  # about 10 s: two tiny training runs, an export and a reload
def test_train_one_step_export_reload_sample_and_resume(tmp_path):
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import load_file

    run = tmp_path / "run"
    init_sdxl_run(run, tiny_config())
    with pytest.raises(FileExistsError):
        init_sdxl_run(run, tiny_config())
    trainer = open_trainer(run, device="cpu")
    assert isinstance(trainer, SDXLTrainer)
    trainer.run()
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"], state["config"]["arch"]) == (1, 1, "sdxl")
    files = sorted(p.name for p in (run / "ckpt").iterdir())
    assert "text_encoder_2.safetensors" in files and all(f.endswith((".json", ".safetensors")) for f in files)

    export(run, tmp_path / "model")
    pipe = StableDiffusionXLPipeline.from_pretrained(tmp_path / "model")
    ema = load_file(run / "ckpt" / "ema.safetensors")
    for name in ("unet", "text_encoder", "text_encoder_2"):
        for k, v in getattr(pipe, name).state_dict().items():
            torch.testing.assert_close(v, ema[f"{name}.{k}"])  # the exported weights are the EMA weights
    defaults = json.loads((tmp_path / "model" / "layoutguide.json").read_text())
    assert defaults["text_mask"] == "words" and defaults["num_inference_steps"] == 30  # the shapes model's sampling
    assert json.loads((tmp_path / "model" / "training.json").read_text())["config"]["arch"] == "sdxl"
    assert pipe.tokenizer_2.pad_token == "!"
    with pytest.raises(InputError, match="GLIGEN has no SDXL weights"):
        trainer.train_gligen(steps=1)
    with pytest.raises(InputError, match="GLIGEN"):
        export(run, tmp_path / "gligen", gligen=True)

    # the trainer's own sampler (the competence measurement before LayoutPipeline loads SDXL folders)
    sampler = EMASampler(trainer)
    both = sampler(CAPTIONS, num_inference_steps=2, seed=[5, 6]).images
    alone = sampler(CAPTIONS[1:], num_inference_steps=2, seed=[6]).images
    other = sampler(CAPTIONS[1:], num_inference_steps=2, seed=[7]).images
    assert both[0].size == (64, 64)

    def gap(a, b):
        return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).max())

    assert gap(both[1], alone[0]) <= 2 < gap(alone[0], other[0])  # an image depends on its own seed, not its batch

    # resume the run itself, one more step planned
    resumed = open_trainer(run, dataclasses.replace(trainer.config, unet_steps=2), device="cpu")
    resumed.run()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"unet"' in line]
    assert [r["step"] for r in log] == [1, 2]

    # and go on from the export, as the committed checkpoint is used
    init_run_from_export(tmp_path / "model", tmp_path / "again")
    again = open_trainer(tmp_path / "again", device="cpu")
    assert isinstance(again, SDXLTrainer)
    for k, v in again.text_encoders["text_encoder_2"].state_dict().items():
        torch.testing.assert_close(v, ema[f"text_encoder_2.{k}"])
    again = open_trainer(tmp_path / "again", dataclasses.replace(again.config, unet_steps=2), device="cpu")
    again.run()
    assert json.loads((tmp_path / "again" / "ckpt" / "state.json").read_text())["unet_step"] == 2


@pytest.mark.slow  # a few seconds: three tiny trainer builds
def test_time_limit_stops_the_autoencoder_stage_at_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    init_sdxl_run(run, tiny_config(vae_steps=3, max_minutes=1e-9))
    open_trainer(run, device="cpu").run()  # the limit is spent after the first step
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert state["vae_step"] == 1 and "scaling_factor" not in state and state["unet_step"] == 0
    assert (run / "ckpt" / "vae_optim.safetensors").exists()
    open_trainer(run, tiny_config(vae_steps=3), device="cpu").run()
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"]) == (3, 1) and state["scaling_factor"] > 0


def test_cli_init_run_arch(tmp_path):
    from typer.testing import CliRunner

    from layoutguide.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["shapes", "init-run", "--arch", "sdxl", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "r" / "ckpt" / "state.json").read_text())
    assert state["config"]["arch"] == "sdxl" and state["config"]["text_mask"] and state["unet_step"] == 0
    for args, message in (
        (["--arch", "sdxl"], "already holds a run"),
        (["--arch", "sdxl", "--from", "shapes"], "not both"),
        (["--arch", "sd3"], "--arch must be"),
    ):
        result = runner.invoke(app, ["shapes", "init-run", *args, "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_supervised_stage_trains_and_logs_its_losses(tmp_path):
    """TokenCompose's stage on the SDXL UNet: its cross-attention (the two encoders' concatenated context) is
    captured at every level and both losses train."""
    run = tmp_path / "run"
    init_sdxl_run(run, tiny_config(attn_token_weight=0.1, attn_pixel_weight=0.02, unet_steps=2, checkpoint_every=1))
    open_trainer(run, device="cpu").run()
    unet = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"unet"' in line]
    assert len(unet) == 2 and all(r["l_token"] > 0 and r["l_pixel"] > 0 for r in unet)
