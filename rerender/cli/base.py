"""Exit codes, the parser class that raises instead of exiting, and the usage error `main` reports."""

from __future__ import annotations

import argparse
import logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Success; a run-time failure; a usage error (bad arguments, config or input files); Ctrl-C."""

logger = logging.getLogger("rerender.cli")


class UsageError(Exception):
    """A mistake in the command line (exit code 2); raised by the parser instead of exiting, and by commands for
    checks argparse cannot make, so `main` owns every exit code."""


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` that raises `UsageError` where argparse would print and exit."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")
