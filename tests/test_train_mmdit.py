"""The MMDiT (SD3-architecture) shapes model and its trainer on tiny widths: structure, the rectified-flow objective,
a few training steps, export as a StableDiffusion3Pipeline folder, reload through the DiT loop, generate."""

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from layoutguide.errors import InputError
from layoutguide.shapes.mmdit_model import MMDiTModelConfig, build_mmdit_components
from layoutguide.shapes.mmdit_train import MMDiTTrainer, init_mmdit_run, mmdit_stage1_config
from layoutguide.shapes.train import export, open_trainer


def tiny_config(**changes):
    tiny = dict(vae_steps=1, vae_batch=2, unet_steps=2, batch=2, checkpoint_every=1, sample_every=0)
    return mmdit_stage1_config(**{**tiny, "model": dataclasses.asdict(MMDiTModelConfig.tiny()), **changes})


def test_transformer_has_sd3_structure_on_the_shapes_grid():
    config = MMDiTModelConfig()
    parts = build_mmdit_components(config)
    transformer = parts["transformer"]
    assert type(transformer).__name__ == "SD3Transformer2DModel" and transformer.config.patch_size == 2
    assert transformer.config.sample_size == 32  # 64 px through the factor-2 autoencoder: a 16x16 token grid
    widths = parts["text_encoder"].config.hidden_size + parts["text_encoder_2"].config.hidden_size
    assert transformer.config.pooled_projection_dim == widths
    assert transformer.config.joint_attention_dim == parts["text_encoder_3"].config.d_model == config.width
    assert parts["tokenizer_2"].pad_token == "!" and parts["tokenizer_3"].model_max_length == config.t5_tokens


def test_rectified_flow_objective(tmp_path):
    trainer = MMDiTTrainer(tmp_path, tiny_config(), device="cpu")
    z0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0.0, 500.0, 1000.0])
    zt, target = trainer.noised(z0, noise, t)
    assert torch.allclose(zt[0], z0[0]) and torch.allclose(zt[2], noise[2])
    assert torch.allclose(zt[1], (z0[1] + noise[1]) / 2) and torch.allclose(target, noise - z0)
    times = trainer.training_timesteps(10_000, torch.Generator().manual_seed(0))
    assert 0 < times.min() and times.max() < 1000 and abs(float(times.median()) - 500) < 20  # logit-normal(0, 1)


def test_refuses_unet_only_stages(tmp_path):
    with pytest.raises(InputError, match="no cross-attention mask input"):
        MMDiTTrainer(tmp_path / "a", tiny_config(text_mask=True), device="cpu")
    with pytest.raises(InputError, match="no GLIGEN stage"):
        MMDiTTrainer(tmp_path / "b", tiny_config(), device="cpu").train_gligen()


def test_attention_supervision_reads_the_text_part_of_joint_attention(tmp_path):
    """TokenCompose on the MMDiT: every block's image->CLIP-column maps are recorded with their graph, shaped as a
    UNet's cross-attention, and the grounding losses move the attention projections (not only the output)."""
    from layoutguide.attention import AttentionStore, recording
    from layoutguide.shapes.train import attention_grounding_loss, grounding_targets
    from layoutguide.shapes.world import make_scene

    trainer = MMDiTTrainer(tmp_path, tiny_config(attn_token_weight=0.1, attn_pixel_weight=0.02), device="cpu")
    scenes = [make_scene(i) for i in range(2)]
    captions = [scene.caption for scene in scenes]
    transformer = trainer.unet
    side = transformer.config.sample_size
    zt = torch.randn(2, transformer.config.in_channels, side, side)
    store = AttentionStore()
    index, masks, valid = grounding_targets(trainer.tokenizer, scenes, captions)
    assert valid.any()
    with trainer.text_attention_capture(store):  # the losses read the maps inside, as the training step does
        with recording(store, cfg=False, step=0):
            trainer.denoise(zt, torch.tensor([300.0, 700.0]), captions)
        assert len(store.maps) == len(transformer.transformer_blocks)
        grid = (side // transformer.config.patch_size) ** 2
        heads = transformer.config.num_attention_heads
        for probs in store.maps.values():
            assert probs.shape == (2, heads, grid, trainer.tokenizer.model_max_length)
            assert torch.allclose(probs.sum(-1), torch.ones(()))  # renormalised over the CLIP columns
        l_token, l_pixel = attention_grounding_loss(store.maps, store.layers, store.latent_hw, index, masks, valid)
        (l_token + l_pixel).backward()
    to_q = transformer.transformer_blocks[0].attn.to_q.weight
    assert to_q.grad is not None and to_q.grad.abs().sum() > 0
    assert all(p.processor.__class__.__name__ != "JointCaptureProcessor" for p in _attention_modules(transformer))


def test_supervised_stage_trains_and_logs_its_losses(tmp_path):
    run = tmp_path / "run"
    init_mmdit_run(run, tiny_config(attn_token_weight=0.1, attn_pixel_weight=0.02))
    open_trainer(run, device="cpu").run()
    unet = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"unet"' in line]
    assert len(unet) == 2 and all(r["l_token"] > 0 and r["l_pixel"] > 0 for r in unet)


def test_a_run_goes_on_from_an_export(tmp_path):
    """``shapes init-run --from EXPORT`` on the MMDiT's SD3 folder: its transformer, three text encoders and EMA
    become the new run's weights, the step count and recipe carry over, and training resumes."""
    from safetensors.torch import load_file

    from layoutguide.shapes.train import init_run_from_export

    run, folder, next_run = tmp_path / "run", tmp_path / "model", tmp_path / "next"
    init_mmdit_run(run, tiny_config())
    open_trainer(run, device="cpu").run()
    export(run, folder)
    init_run_from_export(folder, next_run)
    resumed = open_trainer(next_run, device="cpu")
    assert isinstance(resumed, MMDiTTrainer) and resumed.state["unet_step"] == 2
    exported = load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(resumed.unet.state_dict()[k], v) for k, v in exported.items())
    t5 = load_file(folder / "text_encoder_3" / "model.safetensors")
    assert all(torch.equal(resumed.text_encoders["text_encoder_3"].state_dict()[k], v) for k, v in t5.items())
    resumed.config = dataclasses.replace(resumed.config, unet_steps=3)
    resumed.run()
    assert resumed.state["unet_step"] == 3


