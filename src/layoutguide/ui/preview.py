"""The drawn layout as a picture with each box's check result beside it: the offending box in red with the
library's message next to it, so a person sees which box to fix (the boxes need not be valid to be drawn)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..layout import Region
from .annotate import colour, display_size

ERROR_RED = (200, 0, 0)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def check_picture(
    regions: Sequence[Region], messages: Sequence[str | None], width: int, height: int, display: int = 384
) -> Image.Image:
    """Boxes on a white canvas at display size, numbered as in the check list; a failing box red, its message
    wrapped beside it (below it, or above when it sits at the bottom)."""
    w, h = display_size(width, height, display)
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    font = _font(12)
    for i, (region, message) in enumerate(zip(regions, messages)):
        x0, y0, x1, y1 = (v * s for v, s in zip(region.box or region.bbox, (w, h, w, h)))
        tint = ERROR_RED if message else colour(i)
        draw.rectangle((x0, y0, x1, y1), outline=tint, width=3 if message else 2)
        draw.text((x0 + 3, y0 + 2), f"{i}: {region.phrase or '(no phrase)'}", fill=tint, font=font)
        if message:
            text = "\n".join(textwrap.wrap(message, width=max(20, int((w - x0) / 7)))[:5])
            box = draw.multiline_textbbox((0, 0), text, font=font)
            ty = y1 + 3 if y1 + 3 + box[3] <= h else max(0, y0 - box[3] - 3)
            draw.rectangle((x0, ty, x0 + box[2] + 4, ty + box[3] + 4), fill=(255, 235, 235))
            draw.multiline_text((x0 + 2, ty + 2), text, fill=ERROR_RED, font=font)
    return image
