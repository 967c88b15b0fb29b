import json

import numpy as np
import pytest
from typer.testing import CliRunner

from layoutguide.cli import app

runner = CliRunner()


@pytest.fixture
def layout_file(tmp_path, two_region_layout):
    path = tmp_path / "layout.json"
    two_region_layout.to_json(path)
    return path


def test_generate_end_to_end(tiny_folder, layout_file, tmp_path):
    out = tmp_path / "img.png"
    att = tmp_path / "att"
    result = runner.invoke(
        app,
        [
            "generate",
            "--layout",
            str(layout_file),
            "--model",
            tiny_folder,
            "--method",
            "refocus",
            "--steps",
            "3",
            "--seed",
            "1",
            "--out",
            str(out),
            "--overlay",
            "--save-attention",
            str(att),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "img_overlay.png").exists()
    heatmaps = sorted(p.name for p in att.iterdir())
    assert heatmaps == ["img_region0_red_circle.png", "img_region1_blue_square.png"]


def test_generate_several_images_and_options(tiny_folder, layout_file, tmp_path):
    out = tmp_path / "x.png"
    result = runner.invoke(
        app,
        [
            "generate",
            "--layout",
            str(layout_file),
            "--model",
            tiny_folder,
            "--steps",
            "2",
            "-n",
            "2",
            "--out",
            str(out),
            "--set",
            "refocus.variant=official",
            "--set",
            "refocus.loss_scale=2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x_0.png").exists() and (tmp_path / "x_1.png").exists()


def test_guidance_interval_option(tiny_folder, layout_file, tmp_path):
    from PIL import Image

    def generate(*extra):
        out = tmp_path / f"g{len(list(tmp_path.iterdir()))}.png"
        result = runner.invoke(
            app,
            [
                "generate",
                "--layout",
                str(layout_file),
                "--model",
                tiny_folder,
                "--method",
                "none",
                "--steps",
                "3",
                "--out",
                str(out),
                "--device",
                "cpu",
                *extra,
            ],
        )
        return result, out

    (_, plain), (_, everywhere), (result, interval) = (
        generate(),
        generate("--guidance-interval", "all"),
        generate("--guidance-interval", "0,500"),
    )
    assert result.exit_code == 0, result.output
    pixels = [np.asarray(Image.open(p)) for p in (plain, everywhere, interval)]
    np.testing.assert_array_equal(pixels[0], pixels[1])  # the tiny model has no interval of its own
    assert not np.array_equal(pixels[0], pixels[2])
    for bad in ("900", "9,1", "a,b"):
        result, _ = generate("--guidance-interval", bad)
        assert result.exit_code == 2 and "--guidance-interval" in result.output and "Traceback" not in result.output


def test_bad_layout_reports_region_and_field(tiny_folder, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"prompt": "a red circle", "regions": [{"phrase": "red circle", "box": [0.5, 0.2, 0.1, 0.9]}]})
    )
    result = runner.invoke(app, ["generate", "--layout", str(bad), "--model", tiny_folder])
    assert result.exit_code == 2
    assert "region 0 ('red circle'): field 'box'" in result.output and "Traceback" not in result.output


def test_bad_option_and_phrase_errors(tiny_folder, layout_file, tmp_path):
    result = runner.invoke(
        app,
        [
            "generate",
            "--layout",
            str(layout_file),
            "--model",
            tiny_folder,
            "--steps",
            "2",
            "--set",
            "refocus.loss_scale=-3",
            "--out",
            str(tmp_path / "a.png"),
        ],
    )
    assert result.exit_code == 2 and "refocus.loss_scale" in result.output
    result = runner.invoke(
        app, ["generate", "--layout", str(layout_file), "--model", tiny_folder, "--set", "nonsense"]
    )
    assert result.exit_code == 2 and "METHOD.OPTION=VALUE" in result.output
    result = runner.invoke(
        app,
        [
            "generate",
            "--prompt",
            "a green triangle",
            "--layout",
            str(layout_file),
            "--model",
            tiny_folder,
            "--steps",
            "2",
            "--out",
            str(tmp_path / "b.png"),
        ],
    )
    assert result.exit_code == 2 and "does not occur in the prompt" in result.output


def test_missing_model_messages(tmp_path, layout_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["generate", "--layout", str(layout_file), "--model", str(tmp_path)])
    assert result.exit_code == 2 and "model_index.json" in result.output
    result = runner.invoke(app, ["generate", "--layout", str(layout_file), "--model", "someone/not-a-model"])
    assert result.exit_code == 2 and "could not be loaded from the Hugging Face hub" in result.output
    assert "Traceback" not in result.output