def _attention_modules(transformer):
    return [block.attn for block in transformer.transformer_blocks]


@pytest.mark.slow
def test_train_export_reload_generate(tmp_path):
    from layoutguide.backbones.dit_families import LayoutSD3Pipeline
    from layoutguide.cli import app
    from layoutguide.loading import load_pipeline

    run, folder = tmp_path / "run", tmp_path / "model"
    init_mmdit_run(run, tiny_config())
    trainer = open_trainer(run, device="cpu")
    assert isinstance(trainer, MMDiTTrainer)
    trainer.run()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    unet_losses = [r["loss"] for r in log if r["stage"] == "unet"]
    assert len(unet_losses) == 2 and all(map(torch.isfinite, torch.tensor(unet_losses)))
    trainer.sample_grid(tmp_path / "grid.png", n=2, steps=2)
    assert (tmp_path / "grid.png").exists()
    export(run, folder)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusion3Pipeline"
    pipe = load_pipeline(folder, device="cpu")
    assert isinstance(pipe, LayoutSD3Pipeline) and pipe.native_size == 64
    layout = tmp_path / "layout.json"
    regions = [{"phrase": "red circle", "box": [0, 0, 0.5, 0.5]}, {"phrase": "blue square", "box": [0.5, 0.5, 1, 1]}]
    layout.write_text(json.dumps({"prompt": "a red circle and a blue square", "regions": regions}))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        app,
        ["generate", "--model", str(folder), "--layout", str(layout), "--method", "regional+refocus"]
        + ["--steps", "2", "--out", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    resumed = open_trainer(run, device="cpu")
    assert resumed.state["unet_step"] == 2 and resumed.config.arch == "mmdit"


def _finished_autoencoder_run(run, config):
    """A run folder whose autoencoder stage is done (its weights random: only their shapes matter here)."""
    from types import SimpleNamespace

    from safetensors.torch import save_file

    from layoutguide.shapes.model import build_vae

    (run / "ckpt").mkdir(parents=True)
    vae = build_vae(SimpleNamespace(**config.model)).state_dict()
    save_file({k: v.contiguous() for k, v in vae.items()}, str(run / "ckpt" / "vae.safetensors"))
    state = {
        "vae_step": config.vae_steps,
        "unet_step": 7,
        "scaling_factor": 1.25,
        "config": dataclasses.asdict(config),
    }
    (run / "ckpt" / "state.json").write_text(json.dumps(state))
    return vae


def test_autoencoder_from_another_run_skips_the_stage(tmp_path):
    from safetensors.torch import load_file

    source, run = tmp_path / "source", tmp_path / "run"
    vae = _finished_autoencoder_run(source, tiny_config(vae_steps=5))
    init_mmdit_run(run, tiny_config(vae_steps=3), autoencoder_from=source)
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert state["vae_step"] == 3 and state["unet_step"] == 0 and state["scaling_factor"] == 1.25
    trainer = open_trainer(run, device="cpu")
    assert trainer.vae.config.scaling_factor == 1.25
    assert all(torch.equal(trainer.vae.state_dict()[k], v) for k, v in vae.items())
    trainer.train_vae()  # the stage is done: nothing trains, nothing is rewritten
    assert all(torch.equal(load_file(run / "ckpt" / "vae.safetensors")[k], v) for k, v in vae.items())


def test_autoencoder_from_refuses_unfinished_or_unfitting_sources(tmp_path):
    source = tmp_path / "source"
    _finished_autoencoder_run(source, tiny_config())
    state = json.loads((source / "ckpt" / "state.json").read_text())
    wider = dataclasses.asdict(dataclasses.replace(MMDiTModelConfig.tiny(), vae_channels=(16, 32)))
    with pytest.raises(InputError, match="does not fit this run's"):
        init_mmdit_run(tmp_path / "a", tiny_config(model=wider), autoencoder_from=source)
    assert not (tmp_path / "a" / "ckpt").exists()  # nothing written for a refused source
    (source / "ckpt" / "state.json").write_text(json.dumps({**state, "vae_step": 0}))
    with pytest.raises(InputError, match="has not finished its autoencoder stage"):
        init_mmdit_run(tmp_path / "b", tiny_config(), autoencoder_from=source)
    with pytest.raises(InputError, match="neither a training run"):
        init_mmdit_run(tmp_path / "c", tiny_config(), autoencoder_from=tmp_path)


def test_cli_autoencoder_from_errors_are_one_line(tmp_path):
    from layoutguide.cli import app

    result = CliRunner().invoke(
        app,
        ["shapes", "init-run", "--arch", "mmdit", "--out", str(tmp_path / "r"), "--autoencoder-from", str(tmp_path)],
    )
    assert result.exit_code != 0 and "--autoencoder-from:" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(
        app,
        ["shapes", "init-run", "--from", "shapes", "--out", str(tmp_path / "s"), "--autoencoder-from", str(tmp_path)],
    )
    assert result.exit_code != 0 and "goes with --arch" in result.output
