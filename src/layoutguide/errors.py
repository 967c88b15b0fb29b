"""The one base class of every error the library raises on purpose.

A ``LayoutguideError`` means "the input or the environment is wrong, and the message says which field and how to
fix it": the CLI and the web UI print its message on one line (exit code 2) instead of a traceback. Anything else
that escapes is a bug. Library messages name Python arguments and fields, never CLI flags: the CLI words its own.

Subclasses also derive from the builtin class callers would catch without knowing this library (``ValueError`` for
bad values, ``RuntimeError`` for a missing model, ``TimeoutError`` for a planner deadline), so existing
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class LayoutguideError(Exception):
    """Base of every deliberate error of layoutguide; its message is one line naming the field and the fix."""


class InputError(LayoutguideError, ValueError):
    """A value given to a library function is invalid (out of range, NaN, wrong type, malformed text)."""


class SlowDtypeWarning(UserWarning):
    """The chosen dtype runs, but far slower than float32 on this machine (the CLI prints it as one ``note:`` line)."""
