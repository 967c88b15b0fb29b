"""The one grammar of method specs, shared by Python, the CLI, the benchmarks and the UI.

    none                                   plain sampling
    refocus                                a registered method
    gligen+pww+refocus                     a combination (members joined by ``+``)
    refocus[tokens=last,sar=false]         a variant: options in brackets (``,`` or ``;`` between them)
    gligen+pww+refocus[refocus.tokens=last;pww.weight=0.2]   in a combination, options name their member
    --set refocus.loss_scale=10            (CLI) an option for every entry that has that member
    refocus[preset=official]               a preset (:mod:`layoutguide.presets`): ``tuned`` (the model's and the
                                           backbone family's defaults), ``official`` (the official code's
                                           configuration) or ``paper`` (the paper's text); explicit options win
    gligen+refocus[preset=official;refocus.loss_scale=2]   in a combination, ``preset`` names no member

Values are JSON (``2``, ``0.5``, ``true``, ``"x"``) or a bare string (``variant=official``). This module only parses:
:func:`layoutguide.methods.get_method` checks names and option values against the registry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from .errors import LayoutguideError


class MethodOptionError(LayoutguideError, ValueError):
    """A method spec or option is malformed, names an unknown method or option, or has a bad value."""


PRESETS = ("tuned", "official", "paper")  # layoutguide.presets defines what each holds per method and backbone


def check_preset(preset: str | None, where: str = "preset") -> str | None:
    """``preset`` unchanged when it is None or a known preset name; else a MethodOptionError naming ``where``."""
    if preset is not None and preset not in PRESETS:
        raise MethodOptionError(f"{where}: unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return preset


def option_value(raw: str) -> Any:
    """An option value as written on a command line: JSON (``2``, ``0.5``, ``true``, ``"x"``) or a bare string.
    Non-finite numbers (``NaN``, ``Infinity``) are refused: no option of any method means anything with them."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare string such as variant=official
    if isinstance(value, float) and not math.isfinite(value):
        raise MethodOptionError(f"option value {raw!r} is not a finite number; give a finite number")
    return value


def split_methods(text: str) -> list[str]:
    """A list of specs split on the commas outside brackets: ``"none,refocus[tokens=last,sar=false]"`` is two
    entries. An empty list, an empty entry (``"refocus,,none"``) or an unbalanced bracket is an error."""
    if text.count("[") != text.count("]"):
        raise MethodOptionError(f"methods {text!r}: unbalanced brackets; a variant is written NAME[OPTION=VALUE,...]")
    parts = [m.strip() for m in re.split(r",(?![^\[]*\])", text)]
    if not any(parts):
        raise MethodOptionError("methods: no method given; name at least one, e.g. none,refocus")
    if not all(parts):
        raise MethodOptionError(f"methods {text!r}: an empty entry between commas; remove the extra comma")
    return parts


def parse_sets(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["refocus.loss_scale=2", "refocus.sar=false"]`` -> ``{"refocus": {"loss_scale": 2, "sar": False}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        method, dot, option = key.partition(".")
        if not sep or not dot or not method.strip() or not option.strip():
            raise MethodOptionError(f"option {item!r}: expected METHOD.OPTION=VALUE, e.g. refocus.loss_scale=2")
        out.setdefault(method.strip(), {})[option.strip()] = option_value(raw.strip())
    return out


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One parsed spec: its label as written, the method (a name, a ``+`` combination, or None for plain sampling)
    and its options (a combination's are keyed by member)."""

    label: str
    method: str | None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    preset: str | None = None  # a name of PRESETS, applied under the options (None: the call's preset, else tuned)

    @property
    def members(self) -> list[str]:
        return self.method.split("+") if self.method else []

    def with_preset(self, preset: str | None) -> MethodSpec:
        """This spec with ``preset`` where its brackets name none (a ``--preset`` flag for every entry)."""
        if preset is None or self.preset is not None:
            return self
        return dataclasses.replace(self, preset=check_preset(preset, "--preset"))

    @classmethod
    def parse(cls, text: str, options: dict[str, dict[str, Any]] | None = None) -> MethodSpec:
        """Parse ``text`` (see the module docstring). ``options`` (``{member: {option: value}}``, e.g. from
        :func:`parse_sets`) apply first, the brackets override them for this entry. Checks the grammar and the
        preset name only."""
        label = text.strip()
        name, _, bracket = label.partition("[")
        name = name.strip()
        if bracket and not bracket.endswith("]"):
            raise MethodOptionError(f"method {label!r}: a variant is written NAME[OPTION=VALUE,...] with the ']' last")
        members = [m.strip() for m in name.split("+")]
        if not all(members):
            raise MethodOptionError(f"method {label!r}: an empty member around '+'; write e.g. zestguide+pww")
        merged = {m: dict((options or {}).get(m, {})) for m in members}
        preset = None
        for item in filter(None, (part.strip() for part in re.split(r"[;,]", bracket[:-1]))):
            key, sep, raw = item.partition("=")
            if key.strip() == "preset" and sep:
                preset = check_preset(raw.strip(), f"method {label!r}")
                continue
            member, _, option = key.strip().rpartition(".")
            member = member or (members[0] if len(members) == 1 else "")
            if not sep or not option or member not in merged:
                which = (
                    f", with the member named in a combination: {members[-1]}.OPTION=VALUE" if len(members) > 1 else ""
                )
                raise MethodOptionError(f"method {label!r}: bad variant option {item!r}; write OPTION=VALUE{which}")
            merged[member][option] = option_value(raw.strip())
        if len(members) > 1:  # a combination takes its options per member
            return cls(label=label, method=name, options={m: o for m, o in merged.items() if o}, preset=preset)
        return cls(label=label, method=None if name == "none" else name, options=merged[name], preset=preset)
