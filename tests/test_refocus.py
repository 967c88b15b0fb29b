import pytest
import torch

from layoutguide.layout import Layout, Region
from layoutguide.methods import get_method
from layoutguide.methods.base import StepPlan, gaussian_smooth, normalized_token_maps
from layoutguide.methods.refocus import SCHEDULES, RefocusOptions, car_official, car_paper, reference_plan
from layoutguide.testing import guide_losses


def test_official_schedule_on_50_steps():
    plans = {i: reference_plan(i, 50, SCHEDULES["official"]) for i in range(50)}
    active = {i: p[1] for i, p in plans.items() if p}
    assert active == {
        0: (4, 2),
        1: (4, 2),
        2: (4, 6),
        3: (4, 6),
        4: (4, 6),
        5: (3, 3),
        6: (3, 3),
        7: (3, 3),
        8: (3, 3),
        9: (3, 3),
        10: (3, 2),
        15: (3, 2),
        20: (1, 2),
        25: (1, 2),
        30: (1, 2),
        35: (1, 2),
    }


def test_schedule_maps_other_step_counts_to_the_reference_grid():
    # 25 steps: step i covers reference steps [2i, 2i+2): 15 falls in step 7, 35 in step 17
    guided = {i: p[0] for i in range(25) if (p := reference_plan(i, 25, SCHEDULES["official"]))}
    assert guided == {0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 7: 15, 10: 20, 12: 25, 15: 30, 17: 35}
    # 100 steps: reference step k is hit once, at step 2k
    guided = {i: p[0] for i in range(100) if (p := reference_plan(i, 100, SCHEDULES["official"]))}
    assert sorted(guided.values()) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 35] and guided[20] == 10


def test_v1_schedule():
    assert [reference_plan(i, 50, SCHEDULES["v1"])[1] for i in (0, 9, 10, 19, 20, 29)] == [
        (3, 5),
        (3, 5),
        (2, 5),
        (2, 5),
        (1, 1),
        (1, 1),
    ]
    assert reference_plan(30, 50, SCHEDULES["v1"]) is None


def test_gaussian_kernel_taps():
    x = torch.zeros(1, 5, 5)
    x[0, 2, 2] = 1
    y = gaussian_smooth(x)
    row = y[0, 2, 1:4] / y[0, 2, 1:4].sum()
    torch.testing.assert_close(row, torch.tensor([0.212, 0.576, 0.212]), atol=1e-3, rtol=0)
    assert y.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_normalized_token_maps_drops_start_and_last():
    cross = torch.zeros(1, 2, 2, 77)
    cross[..., 5] = 1.0
    out = normalized_token_maps(cross)
    assert out.shape == (1, 2, 2, 75)
    assert out[..., 4].min() > 0.99  # token 5 sits at column 4


def test_token_map_temperature_sets_the_saturation():
    """A word with attention 0.3 on its object and ~0 on 74 other columns: at Attend-and-Excite's temperature 100
    the normalised map is saturated (gradient ~0 on and off the object), at 10 it is not (docs/shapes.md)."""

    def map_and_grad(temperature, value):
        cross = torch.zeros(1, 1, 1, 77)
        cross[..., 5] = value
        cross.requires_grad_(True)
        m = normalized_token_maps(cross, temperature)[..., 4].sum()
        (g,) = torch.autograd.grad(m, cross)
        return m.item(), g[..., 5].item()

    on_100, grad_on_100 = map_and_grad(100.0, 0.3)
    on_10, grad_on_10 = map_and_grad(10.0, 0.3)
    assert on_100 > 0.999 and grad_on_100 < 0.01
    assert 0.1 < on_10 < 0.5 and grad_on_10 > 1.0
    _, grad_off_100 = map_and_grad(100.0, 0.003)
    _, grad_off_10 = map_and_grad(10.0, 0.003)
    assert grad_off_10 > 0.1 and grad_off_100 > grad_off_10  # off the object both move; on it only 10 does


@pytest.mark.slow
def test_temperature_option_reaches_the_token_maps(sharp_pipe, two_region_layout):
    first = [
        guide_losses(
            sharp_pipe,
            get_method(name, temperature=t, early_stop=False)
            if name == "refocus"
            else get_method(name, temperature=t),
            two_region_layout,
            iterations=1,
        )[0]
        for name in ("refocus", "boxdiff")
        for t in (100.0, 10.0)
    ]
    assert first[0] != pytest.approx(first[1]) and first[2] != pytest.approx(first[3])
    with pytest.raises(ValueError, match="temperature"):
        get_method("attend-excite", temperature=0)


def _masks():
    masks = torch.zeros(2, 8, 8)
    masks[0, :4, :4] = 1
    masks[1, 4:, 4:] = 1
    return masks


