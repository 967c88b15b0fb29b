"""Caps that keep one person's request from taking a shared server down, each refused with a one-line message."""

from __future__ import annotations

import dataclasses

from ..errors import InputError


class LimitError(InputError):
    """A request asks for more than the server allows (regions, canvas, steps, images, methods, upload size)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for. ``upload_bytes`` is also handed to Gradio's ``max_file_size``."""

    max_regions: int = 16
    max_canvas: int = 1024
    max_steps: int = 100
    max_images: int = 4
    max_compare: int = 6
    upload_bytes: int = 2_000_000

    def check_regions(self, n: int) -> None:
        if n > self.max_regions:
            raise LimitError(f"layout: {n} regions; this server allows at most {self.max_regions}; delete some boxes")

    def check_canvas(self, width: int, height: int) -> None:
        if max(width, height) > self.max_canvas:
            raise LimitError(
                f"layout: canvas {width}x{height} px; this server allows at most {self.max_canvas} px a side"
            )

    def check_sampling(self, steps: int, images: int) -> None:
        if not 1 <= steps <= self.max_steps:
            raise LimitError(f"steps: {steps}; give 1 to {self.max_steps}")
        if not 1 <= images <= self.max_images:
            raise LimitError(f"images per prompt: {images}; give 1 to {self.max_images}")

    def check_compare(self, n: int) -> None:
        if n > self.max_compare:
            raise LimitError(f"compare: {n} methods; this server compares at most {self.max_compare} at once")

    def check_upload(self, size: int, name: str) -> None:
        if size > self.upload_bytes:
            raise LimitError(
                f"upload {name!r}: {size} bytes; this server accepts files up to {self.upload_bytes} bytes"
            )
