"""Exact, deterministic evaluation of shapes-world images against a layout: no learned detector involved.

Detection (``detect``)
    1. The background colour is the per-channel median of the image border (a ring 1/32 of the image wide),
       so a tinted background is estimated, not assumed white.
    2. The image is white-balanced by that estimate (per-channel gain ``255 / background``, clamped to
       [1, 3]), which maps the background to white and a blend "object over tinted background" to a blend
       "object over white", whose hue is the object's hue.
    3. A pixel is an object pixel when, after balancing, its HSV saturation is >= 0.4 (>= 0.2 before
       balancing) and its value >= 0.3, it is at least 40 (RGB Euclidean, 0-255) from the background
       estimate, and its hue is within 50 degrees of a palette hue (``world.COLOURS``); it takes the colour
       of the nearest palette hue.
    4. Per colour: opening by reconstruction (components without a 3x3 core are dropped, the others kept
       whole), hole filling, 8-connected components. Components smaller than 24 px at 64x64 (scaled by image
       area; the smallest real object, a 12 px triangle, has 78 px) are dropped, and so are background-like
       components (more than half of the image, or touching more than a quarter of the border).
    5. Shape from geometry: fill ratio (area / box area: square 1.0, circle 0.78, triangle 0.51), the share of
       the area in the top half of the box (0.5 for circles and squares, 0.25 for the world's upward
       triangles) and the aspect ratio (1 for every world shape). The shape is the nearest prototype;
       ``confidence = exp(-d^2 / 2)`` with ``d`` the scaled distance to it; ``"unknown"`` when ``d > 4``.

Metrics (``evaluate``), for a layout whose region phrases are shapes-world phrases ("red circle",
"two green triangles" -> ("green", "triangle")); boxes are normalised xyxy, far edge exclusive.

Per region:
    ``found``     regions are matched one-to-one to detections of the same colour AND shape, per
                  (colour, shape) group, by ``scipy.optimize.linear_sum_assignment`` maximising the summed box
                  IoU; a region is found when it gets a detection (whatever the IoU), so a group of n regions
                  with m such detections has min(n, m) found regions.
    ``iou``       box IoU between the region's box and its matched detection's box; 0 when not found.
    ``mask_iou``  mask IoU of the matched detection against the region's mask (resized to the image by area
                  when sizes differ) or, for box-only regions, against the box rasterised to the image grid
                  (``Layout.rasterize``); 0 when not found.
    ``in_box``    ``found and iou >= 0.5``.
    ``colour_ok`` a second one-to-one matching, per colour, of regions to detections of that colour (any
                  shape, including "unknown"; the matching again maximises summed IoU, but position does not
                  decide whether a region counts): min(n, m) regions of a colour with n regions and m
                  detections are colour_ok.

Per image:
    ``object_in_box`` mean of ``in_box`` over regions;  ``mean_iou`` mean ``iou``;  ``mean_mask_iou`` mean
    ``mask_iou``;  ``colour_acc`` mean ``colour_ok``;  ``found_rate`` mean ``found``;
    ``count_ok``      for every (colour, shape) group in the layout, the number of detections of that colour
                      and shape equals the number of regions in the group (detections of other kinds are
                      ignored);
    ``relation_ok``   None without a relation; for ``(subject_index, relation, object_index)`` (relation in
                      ``world.RELATIONS``), True when both regions are found and
                      ``world.relation_holds(subject_detection.centre, relation, object_detection.centre)``
                      (normalised box centres, x right, y down, no margin);
    ``n_detections``  all detections in the image, whatever their colour or shape;
    ``background_tint`` the estimated background is more than 45 (RGB Euclidean) from white, or a
                      background-like colour component was discarded.

Segmentation (ZestGuide's protocol, ``semantic_miou``): classes are the layout's (colour, shape) kinds;
    ``miou_inside`` per-class IoU of the detected-object label map against the regions' label map counted only
    inside the union of the conditioning masks, averaged over the classes present; ``miou_all`` the same over
    the whole image.

``aggregate`` averages each per-image number over images (booleans as 0/1), ``relation_ok`` only over the
images that have a relation (``n_relation_images``; the key is absent when there are none), plus
``n_images``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from ..layout import Layout
from .world import COLOURS, IMAGE_SIZE, RELATIONS, parse_phrase, relation_holds

# ------------------------------------------------------------------------------------------- thresholds
BORDER_FRACTION = 1 / 32  # border ring width for the background estimate: 2 px at 64 px
MAX_BALANCE_GAIN = 3.0  # white-balance gains beyond this (dark or saturated backgrounds) only amplify noise
MIN_SATURATION = 0.4  # palette saturations are 0.76-0.87; a 50/50 blend with white is ~0.4, so the mask edge
# sits where the object covers about half of a soft pixel
MIN_RAW_SATURATION = 0.2  # before balancing too: a white or grey patch on a strongly tinted background
# would otherwise balance into a saturated complementary colour (white on red -> cyan)
MIN_VALUE = 0.3  # darkest palette channel max is 170/255 = 0.67; dark noise has unstable hue
MIN_BACKGROUND_DISTANCE = 40.0  # RGB distance from the background estimate; white + noise (sigma 12) stays below
MAX_HUE_DISTANCE = 50.0  # degrees; palette hues are 0 (red), 49 (yellow), 127 (green), 227 (blue)
MIN_AREA_64 = 24  # px at 64x64: a third of the smallest real object (12 px triangle, 78 px)
MAX_OBJECT_FRACTION = 0.5  # the largest world object (30x30) covers 22% of the image
MAX_BORDER_CONTACT = 0.25  # a corner object of side 30 touches < 25% of the 64 px border
TINT_DISTANCE = 45.0  # background this far from white is tinted (a 25% palette blend is 58-77 away)
UNKNOWN_DISTANCE = 4.0  # scaled feature distance beyond which the shape is "unknown" (confidence < 0.0004)

# Shape prototypes (fill ratio, share of area in the top half of the box), measured on world renders at
# sides 12-30 px; scales are the tolerated deviations (one "sigma" of the confidence). The top-half share is
# the sharper feature: circles and squares are symmetric about their middle row, so it stays 0.5 under blur,
# while blur rounds squares (fill 1.0 -> ~0.92 at 12 px) and fattens triangles (-> ~(0.65, 0.33)).
SHAPE_PROTOTYPES: dict[str, tuple[float, float]] = {
    "square": (1.0, 0.5),
    "circle": (0.78, 0.5),
    "triangle": (0.51, 0.255),
}
FILL_SCALE = 0.1
TOP_SCALE = 0.04
LOG_ASPECT_SCALE = 0.2


def _hue_of(rgb: tuple[int, int, int]) -> float:
    r, g, b = (v / 255 for v in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    if mx == mn:
        return 0.0
    if mx == r:
        h = ((g - b) / (mx - mn)) % 6
    elif mx == g:
        h = (b - r) / (mx - mn) + 2
    else:
        h = (r - g) / (mx - mn) + 4
    return 60.0 * h


PALETTE_NAMES = tuple(COLOURS)
PALETTE_HUES = np.array([_hue_of(COLOURS[c]) for c in PALETTE_NAMES])


# ------------------------------------------------------------------------------------------- detections
@dataclasses.dataclass(frozen=True, eq=False)
class Detection:
    """One coloured blob: palette ``colour``, ``shape`` (one of SHAPES or "unknown"), normalised xyxy ``box``
    (far edge exclusive), boolean ``mask`` (H, W), pixel ``area`` and shape ``confidence`` in [0, 1]."""

    colour: str
    shape: str
    box: tuple[float, float, float, float]
    mask: np.ndarray
    area: int
    confidence: float

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "colour": self.colour,
            "shape": self.shape,
            "box": [round(float(v), 6) for v in self.box],
            "area": int(self.area),
            "confidence": round(float(self.confidence), 6),
        }


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image, uint8 (H, W, 3|4) or float (H, W, 3|4) in [0, 1] -> float64 (H, W, 3) in 0-255."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float64)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"expected an RGB image array of shape (H, W, 3), got shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise ValueError("float image arrays must hold values in [0, 1]; pass uint8 for 0-255 values")
        return array.astype(np.float64) * 255.0
    raise ValueError(f"image arrays must be uint8 (0-255) or float in [0, 1], got dtype {array.dtype}")


def estimate_background(rgb: np.ndarray) -> np.ndarray:
    """Per-channel median of the border ring: robust to objects that reach into the border."""
    h, w = rgb.shape[:2]
    k = max(1, round(min(h, w) * BORDER_FRACTION))
    ring = np.ones((h, w), dtype=bool)
    ring[k : h - k, k : w - k] = False
    return np.median(rgb[ring], axis=0)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees, saturation and value (max / 255) of float RGB, which may exceed 255 after balancing."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    saturation = np.where(mx > 0, chroma / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, saturation, mx / 255.0


def colour_labels(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-pixel palette index (into PALETTE_NAMES), -1 for background and off-palette pixels."""
    gain = np.clip(255.0 / np.maximum(background, 1.0), 1.0, MAX_BALANCE_GAIN)
    hue, saturation, value = _hsv(rgb * gain)
    raw_saturation = _hsv(rgb)[1]
    distance = np.linalg.norm(rgb - background, axis=-1)
    hue_gap = np.abs(hue[..., None] - PALETTE_HUES)
    hue_gap = np.minimum(hue_gap, 360.0 - hue_gap)
    nearest = hue_gap.argmin(axis=-1)
    is_object = (
        (saturation >= MIN_SATURATION)
        & (raw_saturation >= MIN_RAW_SATURATION)
        & (value >= MIN_VALUE)
        & (distance >= MIN_BACKGROUND_DISTANCE)
        & (hue_gap.min(axis=-1) <= MAX_HUE_DISTANCE)
    )
    return np.where(is_object, nearest, -1)


