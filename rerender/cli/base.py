"""Exit codes, the parser class that raises instead of exiting, the usage error `main` reports, and how the CLI keeps
third-party messages out of the user's way."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Success; a run-time failure; a usage error (bad arguments, config or input files); Ctrl-C."""

logger = logging.getLogger("rerender.cli")

OWN_PACKAGES = ("rerender", "ebsynth_bridge", "__main__")
"""Loggers and warning origins that are ours (`__main__`: an example script run with `run_example`)."""

LIBRARY_VERBOSITY = {"transformers": "TRANSFORMERS_VERBOSITY", "diffusers": "DIFFUSERS_VERBOSITY"}
"""Libraries that log through a handler of their own (not the root logger's), and the environment variable each
reads its level from when it first logs (also in worker processes, which inherit the environment)."""


class UsageError(Exception):
    """A mistake in the command line (exit code 2); raised by the parser instead of exiting, and by commands for
    checks argparse cannot make, so `main` owns every exit code."""


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` that raises `UsageError` where argparse would print and exit."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")


def _is_own(name: str) -> bool:
    return name.split(".")[0] in OWN_PACKAGES


class _OwnOrError(logging.Filter):
    """Passes our own records, and any library's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or _is_own(record.name)


@contextlib.contextmanager
def third_party_messages(verbose: bool) -> Iterator[None]:
    """Keep other libraries' warnings (transformers' torchvision fallbacks, diffusers' deprecations, Python
    `warnings` of any package but ours) off the terminal for one command, unless `verbose`; their errors, and every
    message of ours, still show. Everything changed is restored when the block ends (the CLI may run in-process).

    The library itself never does this (it configures no logging and no warnings filter): only the CLI decides what
    its user sees. A user's own ``TRANSFORMERS_VERBOSITY``/``DIFFUSERS_VERBOSITY``/``PYTHONWARNINGS`` are kept.
    """
    if verbose:
        yield
        return
    environment = {name: os.environ.get(name) for name in (*LIBRARY_VERBOSITY.values(), "PYTHONWARNINGS")}
    levels: dict[str, int] = {}
    for name, variable in LIBRARY_VERBOSITY.items():
        if environment[variable] is None:  # read when the library first logs, here and in worker processes
            os.environ[variable] = "error"
            library = logging.getLogger(name)
            levels[name] = library.level  # the library set it already when it was imported before this command
            library.setLevel(logging.ERROR)
    if environment["PYTHONWARNINGS"] is None:
        os.environ["PYTHONWARNINGS"] = "ignore"  # worker processes (Ray) start with this environment
    quiet = _OwnOrError()
    handlers = list(logging.getLogger().handlers)  # libraries that log through the root logger (huggingface_hub)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for package in OWN_PACKAGES:
                warnings.filterwarnings("default", module=rf"{package}(\.|$)")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for variable, value in environment.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
