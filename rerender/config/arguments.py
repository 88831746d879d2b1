"""Checks of the arguments every entry point takes (flags, a progress callback, a cancel event), shared by the
workflow (`translate`, `animate`, …) and by `rerender.propagation` below it: each refuses a value of the wrong kind
before any work, naming the argument as the Python caller spelled it."""

from __future__ import annotations

from typing import Any

import numpy as np

from rerender.errors import ConfigError

__all__ = ["check_flags", "check_progress_arguments", "plain_number"]


def check_progress_arguments(callback: Any, cancel: Any) -> None:
    """Refuse a `callback` that cannot be called as `callback(stage, done, total)` and a `cancel` that is no event,
    before any work (they are first used after the frames are decoded).

    Raises:
        ConfigError: naming `callback` or `cancel`, the value and what is valid.
    """
    import inspect

    if callback is not None:
        if not callable(callback):
            raise ConfigError(f"`callback` must be a function callback(stage, done, total) or None, got {callback!r}")
        try:
            inspect.signature(callback).bind("frames", 0, 1)
        except TypeError:
            raise ConfigError(
                f"`callback` must take three arguments (stage, done, total), got {callback!r} with the signature "
                f"{inspect.signature(callback)}"
            ) from None
        except ValueError:  # no signature to read (some built-ins): called as it is
            pass
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise ConfigError(f"`cancel` must be a threading.Event (set it to stop) or None, got {cancel!r}")


def check_flags(**flags: Any) -> None:
    """Refuse a flag argument that is not True or False: a string such as "no" is truthy, so it would switch the
    flag on, whatever it says.

    Raises:
        ConfigError: naming the argument, as the Python caller spelled it, and its value.
    """
    for name, value in flags.items():
        if not isinstance(value, bool) and not (
            type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
        ):  # numpy's too
            raise ConfigError(f"`{name}` must be True or False, got {value!r}")


def plain_number(value: Any) -> Any:
    """A numpy integer or float (from an array, a slider) as the Python number it holds; anything else unchanged,
    to be checked as given."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
