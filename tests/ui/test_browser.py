"""End-to-end tests in a real browser (Debian's headless Chromium + Playwright) on the shipped shapes model."""

from __future__ import annotations

import json

import pytest
from pagekit import check_rows, set_method, set_number, set_prompt, wait_generated, wait_rows

from layoutguide.ui.browser import draw_box, paint_layer, use_masks

pytestmark = pytest.mark.slow

PROMPT = "a red circle and a blue square"


def test_draw_a_box_with_the_mouse_and_label_it(page):
    set_prompt(page, PROMPT)
    draw_box(page, (0.1, 0.1, 0.45, 0.5), "red circle")
    rows = wait_rows(page, lambda r: r and r[0].startswith("0: red circle"))
    assert rows == ["0: red circle ok"]


def test_bad_phrase_shows_the_library_error_next_to_its_box(page):
    set_prompt(page, PROMPT)
    draw_box(page, (0.1, 0.1, 0.45, 0.5), "red circle")
    wait_rows(page, lambda r: r == ["0: red circle ok"])
    draw_box(page, (0.55, 0.5, 0.9, 0.9), "green star")
    rows = wait_rows(page, lambda r: len(r) == 2 and "green star" in " ".join(r))
    good = [r for r in rows if r.split(" ", 1)[1].startswith("red circle")]
    bad = [r for r in rows if r.split(" ", 1)[1].startswith("green star")]
    assert len(good) == 1 and good[0].endswith("red circle ok")
    index = bad[0].split(":")[0]  # the box's number, as the editor lists it
    assert f"region {index}: phrase 'green star' does not occur in the prompt" in bad[0]
    # submitting it anyway gives one line of error, no traceback
    page.locator("#lg-generate").click()
    error = page.locator("#lg-progress-box .lg-error")
    error.wait_for()
    assert f"region {index}" in error.inner_text() and "Traceback" not in page.content()


def test_plan_from_prompt_puts_the_boxes_on_the_canvas(page):
    set_prompt(page, "a red circle to the left of a blue square")
    page.locator("#lg-plan").click()
    rows = wait_rows(page, lambda r: r == ["0: red circle ok", "1: blue square ok"])
    assert rows == ["0: red circle ok", "1: blue square ok"]


def test_load_a_layout_file(page, tmp_path):
    layout = {
        "prompt": "two green triangles",
        "width": 64,
        "height": 64,
        "regions": [{"phrase": "green triangles", "box": [0.1, 0.1, 0.4, 0.4]}],
    }
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(layout))
    page.get_by_text("Files", exact=True).click()
    page.locator("#lg-upload input[type=file]").set_input_files(str(path))
    rows = wait_rows(page, lambda r: len(r) == 1 and "green" in r[0])
    assert rows == ["0: green triangles ok"]
    assert page.locator("#lg-prompt textarea").input_value() == "two green triangles"


def test_a_second_tab_does_not_see_the_first_ones_layout(page, browser, app_url):
    set_prompt(page, PROMPT)
    draw_box(page, (0.1, 0.1, 0.45, 0.5), "red circle")
    wait_rows(page, lambda r: r == ["0: red circle ok"])
    other = browser.new_context().new_page()
    other.goto(app_url)
    other.locator("#lg-check-list").wait_for()
    rows = check_rows(other)
    assert any(r.startswith("no boxes yet") for r in rows) and not any("red circle" in r for r in rows)
    assert other.locator("#lg-prompt textarea").input_value() == ""
    other.context.close()


def test_generate_then_look_inside(page):
    set_prompt(page, PROMPT)
    page.locator("#lg-plan").click()
    wait_rows(page, lambda r: len(r) == 2 and all(row.endswith(" ok") for row in r))
    set_number(page, "lg-steps", 2)
    page.locator("#lg-generate").click()
    assert "step 2/2" in wait_generated(page)
    page.locator("#lg-gallery img").first.wait_for()
    page.locator("#lg-download a, #lg-download .file-preview").first.wait_for()
    page.get_by_role("tab", name="Look inside").click()
    page.locator("#lg-heatmaps img").nth(1).wait_for()  # one heatmap per phrase
    captions = page.locator("#lg-heatmaps").inner_text()
    assert "red circle" in captions and "blue square" in captions
    summary = page.locator("#lg-verdict-summary")
    summary.wait_for()
    assert "object in box" in summary.inner_text()
    table = page.locator("#lg-verdict")
    page.wait_for_function("() => document.querySelector('#lg-verdict').innerText.includes('blue square')")
    assert "red circle" in table.inner_text()


def test_compare_two_methods(page):
    set_prompt(page, PROMPT)
    page.locator("#lg-plan").click()
    wait_rows(page, lambda r: len(r) == 2 and all(row.endswith(" ok") for row in r))
    set_number(page, "lg-steps", 2)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#lg-compare-methods textarea").fill("none,refocus[tokens=last]")
    page.locator("#lg-compare").click()
    wait_generated(page, "#lg-compare-progress")
    page.locator("#lg-compare-grid img").wait_for()
    assert page.locator("#lg-compare-gallery img").count() == 2
    text = page.locator("#lg-compare-gallery").inner_text()
    assert "none" in text and "refocus[tokens=last]" in text


def test_mask_mode_paint_a_layer_per_phrase_and_generate(page):
    set_prompt(page, PROMPT)
    use_masks(page, ["red circle", "blue square"])
    paint_layer(page, 0, (0.1, 0.3, 0.4, 0.7))
    paint_layer(page, 1, (0.6, 0.3, 0.9, 0.7))
    rows = wait_rows(page, lambda r: r == ["0: red circle ok", "1: blue square ok"])
    assert rows == ["0: red circle ok", "1: blue square ok"]
    set_method(page, "zestguide")  # a mask method: its option form fires change events nobody made
    set_number(page, "lg-steps", 2)
    page.locator("#lg-generate").click()
    assert "step 2/2" in wait_generated(page)
    page.locator("#lg-gallery img").first.wait_for()
    # the painted layers are the job's regions: the evaluator's verdict lists them by phrase
    page.get_by_role("tab", name="Look inside").click()
    page.wait_for_function("() => document.querySelector('#lg-verdict').innerText.includes('blue square')")
    assert "red circle" in page.locator("#lg-verdict").inner_text()
