"""The colour check (MIG_Bench's HSV ranges): each named colour on synthetic images, with a mask and a box only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from layoutguide.bench.detectors.colour import (
    BASIC_COLOURS,
    EXTRA_COLOURS,
    NO_COLOUR,
    colour_fractions,
    dominant_colour,
    has_colour,
    opencv_hsv,
)
from layoutguide.errors import InputError

# One clear example of each colour, as a person would name it.
SAMPLES = {
    "red": (220, 20, 30),
    "blue": (30, 60, 220),
    "green": (40, 180, 60),
    "yellow": (240, 220, 30),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "brown": (120, 70, 20),
    "orange": (255, 140, 0),
    "purple": (128, 0, 128),
    "pink": (255, 160, 190),
    "grey": (128, 128, 128),
}
ALL = BASIC_COLOURS + EXTRA_COLOURS
BOX = (0.25, 0.25, 0.75, 0.75)  # the object's square on a 64 px image: pixels 16..47


def scene(colour: tuple[int, int, int], background: tuple[int, int, int], size: int = 64) -> Image.Image:
    pixels = np.full((size, size, 3), background, dtype=np.uint8)
    pixels[16:48, 16:48] = colour
    return Image.fromarray(pixels)


def object_mask(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[16:48, 16:48] = True
    return mask


def test_samples_cover_every_colour():
    assert set(SAMPLES) == set(ALL)


@pytest.mark.parametrize(
    ("name", "background"), [(n, b) for n in SAMPLES for b in ("white", "black", "green") if n != b]
)
def test_each_colour_is_named_on_backgrounds_from_its_box(name, background):
    image = scene(SAMPLES[name], SAMPLES[background])
    names = ALL if name in EXTRA_COLOURS else BASIC_COLOURS
    assert dominant_colour(image, BOX, names=names) == name
    assert has_colour(image, BOX, name)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_mask_finds_the_colour_that_a_loose_box_misses(name):
    background = "blue" if name != "blue" else "yellow"
    image = scene(SAMPLES[name], SAMPLES[background])
    loose = (0.0, 0.0, 1.0, 1.0)  # the object is a quarter of this box: the background dominates
    assert dominant_colour(image, loose, names=ALL) == background
    assert dominant_colour(image, loose, object_mask(), names=ALL) == name


def test_mig_bench_rule_is_a_fifth_of_the_pixels():
    # A red square inside a box with a grey surround: 25% red passes MIG_Bench's 20%, 16% does not.
    image = scene(SAMPLES["red"], SAMPLES["grey"])
    assert colour_fractions(image, (0.0, 0.0, 1.0, 1.0))["red"] == pytest.approx(0.25)
    assert has_colour(image, (0.0, 0.0, 1.0, 1.0), "red")
    assert not has_colour(image, (0.0, 0.0, 1.0, 1.0), "red", min_fraction=0.3)
    wide = (0.0, 0.0, 1.0, 1.0)
    big = Image.fromarray(np.pad(np.asarray(image), ((8, 8), (8, 8), (0, 0)), constant_values=128))
    assert colour_fractions(big, wide)["red"] == pytest.approx(32 * 32 / 80**2)
    assert not has_colour(big, wide, "red")


def test_overlapping_ranges_count_each_pixel_once_but_fractions_overlap():
    # Hue 20 (OpenCV scale) is brown and yellow in MIG_Bench's table; hue 6 is red and brown.
    image = scene((230, 150, 0), SAMPLES["white"])  # OpenCV: hue 20
    fractions = colour_fractions(image, BOX)
    assert fractions["brown"] == 1.0 and fractions["yellow"] == 1.0
    assert dominant_colour(image, BOX) == "yellow"  # PRECEDENCE puts yellow before brown
    image = scene((255, 51, 0), SAMPLES["white"])  # OpenCV: hue 6
    fractions = colour_fractions(image, BOX)
    assert fractions["red"] == 1.0 and fractions["brown"] == 1.0
    assert dominant_colour(image, BOX) == "red"


def test_no_colour_and_gray_alias_and_bad_input():
    grey = scene(SAMPLES["grey"], SAMPLES["grey"])
    assert dominant_colour(grey, BOX) == NO_COLOUR  # grey is in none of MIG_Bench's seven ranges
    assert dominant_colour(grey, BOX, names=["gray", "red"]) == "grey"
    assert dominant_colour(grey, BOX, np.zeros((64, 64), dtype=bool)) == NO_COLOUR
    with pytest.raises(InputError, match="colour: unknown 'teal'"):
        has_colour(grey, BOX, "teal")
    with pytest.raises(InputError, match=r"mask: shape \(8, 8\)"):
        dominant_colour(grey, BOX, np.ones((8, 8), dtype=bool))
    with pytest.raises(InputError, match="box:"):
        dominant_colour(grey, (0.1, float("nan"), 0.5, 0.5))
    with pytest.raises(InputError, match="names: no colour"):
        dominant_colour(grey, BOX, names=[])


def test_a_degenerate_box_still_reads_one_pixel():
    image = scene(SAMPLES["red"], SAMPLES["white"])
    assert dominant_colour(image, (0.5, 0.5, 0.5, 0.5)) == "red"
    assert dominant_colour(image, (1.0, 1.0, 1.0, 1.0)) == "white"


# What OpenCV 5.1's cv2.cvtColor(COLOR_RGB2HSV) gave for these pixels (hue 0 for greys; 179 just below red).
OPENCV_HSV = {
    (255, 0, 0): (0, 255, 255),
    (255, 0, 1): (0, 255, 255),
    (0, 255, 0): (60, 255, 255),
    (0, 0, 255): (120, 255, 255),
    (128, 128, 128): (0, 0, 128),
    (200, 120, 10): (17, 242, 200),
    (230, 150, 0): (20, 255, 230),
    (220, 20, 30): (179, 232, 220),
    (1, 2, 3): (105, 170, 3),
}


def test_hsv_matches_opencv_on_known_pixels():
    pixels = np.array(list(OPENCV_HSV), dtype=np.uint8)
    got = [tuple(int(v) for v in row) for row in opencv_hsv(pixels)]
    assert got == list(OPENCV_HSV.values())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=1, max_size=64))
def test_hsv_matches_opencv_when_installed(pixels):
    cv2 = pytest.importorskip("cv2")
    rgb = np.array(pixels, dtype=np.uint8)[None]
    assert np.array_equal(opencv_hsv(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))
