"""Hostile command lines (issue #17, defects 1, 2, 6, 7, 11, 14, 19, 20, 21): one ``error:`` line and exit code 2
naming the flag, checked before a model loads, nothing written outside the folder given."""

import json
import os

import pytest
from typer.testing import CliRunner

from layoutguide.cli import app

runner = CliRunner()
NO_MODEL = "/nonexistent/model/never-loaded"  # a check that passes would fail later on this instead


@pytest.fixture
def layout_file(tmp_path, two_region_layout):
    path = tmp_path / "layout.json"
    two_region_layout.to_json(path)
    return path


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--guidance-scale", "inf"], "--guidance-scale"),
        (["--guidance-scale", "nan"], "--guidance-scale"),
        (["--steps", "0"], "--steps"),
        (["--steps", "-2"], "--steps"),
        (["-n", "0"], "-n"),
        (["--height", "0"], "--height"),
        (["--width", "-64"], "--width"),
        (["--set", "refocus.loss_scale=Infinity"], "--set"),
        (["--set", "refocus.inside_threshold=NaN"], "--set"),
        (["--device", "bogus"], "--device"),
        (["--dtype", "fp16", "--device", "cpu"], "--dtype"),
        (["--dtype", "fp8"], "--dtype"),
        (["--out", "picture.xyz"], "--out"),
        (["--out", "picture"], "--out"),
    ],
)
def test_bad_generate_options_fail_before_loading(layout_file, tmp_path, args, needle):
    os.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "--layout", str(layout_file), "--model", NO_MODEL, *args])
    one_error_line(result, needle)


def test_cuda_without_cuda_is_one_line(layout_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["generate", "--layout", str(layout_file), "--device", "cuda"])
    one_error_line(result, "--device", "not available")


def test_output_paths_are_checked_before_loading(layout_file, tmp_path):
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    one_error_line(runner.invoke(app, ["generate", "--layout", str(layout_file), "--out", str(folder)]), "folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_error_line(
        runner.invoke(app, ["generate", "--layout", str(layout_file), "--out", str(blocker / "x.png")]), "--out"
    )
    one_error_line(
        runner.invoke(app, ["generate", "--layout", str(layout_file), "--save-attention", str(blocker)]),
        "--save-attention",
    )
    one_error_line(runner.invoke(app, ["segment", "--layout", str(layout_file), "--out", str(blocker)]), "--out")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_error_line(
            runner.invoke(app, ["generate", "--layout", str(layout_file), "--out", str(locked / "x.png")]),
            "not writable",
        )


def test_malformed_layouts_and_damaged_models_are_one_line(tmp_path, tiny_folder):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prompt": "a red circle", "regions": [{"phrase": "red circle", "box": "0011"}]}))
    one_error_line(runner.invoke(app, ["generate", "--layout", str(bad)]), "box")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    one_error_line(runner.invoke(app, ["generate", "--layout", str(deep)]))


def test_truncated_safetensors_is_one_line_before_loading(tmp_path, tiny_folder):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    result = runner.invoke(app, ["generate", "--prompt", "a red circle", "--model", str(folder)])
    one_error_line(result, "truncated")


def test_an_incomplete_sdxl_folder_is_refused_at_load_time(tmp_path, tiny_folder):
    # an SD folder given a second text encoder but no second tokenizer (complete SDXL folders load: test_sdxl.py)
    import shutil

    from layoutguide.loading import UnsupportedModelError, load_pipeline

    folder = tmp_path / "sdxl"
    shutil.copytree(tiny_folder, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(
        _class_name="StableDiffusionXLPipeline", text_encoder_2=["transformers", "CLIPTextModelWithProjection"]
    )
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UnsupportedModelError, match="tokenizer_2"):
        load_pipeline(folder, device="cpu")
    one_error_line(runner.invoke(app, ["generate", "--prompt", "a red circle", "--model", str(folder)]), "tokenizer_2")


def test_library_errors_never_quote_cli_flags():
    from layoutguide.errors import InputError
    from layoutguide.loading import load_pipeline, parse_guidance_interval, pick_device

    for call in (
        lambda: parse_guidance_interval("a,b"),
        lambda: pick_device("bogus"),
        lambda: load_pipeline("/no/such"),
    ):
        with pytest.raises(Exception) as info:
            call()
        assert "--" not in str(info.value), str(info.value)
    with pytest.raises(InputError, match="float16"):
        load_pipeline(device="cpu", dtype="fp16")


def test_phrases_cannot_name_files_outside_the_attention_folder(tiny_folder, tmp_path):
    """Defect 6: '/' in a phrase crashed after generating, '../' wrote outside the folder."""
    from layoutguide.layout import Layout, Region

    prompt = "a red/blue circle and a ../../evil square"
    layout = Layout(
        prompt,
        (Region("red/blue circle", box=(0.1, 0.1, 0.4, 0.4)), Region("../../evil square", box=(0.5, 0.5, 0.9, 0.9))),
        width=64,
        height=64,
    )
    path = tmp_path / "work" / "layout.json"
    layout.to_json(path)
    att = tmp_path / "work" / "att"
    result = runner.invoke(
        app,
        [
            "generate",
            "--layout",
            str(path),
            "--model",
            tiny_folder,
            "--steps",
            "1",
            "--method",
            "none",
            "--out",
            str(tmp_path / "work" / "img.png"),
            "--save-attention",
            str(att),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in att.iterdir())
    assert names == ["img_region0_red_blue_circle.png", "img_region1_evil_square.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_layout_aspect_sets_the_default_image_size_and_flags_override_it(tiny_folder, tmp_path):
    from PIL import Image

    from layoutguide.layout import Layout, Region

    wide = Layout("a red circle", (Region("red circle", box=(0.1, 0.1, 0.4, 0.4)),), width=200, height=100)
    path = tmp_path / "wide.json"
    wide.to_json(path)
    base = ["generate", "--layout", str(path), "--model", tiny_folder, "--steps", "1", "--method", "none"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a.png"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    width, height = Image.open(tmp_path / "a.png").size
    assert width > height and width * height <= 64 * 64
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b.png"), "--height", "32", "--width", "48"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "b.png").size == (48, 32)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_instructions_is_one_note(tiny_folder, tmp_path, monkeypatch, native):
    """bf16 convolutions on an AVX2-only CPU ran 155x slower than fp32 (the slow SDXL test took CI past its limit):
    the library warns, the CLI says it in one note line and still generates."""
    import warnings

    import torch

    from layoutguide import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert loading.pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
        assert loading.pick_dtype("fp32", torch.device("cpu")) == torch.float32
    slow = [w for w in caught if issubclass(w.category, loading.SlowDtypeWarning)]
    assert len(slow) == (0 if native else 1)
    layout = tmp_path / "layout.json"
    from layoutguide.layout import Layout, Region

    Layout("a red circle", (Region("red circle", box=(0.1, 0.1, 0.5, 0.5)),), width=64, height=64).to_json(layout)
    args = ["generate", "--layout", str(layout), "--model", tiny_folder, "--steps", "1", "--method", "none"]
    result = runner.invoke(app, [*args, "--dtype", "bf16", "--device", "cpu", "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "bfloat16" in line]
    assert len(notes) == (0 if native else 1) and all(n.startswith("note: --dtype: ") for n in notes), notes
    assert "Warning" not in result.output and (tmp_path / "a.png").is_file()