_EIGHT = np.ones((3, 3), dtype=bool)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Opening by reconstruction, then hole filling.

    Plain opening would shave the 1-2 px apex of small triangles (and their box), and closing would bridge the
    2 px gap the world keeps between same-colour objects, so neither is applied directly: components with no
    3x3 core (speckle, 1-2 px threads) are removed, the rest are kept pixel-exact.
    """
    core = ndimage.binary_opening(mask, structure=_EIGHT)
    if not core.any():
        return core
    kept = ndimage.binary_propagation(core, structure=_EIGHT, mask=mask)
    return ndimage.binary_fill_holes(kept)


def _border_contact(component: np.ndarray) -> float:
    """Fraction of the image's border pixels covered by the component."""
    h, w = component.shape
    border = np.concatenate([component[0], component[-1], component[1:-1, 0], component[1:-1, -1]])
    return float(border.mean()) if border.size else 0.0


def is_background_like(component: np.ndarray) -> bool:
    return component.mean() > MAX_OBJECT_FRACTION or _border_contact(component) > MAX_BORDER_CONTACT


def shape_features(mask: np.ndarray) -> tuple[float, float, float]:
    """(fill ratio, share of area in the top half of the box, aspect ratio width / height) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    h, w = ys.max() + 1 - y0, xs.max() + 1 - x0
    area = float(ys.size)
    rows = ys - y0
    # a middle row on an odd height counts half to each half
    top = np.count_nonzero(rows < h // 2) + (0.5 * np.count_nonzero(rows == h // 2) if h % 2 else 0.0)
    return area / (h * w), top / area, w / h


def classify_shape(fill: float, top_share: float, aspect: float) -> tuple[str, float]:
    """Nearest prototype by scaled distance; confidence ``exp(-d^2/2)``; "unknown" beyond UNKNOWN_DISTANCE."""
    aspect_term = (math.log(aspect) / LOG_ASPECT_SCALE) ** 2
    best, best_d = "unknown", math.inf
    for shape, (proto_fill, proto_top) in SHAPE_PROTOTYPES.items():
        d = math.sqrt(
            ((fill - proto_fill) / FILL_SCALE) ** 2 + ((top_share - proto_top) / TOP_SCALE) ** 2 + aspect_term
        )
        if d < best_d:
            best, best_d = shape, d
    confidence = math.exp(-0.5 * best_d**2)
    return (best if best_d <= UNKNOWN_DISTANCE else "unknown"), confidence


def _detection(colour: str, component: np.ndarray) -> Detection:
    h, w = component.shape
    ys, xs = np.nonzero(component)
    box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
    shape, confidence = classify_shape(*shape_features(component))
    return Detection(
        colour=colour,
        shape=shape,
        box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        mask=component,
        area=int(ys.size),
        confidence=confidence,
    )


def min_area(height: int, width: int) -> int:
    return max(4, round(MIN_AREA_64 * height * width / (IMAGE_SIZE * IMAGE_SIZE)))


def _detect(rgb: np.ndarray) -> tuple[list[Detection], bool]:
    """Detections in float RGB (colours in palette order, components in scan order) and whether the
    background is tinted."""
    h, w = rgb.shape[:2]
    background = estimate_background(rgb)
    tinted = bool(np.linalg.norm(background - 255.0) > TINT_DISTANCE)
    labels = colour_labels(rgb, background)
    smallest = min_area(h, w)
    detections = []
    for index, colour in enumerate(PALETTE_NAMES):
        mask = clean_mask(labels == index)
        components, n = ndimage.label(mask, structure=_EIGHT)
        for k in range(1, n + 1):
            component = components == k
            if is_background_like(component):
                tinted = True
                continue
            if component.sum() >= smallest:
                detections.append(_detection(colour, component))
    return detections, tinted


def detect(image: Image.Image | np.ndarray) -> list[Detection]:
    """Coloured shapes in ``image`` (PIL, uint8 (H, W, 3) or float (H, W, 3) in [0, 1]); see the module doc."""
    return _detect(to_rgb_array(image))[0]


# ------------------------------------------------------------------------------------------- metrics
def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


@dataclasses.dataclass(frozen=True)
class RegionScore:
    """One layout region's result; ``detection`` indexes ``ImageScore.detections`` (None when not found)."""

    index: int
    phrase: str
    colour: str
    shape: str
    found: bool
    iou: float
    mask_iou: float
    in_box: bool
    colour_ok: bool
    detection: int | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["iou"], out["mask_iou"] = round(self.iou, 6), round(self.mask_iou, 6)
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class ImageScore:
    regions: tuple[RegionScore, ...]
    detections: tuple[Detection, ...]
    object_in_box: float
    mean_iou: float
    mean_mask_iou: float
    colour_acc: float
    found_rate: float
    count_ok: bool
    relation_ok: bool | None
    n_detections: int
    background_tint: bool
    miou_inside: float = 0.0
    miou_all: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain numbers and lists, detections without masks."""
        return {
            "miou_inside": round(self.miou_inside, 6),
            "miou_all": round(self.miou_all, 6),
            "object_in_box": round(self.object_in_box, 6),
            "mean_iou": round(self.mean_iou, 6),
            "mean_mask_iou": round(self.mean_mask_iou, 6),
            "colour_acc": round(self.colour_acc, 6),
            "found_rate": round(self.found_rate, 6),
            "count_ok": self.count_ok,
            "relation_ok": self.relation_ok,
            "n_detections": self.n_detections,
            "background_tint": self.background_tint,
            "regions": [r.to_dict() for r in self.regions],
            "detections": [d.to_dict() for d in self.detections],
        }


def _match(targets: list[int], candidates: list[int], iou: np.ndarray) -> dict[int, int]:
    """One-to-one target -> candidate matching maximising summed IoU (min(len) pairs, whatever the IoU)."""
    if not targets or not candidates:
        return {}
    rows, cols = linear_sum_assignment(iou[np.ix_(targets, candidates)], maximize=True)
    return {targets[r]: candidates[c] for r, c in zip(rows, cols)}


def _grouped(keys: Iterable) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return groups


def _as_relation(relation: Any, n_regions: int) -> tuple[int, str, int]:
    if hasattr(relation, "subject"):  # world.Relation
        relation = (relation.subject, relation.relation, relation.object)
    try:
        subject, name, obj = relation
    except (TypeError, ValueError):
        raise ValueError(
            f"relation must be (subject_region_index, relation, object_region_index), got {relation!r}"
        ) from None
    if name not in RELATIONS:
        raise ValueError(f"unknown relation {name!r}; expected one of {RELATIONS}")
    for i in (subject, obj):
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n_regions:
            raise ValueError(f"relation region index {i!r} is not in range for {n_regions} regions")
    return int(subject), name, int(obj)


def _target_masks(layout: Layout, height: int, width: int) -> np.ndarray:
    """Region masks on the image grid: the region's mask (resized by area if needed) or its rasterised box."""
    return layout.rasterize(height, width) > 0.5