def test_methods_listing():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0
    assert "refocus" in result.output and "cross@L2[down,up]" in result.output and "loss_scale=1.0" in result.output


@pytest.mark.slow
def test_bench_methods_all_runs_every_method_the_model_supports(tiny_folder, tmp_path):
    from layoutguide.methods import COMBINATIONS, REGISTRY

    out = tmp_path / "bench"
    result = runner.invoke(
        app,
        [
            "bench",
            "shapes",
            "--methods",
            "all",
            "--model",
            tiny_folder,
            "--n",
            "1",
            "--steps",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["methods"]
    plain = {n for n in REGISTRY if not REGISTRY[n].needs_gated_unet and "unet" not in REGISTRY[n].unsupported_on} | {
        "zestguide+pww"
    }
    assert set(rows) == plain and "gligen" not in rows and (out / "grid.png").exists()
    assert {c for c in COMBINATIONS if "gligen" in c or "reground" in c}.isdisjoint(rows)


def test_runnable_methods_include_gligen_on_gated_unets():
    from layoutguide.methods import runnable_methods
    from layoutguide.shapes.model import ModelConfig, build_components

    gated = build_components(ModelConfig.tiny(), gated=True)["unet"]
    names = runnable_methods(gated)
    assert names[0] == "none" and {"gligen", "reground", "gligen+refocus", "reground+refocus"} <= set(names)


def test_runnable_methods_on_an_sdxl_unet_leave_out_gligen():
    # issue 20: an SDXL UNet (added text/time embeddings) runs every training-free method; GLIGEN has no SDXL weights
    from diffusers import UNet2DConditionModel

    from layoutguide.methods import runnable_methods

    sdxl = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=(2, 4),
        norm_num_groups=4,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        projection_class_embeddings_input_dim=16 + 6 * 4,
    )
    names = runnable_methods(sdxl)
    assert names[0] == "none" and {"refocus", "zestguide+pww"} <= set(names)
    assert not any("gligen" in n or "reground" in n for n in names)
    sdxl.register_to_config(addition_embed_type="image")  # added conditioning the loop cannot give
    assert runnable_methods(sdxl) == []


@pytest.mark.slow
def test_shapes_train_time_limit_is_not_inherited(tmp_path):
    """--max-minutes limits one invocation; a later `shapes train` without it must not stop early."""
    import dataclasses
    import json

    from layoutguide.shapes.model import ModelConfig
    from layoutguide.shapes.train import TrainConfig, Trainer

    run = tmp_path / "run"
    config = TrainConfig(
        vae_steps=1,
        vae_batch=2,
        unet_steps=1,
        batch=2,
        checkpoint_every=1,
        sample_every=0,
        max_minutes=1e-9,
        model=dataclasses.asdict(ModelConfig.tiny()),
    )
    Trainer(run, config, device="cpu").run()  # stops at once: its limit is already spent
    assert json.loads((run / "ckpt" / "state.json").read_text())["config"]["max_minutes"] == 1e-9
    result = runner.invoke(
        app, ["shapes", "train", "--out", str(run), "--vae-steps", "1", "--unet-steps", "2", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert (state["vae_step"], state["unet_step"], state["config"]["max_minutes"]) == (1, 2, None)
    result = runner.invoke(
        app, ["shapes", "train", "--out", str(run), "--unet-steps", "3", "--max-minutes", "1e-9", "--device", "cpu"]
    )
    assert result.exit_code == 0 and "--max-minutes" in result.output
    for bad in ("0.5,x", "1,1", "1,-1,1,1", "0,0,0,0"):
        result = runner.invoke(app, ["shapes", "train", "--out", str(run), "--object-count-weights", bad])
        assert result.exit_code == 2 and "--object-count-weights" in result.output, result.output
        assert "Traceback" not in result.output
    weights = ["shapes", "train", "--out", str(run), "--object-count-weights", "1,0,0,0", "--device", "cpu"]
    assert runner.invoke(app, [*weights, "--unet-steps", "4"]).exit_code == 0
    resumed = runner.invoke(app, ["shapes", "train", "--out", str(run), "--unet-steps", "5", "--device", "cpu"])
    assert resumed.exit_code == 0, resumed.output
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert state["unet_step"] == 5 and state["config"]["object_count_weights"] == [1.0, 0.0, 0.0, 0.0]


def test_bench_rejects_a_bad_variant_before_loading_anything(tmp_path):
    result = runner.invoke(
        app,
        [
            "bench",
            "relations",
            "--methods",
            "none,gligen+refocus[tokens=last]",
            "--model",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert "--methods" in result.output and "refocus.OPTION=VALUE" in result.output
