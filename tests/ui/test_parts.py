"""The UI's pieces through their public functions, without a browser: editor <-> layout, the per-box check, the
option form's schema, the run file's command, the caps. (Layout file formats: tests/test_layout_files.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from transformers import CLIPTokenizer

from layoutguide.layout import Layout, Region
from layoutguide.loading import SHIPPED_MODEL, model_defaults
from layoutguide.ui import annotate
from layoutguide.ui.jobs import GenerationRequest
from layoutguide.ui.limits import LimitError, Limits
from layoutguide.ui.options import changed_options, method_choices, option_fields

LAYOUT = Layout(
    "a red circle and a blue square",
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer.from_pretrained(SHIPPED_MODEL / "tokenizer")


def test_editor_value_round_trips_the_boxes_within_a_display_pixel():
    value = annotate.annotation_from_layout(LAYOUT)
    assert value["image"].shape == (512, 512, 3)
    regions = annotate.regions_from_annotation(value)
    assert [r.phrase for r in regions] == LAYOUT.phrases
    assert np.allclose([r.box for r in regions], LAYOUT.boxes, atol=1 / 512)


def test_editor_boxes_drawn_backwards_or_off_the_canvas_are_ordered_and_clipped():
    value = {
        "image": np.zeros((100, 200, 3), np.uint8),
        "boxes": [{"xmin": 150, "ymin": 90, "xmax": 20, "ymax": -5, "label": "x"}],
    }
    (region,) = annotate.regions_from_annotation(value)
    assert region.box == pytest.approx((0.1, 0.0, 0.75, 0.9))


def test_check_names_the_offending_box_with_the_library_text(tokenizer):
    regions = [Region("red circle", box=(0.1, 0.1, 0.4, 0.4)), Region("green star", box=(0.5, 0.5, 0.9, 0.9))]
    regions.append(
        annotate.regions_from_annotation(
            {"image": np.zeros((8, 8, 3)), "boxes": [{"xmin": 1, "ymin": 1, "xmax": 4, "ymax": 4, "label": ""}]}
        )[0]
    )
    check = annotate.check_layout(LAYOUT.prompt, regions, 64, 64, tokenizer)
    assert check.regions[0] is None
    assert check.regions[1].startswith("region 1: phrase 'green star' does not occur in the prompt")
    assert check.regions[2].startswith("region 2: field 'phrase' is empty")
    assert not check.ok and check.layout is None
    assert annotate.check_layout("", regions[:1], 64, 64).layout.startswith("layout: field 'prompt' is empty")


def test_mask_layers_become_masked_regions_at_the_model_canvas():
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[100:300, 50:200, 3] = 255
    empty = np.zeros((512, 512, 4), np.uint8)
    regions = annotate.regions_from_layers([layer, empty], ["red circle", "blue square"], 64, 64)
    assert [r.phrase for r in regions] == ["red circle"]  # the unpainted layer is skipped
    mask = regions[0].mask
    assert mask.shape == (64, 64) and mask[20, 10] and not mask[5, 5] and mask.sum() == pytest.approx(25 * 19, rel=0.1)


def test_option_fields_carry_bounds_choices_and_the_models_calibrated_defaults():
    fields = {f.key: f for f in option_fields("refocus", model_defaults(SHIPPED_MODEL))}
    assert fields["refocus.loss_scale"].default == 10.0  # layoutguide.json, not the schema's 1.0
    assert fields["refocus.loss_scale"].minimum == 0 and fields["refocus.loss_scale"].exclusive_minimum
    assert fields["refocus.tokens"].kind == "choice" and fields["refocus.tokens"].choices == ("all", "last")
    assert fields["refocus.sar"].kind == "bool"
    combo = {f.method for f in option_fields("zestguide+pww[pww.weight=0.2]")}
    assert combo == {"zestguide", "pww"}


def test_changed_options_keep_only_what_differs_from_the_shown_default():
    fields = option_fields("refocus", model_defaults(SHIPPED_MODEL))
    values = {"refocus.loss_scale": 10.0, "refocus.tokens": "last", "refocus.level": 0.0, "refocus.resolution": None}
    assert changed_options(fields, values) == {"refocus": {"tokens": "last"}}
    assert {f.name: f.kind for f in fields if f.name in ("resolution", "grounding_until")} == {
        "resolution": "int",
        "grounding_until": "int",
    }


def test_an_untouched_text_option_is_not_sent():
    # zestguide's resolutions (a tuple, unset by default) is a text box showing "": a page that fired its change
    # event without an edit sent "" and the job failed ("zestguide.resolutions: Input should be a valid tuple")
    fields = option_fields("zestguide", model_defaults(SHIPPED_MODEL))
    text = {f.key: f for f in fields if f.kind == "text"}
    assert "zestguide.resolutions" in text and text["zestguide.resolutions"].default is None
    assert changed_options(fields, {"zestguide.resolutions": ""}) == {}
    assert changed_options(fields, {"zestguide.resolutions": "16"}) == {"zestguide": {"resolutions": "16"}}


def test_every_registered_method_and_combination_is_offered():
    from layoutguide.methods import COMBINATIONS, REGISTRY

    choices = method_choices()
    assert set(REGISTRY) <= set(choices) and set(COMBINATIONS) <= set(choices)


def test_run_command_states_every_setting():
    request = GenerationRequest(
        LAYOUT,
        method="refocus",
        options={"refocus": {"tokens": "last", "sar": False}},
        seed=3,
        steps=7,
        guidance_scale=2.5,
        images=2,
    )
    assert request.command() == (
        "layoutguide generate --layout layout.json --method refocus --seed 3 --steps 7 --guidance-scale 2.5 -n 2 "
        "--out image.png --set refocus.sar=false --set refocus.tokens=last"
    )
    assert request.method_options() == {"tokens": "last", "sar": False}


def test_limits_refuse_with_the_field_and_the_cap():
    limits = Limits(max_regions=2, max_steps=10, max_images=2, upload_bytes=100)
    with pytest.raises(LimitError, match="at most 2"):
        limits.check_regions(3)
    with pytest.raises(LimitError, match="steps: 11; give 1 to 10"):
        limits.check_sampling(11, 1)
    with pytest.raises(LimitError, match="images per prompt: 3"):
        limits.check_sampling(5, 3)
    with pytest.raises(LimitError, match="up to 100 bytes"):
        limits.check_upload(101, "big.json")
    limits.check_sampling(10, 2)  # at the caps is fine


def test_ui_command_with_a_bad_model_folder_prints_one_line(tmp_path):
    from typer.testing import CliRunner

    from layoutguide.cli import app

    result = CliRunner().invoke(app, ["ui", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "model_index.json" in result.output and "Traceback" not in result.output
