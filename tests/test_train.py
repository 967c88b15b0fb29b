"""The shapes trainer, a few steps on the tiny widths: stages, resume, safetensors-only checkpoints, export."""

import dataclasses
import json

import pytest

from layoutguide.pipeline import LayoutPipeline
from layoutguide.shapes.model import ModelConfig
from layoutguide.shapes.train import TrainConfig, Trainer, export


@pytest.mark.slow
def test_train_resume_export_and_gligen(tmp_path, two_region_layout):
    config = TrainConfig(vae_steps=2, vae_batch=2, unet_steps=3, batch=2, checkpoint_every=1, sample_every=0, model=dataclasses.asdict(ModelConfig.tiny()))
    run = tmp_path / "run"
    trainer = Trainer(run, dataclasses.replace(config, unet_steps=2), device="cpu")
    trainer.run()
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"]) == (2, 2) and state["scaling_factor"] > 0
    assert sorted(p.suffix for p in (run / "ckpt").iterdir()) == [".json"] + [".safetensors"] * 6  # no pickles

    resumed = Trainer(run, config, device="cpu")  # same run, one more step planned
    resumed.run()
    assert json.loads((run / "ckpt" / "state.json").read_text())["unet_step"] == 3
    assert len([l for l in (run / "log.jsonl").read_text().splitlines() if '"unet"' in l]) == 3  # steps 1, 2, then 3 only

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
