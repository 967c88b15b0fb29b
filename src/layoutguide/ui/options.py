"""Each method's options as form fields, read from its validated pydantic ``Options`` schema: the kind of control,
the bounds, the choices, and the default (the model's ``layoutguide.json`` first, then the method's own)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from annotated_types import Ge, Gt, Le, Lt

from ..defaults import family_defaults
from ..methods import COMBINATIONS, REGISTRY
from ..spec import MethodSpec


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One option of one method: ``kind`` is bool, int, float, choice or text."""

    method: str
    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] = ()
    description: str = ""

    @property
    def key(self) -> str:
        return f"{self.method}.{self.name}"


def method_choices() -> list[str]:
    """Every registered method and combination (the page lists those of its model: ``ModelInfo.methods``)."""
    return ["none"] + sorted(n for n in REGISTRY if n != "none") + list(COMBINATIONS)


def _kind(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    args = typing.get_args(annotation)
    if type(None) in args and len(args) == 2:  # an optional number (None: unset) is an empty number field
        annotation = next(a for a in args if a is not type(None))
        if annotation not in (int, float):
            return "text", ()
    if annotation is bool:
        return "bool", ()
    if typing.get_origin(annotation) is typing.Literal:
        return "choice", typing.get_args(annotation)
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    return "text", ()


def option_fields(
    method: str, model_defaults: dict[str, Any] | None = None, family: str | None = None
) -> list[OptionField]:
    """The option fields of every member of ``method`` (a spec such as ``gligen+refocus``), defaults from
    ``model_defaults["methods"]`` (the model's ``layoutguide.json``) over the backbone ``family``'s (a model without
    that file) over the schema's: the values that run when a field is left alone."""
    spec = MethodSpec.parse(method)
    calibrated = (model_defaults or {}).get("methods", {})
    fields = []
    for member in spec.members:
        cls = REGISTRY.get(member)
        if cls is None:
            continue
        for name, info in cls.Options.model_fields.items():
            kind, choices = _kind(info.annotation)
            bounds: dict[str, Any] = {}
            for meta in info.metadata:
                if isinstance(meta, (Ge, Gt)):
                    bounds["minimum"] = float(meta.ge if isinstance(meta, Ge) else meta.gt)  # type: ignore[arg-type]
                    bounds["exclusive_minimum"] = isinstance(meta, Gt)
                elif isinstance(meta, (Le, Lt)):
                    bounds["maximum"] = float(meta.le if isinstance(meta, Le) else meta.lt)  # type: ignore[arg-type]
            from_family = family_defaults(family, member, model_defaults or {}) if family else {}
            default = calibrated.get(member, {}).get(name, from_family.get(name, (info.default,))[0])
            fields.append(
                OptionField(member, name, kind, default, choices=choices, description=info.description or "", **bounds)
            )
    return fields


def changed_options(fields: list[OptionField], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{member: {option: value}}`` of the values that differ from the shown defaults (what the run file's
    ``--set`` needs; unchanged ones come from the model's defaults on both sides)."""
    out: dict[str, dict[str, Any]] = {}
    for field in fields:
        if field.key not in values or values[field.key] == field.default:
            continue
        value = values[field.key]
        if field.kind == "text" and value == ("" if field.default is None else str(field.default)):
            continue  # a text box shows its default as text ("" for unset): left alone, it changes nothing
        if field.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        out.setdefault(field.method, {})[field.name] = value
    return out