def semantic_miou(
    detections: Sequence[Detection], kinds: list[tuple[str, str]], targets: np.ndarray, *, inside_only: bool
) -> float:
    """Segmentation mIoU with the layout's (colour, shape) kinds as classes, as ZestGuide scores mask layouts.

    Target label map: each region's mask (later regions win where they overlap). Predicted label map: each
    detection's mask labelled with its (colour, shape), another label for kinds outside the layout. IoU per
    class present in the target, averaged. ``inside_only`` counts only the pixels inside the union of the
    conditioning masks (the paper's protocol, which ignores what the model adds elsewhere); otherwise every
    pixel counts (background is then a class: no detection and no target).
    """
    classes = list(dict.fromkeys(kinds))
    gt = np.full(targets.shape[1:], -1, dtype=np.int32)
    for region_mask, kind in zip(targets, kinds):
        gt[region_mask] = classes.index(kind)
    pred = np.full(targets.shape[1:], -1, dtype=np.int32)
    for d in detections:
        pred[d.mask] = classes.index((d.colour, d.shape)) if (d.colour, d.shape) in classes else len(classes)
    valid = targets.any(0) if inside_only else np.ones_like(gt, dtype=bool)
    ious = []
    for c in range(len(classes)):
        p, g = (pred == c) & valid, (gt == c) & valid
        union = (p | g).sum()
        if g.any():
            ious.append((p & g).sum() / union)
    return float(np.mean(ious)) if ious else 0.0


