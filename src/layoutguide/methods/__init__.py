"""Layout methods: one file each, one interface (:class:`GuidanceMethod`), one registry."""

from __future__ import annotations

from .base import GuidanceContext, GuidanceMethod, LossOutput, MethodOptionError, MethodOptions, StepPlan
from .refocus import Refocus

REGISTRY: dict[str, type[GuidanceMethod]] = {cls.name: cls for cls in (GuidanceMethod, Refocus)}


def get_method(spec: str | GuidanceMethod | None, **options) -> GuidanceMethod:
    """A method instance from a registered name (``"refocus"``), an instance, or None (plain sampling)."""
    if isinstance(spec, GuidanceMethod):
        if options:
            raise MethodOptionError("options cannot be given together with a method instance; set them on the instance")
        return spec
    name = spec or "none"
    if name not in REGISTRY:
        raise MethodOptionError(f"unknown method {name!r}; registered methods: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**options)


__all__ = ["REGISTRY", "get_method", "GuidanceContext", "GuidanceMethod", "LossOutput", "MethodOptionError", "MethodOptions", "StepPlan", "Refocus"]