def test_car_paper_terms():
    maps = torch.zeros(2, 8, 8)
    maps[0, 1, 1] = 0.9  # token 0 peaks inside its box
    maps[1, 0, 7] = 0.6  # token 1 peaks outside its box
    maps[1, 6, 6] = 0.2
    value, inside = car_paper(maps, _masks(), [[0], [1]], RefocusOptions())
    expected = ((1 - 0.9) + 0) / 2 + ((1 - 0.2) + 0.6) / 2
    assert value.item() == pytest.approx(expected, abs=1e-6)
    assert inside.item() == pytest.approx(0.2)


def test_car_paper_foreground_only():
    maps = torch.zeros(2, 8, 8)
    maps[0, 1, 1], maps[1, 0, 7], maps[1, 6, 6] = 0.9, 0.6, 0.2
    fg_only, _ = car_paper(maps, _masks(), [[0], [1]], RefocusOptions(car_background=False))
    assert fg_only.item() == pytest.approx(((1 - 0.9) + (1 - 0.2)) / 2, abs=1e-6)


def _official_maps():
    maps = torch.zeros(2, 8, 8)
    maps[0, 1, 1] = 0.05  # weak own peak: 6 (1 - m)
    maps[0, 6, 6] = 0.3  # strong peak in the other object's box: 4 n
    maps[1, 6, 6] = 0.5  # good own peak, nothing elsewhere
    return maps


def test_car_official_thresholds_late():
    late, _ = car_official(_official_maps(), _masks(), [[0], [1]], RefocusOptions(variant="official"), early=False)
    assert late.item() == pytest.approx((6 * 0.95 + 4 * 0.3) / 2, abs=1e-5)


def test_car_official_thresholds_early():
    early, inside = car_official(
        _official_maps(), _masks(), [[0], [1]], RefocusOptions(variant="official"), early=True
    )
    assert early.item() == pytest.approx((6 * 0.95 + 4 * 0.3 + (1 - 0.5)) / 2, abs=1e-5)  # (1 - m) even for m >= 0.2
    assert inside.item() == pytest.approx(0.05)


@pytest.mark.parametrize(
    "options",
    [dict(sar=False), dict(car=False), dict(sar=False, variant="official")],
    ids=["car", "sar", "car-official"],
)
@pytest.mark.slow
def test_loss_falls_across_inner_iterations(sharp_pipe, options, two_region_layout):
    # level 0: the sharp pipeline's 16x16 layers (the shapes model's choice, pinned in its layoutguide.json)
    losses = guide_losses(sharp_pipe, get_method("refocus", early_stop=False, level=0, **options), two_region_layout)
    assert len(losses) == 8
    assert losses[-1] < 0.9 * losses[0]
    assert min(losses[4:]) < min(losses[:2])


@pytest.mark.slow
def test_early_stop_ends_iterations(sharp_pipe):
    layout = Layout("a red circle", (Region("red circle", box=(0.0, 0.0, 1.0, 1.0)),), width=64, height=64)
    # A box covering the whole canvas: the in-box peak is the map's global peak, far above the 0.2 threshold.
    out = sharp_pipe(
        layout=layout,
        method="refocus",
        num_inference_steps=10,
        guidance_scale=3,
        progress=False,
        method_options={"sar": False, "inside_threshold": 0.0},
    )
    assert all(len(g["losses"]) == 1 for g in out.guidance if g)
    out = sharp_pipe(
        layout=layout,
        method="refocus",
        num_inference_steps=10,
        guidance_scale=3,
        progress=False,
        method_options={"sar": False, "early_stop": False},
    )
    assert max(len(g["losses"]) for g in out.guidance if g) == 3


def test_terms_switch_off():
    def roles(method):
        return {name: r.role for name, r in method.attention_requests().items()}

    assert roles(get_method("refocus")) == {"cross": "text", "self": "image"}
    assert roles(get_method("refocus", car=False)) == {"self": "image"}
    assert roles(get_method("refocus", grounding_weight=3.0, sar=False)) == {"cross": "text", "grounding": "grounding"}
    assert get_method("refocus", car=False, sar=False).plan(None, 0) is None


def test_normalized_gradient_step_has_the_step_size_as_largest_move():
    grad = torch.zeros(2, 4, 3, 3)
    grad[0, 1, 2, 2], grad[1, 0, 0, 0], grad[1, 3, 1, 1] = 1e-6, -50.0, 5.0  # scales five orders of magnitude apart
    latents, plan = torch.zeros_like(grad), StepPlan(iterations=1, step_size=0.1)
    moved = get_method("refocus", normalize_grad=True, loss_scale=0.1).update(None, 0, plan, latents, grad)
    assert moved.flatten(1).abs().amax(1).tolist() == pytest.approx([0.1, 0.1])
    assert moved[1, 3, 1, 1].item() == pytest.approx(-0.01)
    assert moved[1, 0, 0, 0].item() == pytest.approx(0.1)


def test_raw_gradient_step():
    grad = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    raw = get_method("refocus").update(None, 0, StepPlan(iterations=1, step_size=0.1), torch.zeros_like(grad), grad)
    assert torch.equal(raw, -0.1 * grad)
