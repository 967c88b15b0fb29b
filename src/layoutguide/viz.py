"""Pictures: layouts drawn on images, attention heatmaps per region, result grids. PIL and numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .layout import Layout

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (128, 128, 0),
    (0, 128, 128),
    (170, 110, 40),
]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_layout(
    image: Image.Image | None,
    layout: Layout,
    *,
    scale: int | None = None,
    labels: bool = True,
    first_index: int = 0,
) -> Image.Image:
    """The layout's boxes (and masks, tinted) with phrase labels over ``image`` (or a blank canvas).

    Small images are enlarged first (nearest neighbour) so that labels stay legible. Region ``i`` is numbered and
    coloured as region ``first_index + i`` (a part of a larger layout drawn alone keeps its own number and colour).
    """
    if image is None:
        image = Image.new("RGB", (layout.width, layout.height), "white")
    image = image.convert("RGB")
    if scale is None:
        scale = max(1, 256 // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    w, h = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(max(10, h // 28))
    for i, region in enumerate(layout.regions, start=first_index):
        colour = PALETTE[i % len(PALETTE)]
        if region.mask is not None:
            mask = Image.fromarray(region.mask.astype(np.uint8) * 90).resize((w, h), Image.Resampling.NEAREST)
            overlay.paste(Image.new("RGBA", image.size, colour + (255,)), (0, 0), mask)
        x0, y0, x1, y1 = region.bbox
        box = (x0 * w, y0 * h, x1 * w - 1, y1 * h - 1)
        draw.rectangle(box, outline=colour + (255,), width=max(1, h // 160))
        if labels:
            text = f"{i}: {region.phrase}"
            tw, th = draw.textbbox((0, 0), text, font=font)[2:]
            ty = box[1] - th - 2 if box[1] - th - 2 >= 0 else box[1] + 1
            draw.rectangle((box[0], ty, box[0] + tw + 3, ty + th + 2), fill=colour + (200,))
            draw.text((box[0] + 2, ty), text, fill=(255, 255, 255, 255), font=font)
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def colormap(values: np.ndarray) -> np.ndarray:
    """A perceptually ordered dark-blue -> red -> yellow map for values in [0, 1]; returns uint8 RGB."""
    stops = np.array(
        [
            [0, 0, 4],
            [40, 11, 84],
            [101, 21, 110],
            [159, 42, 99],
            [212, 72, 66],
            [245, 125, 21],
            [250, 193, 39],
            [252, 255, 164],
        ],
        dtype=np.float32,
    )
    v = np.clip(values, 0, 1) * (len(stops) - 1)
    lo = np.floor(v).astype(int).clip(0, len(stops) - 2)
    frac = (v - lo)[..., None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).round().astype(np.uint8)


def heatmap(
    values: np.ndarray, size: tuple[int, int], image: Image.Image | None = None, alpha: float = 0.6
) -> Image.Image:
    """A 2-D map normalised to [0, 1], coloured, enlarged to ``size`` (w, h), optionally blended over ``image``."""
    v = values.astype(np.float32)
    v = (v - v.min()) / (v.max() - v.min() + 1e-8)
    img = Image.fromarray(colormap(v)).resize(size, Image.Resampling.BILINEAR)
    if image is not None:
        img = Image.blend(image.convert("RGB").resize(size), img, alpha)
    return img


def region_heatmaps(
    image: Image.Image, layout: Layout, token_maps: np.ndarray, indices: Sequence[Sequence[int]], *, size: int = 256
) -> list[Image.Image]:
    """One heatmap per region: the summed attention of its phrase tokens, with its box drawn.

    ``token_maps`` is ``(h, w, 77)`` cross-attention (e.g. one step of ``LayoutPipelineOutput.attention``).
    """
    out = []
    for r, idx in enumerate(indices):
        m = token_maps[..., list(idx)].sum(-1)
        tile = heatmap(m, (size, size), image)
        single = Layout(prompt=layout.prompt, regions=(layout.regions[r],), width=layout.width, height=layout.height)
        out.append(draw_layout(tile, single, scale=1, first_index=r))
    return out


def grid(
    images: Sequence[Image.Image], *, columns: int | None = None, captions: Sequence[str] | None = None, pad: int = 4
) -> Image.Image:
    """Images in a grid (row-major), each with an optional caption underneath."""
    if not images:
        raise ValueError("grid: no images")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    w = max(i.width for i in images)
    h = max(i.height for i in images)
    font = _font(max(10, w // 20))
    cap_h = (font.size + 6 if hasattr(font, "size") else 14) * (2 if captions else 0)
    rows = int(np.ceil(len(images) / columns))
    canvas = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + cap_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for k, im in enumerate(images):
        x, y = pad + (k % columns) * (w + pad), pad + (k // columns) * (h + cap_h + pad)
        canvas.paste(im.convert("RGB"), (x, y))
        if captions:
            draw.multiline_text((x, y + h + 2), _wrap(captions[k], draw, font, w), fill=(0, 0, 0), font=font)
    return canvas


def _wrap(text: str, draw: ImageDraw.ImageDraw, font, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return "\n".join(lines[:2])
