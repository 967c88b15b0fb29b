"""What the command line checks and how it reports: one line and exit code 2 for every ``LayoutguideError`` (caught
once, by the command group), output paths checked before a model loads, file names made from phrases kept inside
their folder, images written atomically; the flags the command modules share (``--model``, ``--guidance-interval``,
``--preset``) and the model loading that checks its flags first."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from .errors import InputError, LayoutguideError, SlowDtypeWarning
from .inputs import PromptTruncatedWarning
from .layout import atomic_write_bytes

MODEL_HELP = "shapes (default), shapes-gligen, a diffusers folder or a hub id."
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}
IMAGE_FORMATS[".tiff"] = "TIFF"


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


class ClearErrorGroup(TyperGroup):
    """Every command's ``LayoutguideError`` becomes ``error: <message>`` and exit code 2, never a traceback; a
    truncated prompt is one ``warning:`` line, a slow dtype one ``note:`` line."""

    def invoke(self, ctx: Any) -> Any:
        with warnings.catch_warnings():
            original = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
                if issubclass(category, PromptTruncatedWarning):
                    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)
                elif issubclass(category, SlowDtypeWarning):  # every --dtype reaches load_pipeline's pick_dtype
                    note(f"--dtype: {message}")
                else:
                    original(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            try:
                return super().invoke(ctx)
            except LayoutguideError as e:
                message = " ".join(str(e).split()) or type(e).__name__
                typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None


def _check_writable_folder(folder: Path, flag: str) -> None:
    """The folder exists and is writable, or could be created: its nearest existing ancestor is a writable folder."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        fail(f"{flag}: {str(probe)!r} is a file, so {str(folder)!r} cannot be a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        fail(f"{flag}: {str(probe)!r} is not writable; choose a folder you can write to")


def check_image_path(path: Path, flag: str = "--out") -> None:
    """Before any model loads: a known image extension, not a folder, in a folder that can be written."""
    if path.is_dir():
        fail(f"{flag}: {str(path)!r} is a folder; give an image file name such as out.png")
    if path.suffix.lower() not in IMAGE_FORMATS:
        fail(
            f"{flag}: {str(path)!r} has "
            + (f"the extension {path.suffix!r}" if path.suffix else "no extension")
            + f"; use one of {', '.join(sorted(IMAGE_FORMATS))}"
        )
    if path.exists() and not os.access(path, os.W_OK):
        fail(f"{flag}: {str(path)!r} exists and is not writable")
    _check_writable_folder(path.parent, flag)


def check_folder_path(path: Path, flag: str) -> None:
    """Before any model loads: an output folder that is not an existing file and can be created and written."""
    if path.exists() and not path.is_dir():
        fail(f"{flag}: {str(path)!r} is an existing file; give a folder")
    _check_writable_folder(path, flag)


def safe_name(text: str, limit: int = 60) -> str:
    """A file-name part from free text (phrases come from users and LLMs): letters, digits, ``-`` and ``_`` only, so
    ``/`` and ``..`` cannot leave the folder; never empty."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:limit]
    return name or "region"


def save_image(image: Any, path: Path) -> None:
    """Encode in memory, then write atomically: a killed run never leaves half an image."""
    buffer = io.BytesIO()
    image.save(buffer, format=IMAGE_FORMATS.get(path.suffix.lower(), "PNG"))
    atomic_write_bytes(path, buffer.getvalue())


def guidance_interval_option():
    return typer.Option(
        None,
        help="CFG only at timesteps LOW<=t<=HIGH, e.g. 0,900 (the conditional model alone elsewhere); 'all' for "
        "every step. Default: the model's.",
    )


def preset_option():
    return typer.Option(
        None,
        help="tuned (default: the model's and backbone family's values), official (the official code's "
        "configuration) or paper (the paper's text); --set and explicit flags win. 'layoutguide methods' shows each.",
    )


def check_preset_flag(preset: str | None) -> str | None:
    from .spec import MethodOptionError, check_preset

    try:
        return check_preset(preset, "--preset")
    except MethodOptionError as e:
        fail(str(e))


def flagged(flag: str, check, *args, **kwargs):
    """Run a library check; its InputError is reported under the CLI flag that carried the value."""
    try:
        return check(*args, **kwargs)
    except InputError as e:
        fail(f"{flag}: {e}")


def check_numbers(**values: tuple[str, Any]) -> None:
    """Refuse NaN/inf/0/negative numbers before a model loads, under their flags (``field=(flag, value)``)."""
    from .inputs import check_call_inputs

    for field, (flag, value) in values.items():
        flagged(flag, check_call_inputs, None, **{field: value})


def load_checked(model, device, dtype, guidance_interval: str | None = None):
    """The pipeline, after the device, dtype and guidance interval are checked under their flags."""
    from .loading import load_pipeline, parse_guidance_interval, pick_device, pick_dtype

    chosen = flagged("--device", pick_device, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowDtypeWarning)  # a check only: load_pipeline's own pick_dtype warns, once
        flagged("--dtype", pick_dtype, dtype, chosen)
    if guidance_interval is not None:
        flagged("--guidance-interval", parse_guidance_interval, guidance_interval)
    return load_pipeline(model, device=device, dtype=dtype, guidance_interval=guidance_interval)


def note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)
