"""Exit codes, the parser class that raises instead of exiting, and the usage error `main` reports."""

from __future__ import annotations

import argparse
import logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

logger = logging.getLogger("rerender.cli")


class UsageError(Exception):
    """Raised by the parser instead of exiting, so `main` owns every exit code."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")
