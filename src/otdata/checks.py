"""Type and range checks of user settings, with errors that name the setting and the fix.

Settings arrive from Python calls and from the command line (Hydra passes `max_iter=abc` on as the
string ``"abc"``), so every public constructor checks its numbers here instead of calling
``float()`` / ``int()`` on them: a bool is not a number (``epsilon=True`` is not ε = 1), ``inf`` and
NaN are not tolerances, ``2.5`` is not an iteration count. Integral floats (``1e3``) are accepted
as integers, since YAML and the command line write them so.

Every check raises :class:`SettingError` (a ``ValueError``) whose message names the setting, what
it must be and the value it got.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["SettingError", "UnknownSettingError", "boolean", "choice", "integer", "number", "optional", "pair"]


class SettingError(ValueError):
    """A setting has the wrong type or is out of its range."""


class UnknownSettingError(SettingError, TypeError):
    """A keyword names no setting (a ``TypeError``, as Python's own for an unknown keyword)."""


def _got(value: Any) -> str:
    return f"got {value!r} ({type(value).__name__})"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """``value`` as a float, checked to be a real number (not a bool or a string) in the range.

    ``low``/``high`` bound it (inclusive unless ``low_open``/``high_open``); ``finite`` refuses
    inf and NaN (NaN is always refused)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    what = "a finite number" if finite else "a number"
    if bounds:
        what += " " + " and ".join(bounds)
    if not _is_number(value):
        raise SettingError(f"{name} must be {what}, {_got(value)}")
    x = float(value)
    bad = math.isnan(x) or (finite and math.isinf(x))
    if low is not None:
        bad = bad or x < low or (low_open and x == low)
    if high is not None:
        bad = bad or x > high or (high_open and x == high)
    if bad:
        raise SettingError(f"{name} must be {what}, {_got(value)}")
    return x


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (integral floats such as ``1e3`` accepted), checked to be in range."""
    span = " and ".join(s for s in (f">= {low}" if low is not None else "",
                                     f"<= {high}" if high is not None else "") if s)
    what = "an integer" + (f" {span}" if span else "")
    if isinstance(value, bool) or not _is_number(value):
        raise SettingError(f"{name} must be {what}, {_got(value)}")
    if not (math.isfinite(float(value)) and float(value) == int(value)):
        raise SettingError(f"{name} must be {what}, {_got(value)}")
    n = int(value)
    if (low is not None and n < low) or (high is not None and n > high):
        raise SettingError(f"{name} must be {what}, {_got(value)}")
    return n


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is a bool (``1``, ``"yes"`` or ``None`` are refused, not guessed)."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and str(value.dtype) == "bool":
        return bool(value)  # a numpy / torch boolean scalar
    raise SettingError(f"{name} must be true or false, {_got(value)}")


def choice(name: str, value: Any, options: Iterable[Any]) -> Any:
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    if not any(isinstance(value, type(o)) and value == o for o in options):
        raise SettingError(f"{name} must be one of {options}, {_got(value)}")
    return value


def pair(name: str, value: Any, check=number, **bounds: Any) -> tuple:
    """``value`` as a tuple of two checked entries (e.g. ``clamp=[0, 1]``, ``channels=[16, 32]``)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence) or len(value) != 2:
        raise SettingError(f"{name} must be a pair [a, b], {_got(value)}")
    return tuple(check(f"{name}[{i}]", v, **bounds) for i, v in enumerate(value))


def optional(check, name: str, value: Any, **bounds: Any) -> Any:
    """``None``, or ``check(name, value, **bounds)``."""
    return None if value is None else check(name, value, **bounds)