def evaluate(
    image: Image.Image | np.ndarray,
    layout: Layout,
    relation: Any = None,
    *,
    detections: Sequence[Detection] | None = None,
) -> ImageScore:
    """Score ``image`` against ``layout`` (shapes-world phrases); see the module docstring for the metrics.

    ``relation`` is ``(subject_region_index, relation, object_region_index)`` or a ``world.Relation`` whose
    indices are region indices. Pass ``detections`` to reuse ``detect(image)``'s result.
    """
    if not layout.regions:
        raise ValueError("evaluate: the layout has no regions; there is nothing to score")
    kinds = [parse_phrase(r.phrase) for r in layout.regions]
    rel = None if relation is None else _as_relation(relation, len(kinds))
    rgb = to_rgb_array(image)
    h, w = rgb.shape[:2]
    if detections is None:
        found_dets, tinted = _detect(rgb)
    else:
        found_dets, tinted = list(detections), bool(np.linalg.norm(estimate_background(rgb) - 255.0) > TINT_DISTANCE)
    targets = _target_masks(layout, h, w)

    ious = np.array([[box_iou(r.bbox, d.box) for d in found_dets] for r in layout.regions]).reshape(
        len(kinds), len(found_dets)
    )
    det_groups = _grouped((d.colour, d.shape) for d in found_dets)
    matched: dict[int, int] = {}
    for kind, regions in _grouped(kinds).items():
        matched |= _match(regions, det_groups.get(kind, []), ious)
    det_colours = _grouped(d.colour for d in found_dets)
    colour_matched: dict[int, int] = {}
    for colour, regions in _grouped(c for c, _ in kinds).items():
        colour_matched |= _match(regions, det_colours.get(colour, []), ious)

    scores = []
    for i, (region, (colour, shape)) in enumerate(zip(layout.regions, kinds)):
        d = matched.get(i)
        iou = float(ious[i, d]) if d is not None else 0.0
        m_iou = mask_iou(found_dets[d].mask, targets[i]) if d is not None else 0.0
        scores.append(
            RegionScore(
                i,
                region.phrase,
                colour,
                shape,
                d is not None,
                iou,
                m_iou,
                d is not None and iou >= 0.5,
                i in colour_matched,
                d,
            )
        )

    det_counts = Counter((d.colour, d.shape) for d in found_dets)
    count_ok = all(det_counts[kind] == n for kind, n in Counter(kinds).items())
    relation_ok = None
    if rel is not None:
        s, name, o = rel
        relation_ok = (
            s in matched
            and o in matched
            and relation_holds(found_dets[matched[s]].centre, name, found_dets[matched[o]].centre)
        )

    def mean(values: Iterable[float]) -> float:
        values = list(values)
        return float(sum(values) / len(values))

    return ImageScore(
        regions=tuple(scores),
        detections=tuple(found_dets),
        object_in_box=mean(r.in_box for r in scores),
        mean_iou=mean(r.iou for r in scores),
        mean_mask_iou=mean(r.mask_iou for r in scores),
        colour_acc=mean(r.colour_ok for r in scores),
        found_rate=mean(r.found for r in scores),
        count_ok=bool(count_ok),
        relation_ok=None if relation_ok is None else bool(relation_ok),
        n_detections=len(found_dets),
        background_tint=tinted,
        miou_inside=semantic_miou(found_dets, kinds, targets, inside_only=True),
        miou_all=semantic_miou(found_dets, kinds, targets, inside_only=False),
    )


AGGREGATE_KEYS = (
    "object_in_box",
    "mean_iou",
    "mean_mask_iou",
    "colour_acc",
    "found_rate",
    "count_ok",
    "n_detections",
    "background_tint",
    "miou_inside",
    "miou_all",
)


def aggregate(scores: Sequence[ImageScore]) -> dict[str, float]:
    """Mean of each image-level number over ``scores`` (booleans as 0/1); ``relation_ok`` over the images that
    have a relation only (absent when none has); plus ``n_images`` and ``n_relation_images``."""
    out: dict[str, float] = {}
    if scores:
        for key in AGGREGATE_KEYS:
            out[key] = float(np.mean([float(getattr(s, key)) for s in scores]))
    with_relation = [s.relation_ok for s in scores if s.relation_ok is not None]
    if with_relation:
        out["relation_ok"] = float(np.mean(with_relation))
    out["n_images"] = len(scores)
    out["n_relation_images"] = len(with_relation)
    return out
