"""The `rerender` command line. The only part of the package that prints.

Exit codes: 0 success, 1 runtime failure, 2 usage error (bad arguments, bad config, bad input files), 130
interrupted (Ctrl-C). User errors print one line (`error: ...`) that names CLI options, not the Python API's
arguments; `--verbose` adds debug logging and tracebacks, and shows other libraries' warnings (hidden otherwise:
`rerender.cli.base.third_party_messages`).

Each command is a module of `rerender.cli.commands` with `register(subparsers)` and `run(args) -> int`; the
options several commands share are declared once in `rerender.cli.options`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from rerender.cli.base import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    logger,
    third_party_messages,
)
from rerender.cli.commands import (
    animate,
    batch,
    config,
    download,
    env,
    eval,
    generate,
    info,
    preprocess,
    propagate,
    translate,
    ui,
)
from rerender.cli.options import expand_home
from rerender.cli.reference import reference_markdown

__all__ = [
    "main",
    "build_parser",
    "reference_markdown",
    "run_example",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
]

COMMANDS = (config, info, env, download, preprocess, translate, batch, propagate, eval, animate, generate, ui)
"""The command modules, in the order `rerender --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The full `rerender` argument parser."""
    from rerender import __version__

    parser = Parser(
        prog="rerender",
        description="Zero-shot text-guided video-to-video translation (Rerender A Video).",
        epilog="Run `rerender COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"rerender {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, tracebacks and other libraries' warnings"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(commands)
    return parser


_API_ARGUMENTS = {
    "force": "--force",
    "overwrite": "--overwrite",
    "workspace": "--workspace",
    "output": "-o/--output",
    "stage": "--stage",
    "K": "-K/--interval",
    "prompt": "-p/--prompt",
    "style_image": "--style-image",
    "audio_prompt": "--audio-prompt",
    "comparison": "--comparison",
    "start_frame": "--start-frame",
    "frame_stride": "--frame-stride",
    "max_frames": "--max-frames",
    "checkpoint": "`flow.flow_checkpoint`",
    "parallel": "--jobs",
    "output_dir": "-o/--output",
    "port": "--port",
}
"""Python API arguments that library messages may name, and the CLI options that set them.

A fallback: the commands check their own options first, naming them as typed (argparse types, choices from the
config, `check_output_path(..., name="-o/--output")`), so only messages from deeper in the library reach this."""


def _cli_message(message: str, names: dict[str, str] | None = None) -> str:
    """A library message in CLI terms: `force=True` → --force, `workspace` → --workspace (config keys stay);
    `names`: the running command's own Python arguments and flags (`--amount` for `animate`'s `amount`)."""
    arguments = {**_API_ARGUMENTS, **(names or {})}
    # an unknown key is what the user typed (--set, a config file): never turned into a flag of another command
    message = re.sub(r"unknown option `([^`]+)`", "unknown option \0\\1\0", message)
    # "--force (force=True)": the API spelling in parentheses after the flag goes.
    message = re.sub(r"\s*\((\w+)=(?:True|False|None)\)", "", message)

    def flag(match: re.Match) -> str:
        return arguments.get(match.group(1), match.group(0))

    message = re.sub(r"`([\w.\[\]]+)(?:=(?:True|False|None))?`", flag, message)
    # "`output.audio_track` (--audio-track)", "`force=True` (CLI: --force)": the flag once
    message = re.sub(r"(-[\w/-]+) \((?:CLI: )?\1\)", r"\1", message)
    message = re.sub(r"(-[\w/-]+) '([^'\s]*)' \(\1 \2\)", r"\1 \2", message)  # "--x 'en' (--x en)": once
    message = re.sub(r"\b(\w+)=True\b", lambda match: arguments.get(match.group(1), match.group(0)), message)
    return message.replace("\0", "`")


def _interrupted_message(args: argparse.Namespace | None) -> str:
    """The one line printed on Ctrl-C: what was kept, and how to resume (the command says, where it keeps work)."""
    describe = getattr(args, "interrupted_message", None)
    return describe(args) if describe is not None else "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    Ctrl-C at any moment prints one line (what was kept and how to resume) and returns 130, also when the
    interrupt surfaces as another error (a worker that died of it). Run as the program (`argv` None), a
    second Ctrl-C after that is ignored, so that nothing (worker shutdown included) prints a traceback.
    """
    parsed: list[argparse.Namespace] = []
    interrupts: list[int] = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main_thread:

        def on_interrupt(signum, frame) -> None:
            interrupts.append(signum)  # remembered: a worker may turn the interrupt into another error
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        try:
            return _run(argv, parsed, interrupts)
        except KeyboardInterrupt:
            if in_main_thread:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while reporting
            print(_interrupted_message(parsed[0] if parsed else None), file=sys.stderr)
            sys.stderr.flush()
            if argv is None and in_main_thread:
                previous = signal.SIG_IGN  # the program is ending: let nothing interrupt its shutdown
            return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _caused_by_interrupt(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _run(argv: Sequence[str] | None, parsed: list[argparse.Namespace], interrupts: list[int]) -> int:
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        parser = build_parser()
        args = expand_home(parser.parse_args(argv))  # a quoted "~/clip.mp4" as the shell expands an unquoted one
        parsed.append(args)
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        loads_models = getattr(args, "model.renderer", None) != "classic" and args.handler in (
            translate.run,
            animate.run,
            generate.run,
            batch.run,
        )
        with third_party_messages(verbose):  # other libraries' warnings only with --verbose
            if not (getattr(args, "quiet", False) and loads_models):
                return args.handler(args)
            # -q: also the bars third-party code draws while models load
            from rerender.diffusion.loading import loading_bars

            with loading_bars(False):
                return args.handler(args)
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if interrupts or _caused_by_interrupt(error):
            raise KeyboardInterrupt from None
        return _report(error, verbose, names=_typed_names(parser, parsed[0]) if parsed else None)


def _typed_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The running command's names for messages: its own Python arguments (`api_names`), and each config key
    the user set with a flag (`model.base_model` → --model, `control[0].model` stays: no flag sets it)."""
    names = dict(getattr(args, "api_names", None) or {})
    commands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    command = commands[0].choices.get(getattr(args, "command", None)) if commands else None
    for action in command._actions if command is not None else ():
        if "." in action.dest and action.option_strings and getattr(args, action.dest, None) is not None:
            names[action.dest] = "/".join(action.option_strings)
            if action.dest == "model.loras":  # messages name each LoRA's path (`model.loras[0].path`)
                for position in range(len(getattr(args, action.dest))):
                    names[f"model.loras[{position}].path"] = names[action.dest]
    return names


def _report(
    error: Exception, verbose: bool, hint: str = "run with --verbose for details", names: dict[str, str] | None = None
) -> int:
    """Print one line for `error` (the traceback too with --verbose); returns the exit code.

    Usage errors (2): bad values, files that are missing or not ours to write (`ValueError`, `FileNotFoundError`,
    `NotADirectoryError`, `PermissionError` and their `rerender.errors` subclasses). Everything else is a run-time
    failure (1), a service that cannot be reached (`ServiceUnavailableError`, a `ConnectionError`) included.
    """
    usage = isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)) and not isinstance(
        error, ConnectionError
    )
    if verbose:
        logger.error("usage error" if usage else "failed", exc_info=error)
    if usage:
        print(f"error: {_cli_message(str(error), names)}", file=sys.stderr)
        return EXIT_USAGE
    # Anything else is a runtime failure; the CLI still reports it in one line. Our own errors say what
    # happened in words; an unexpected one is named by its type.
    from rerender.errors import RerenderError

    named = "" if isinstance(error, RerenderError) else f"{type(error).__name__}: "
    print(f"error: {named}{_cli_message(str(error), names)} ({hint})", file=sys.stderr)
    return EXIT_FAILURE


def run_example(function: Callable[[], object]) -> int:
    """Run an example script's `main` as the CLI runs a command: a failure prints the CLI's one line (no
    traceback unless the environment sets `RERENDER_VERBOSE=1`), Ctrl-C prints "interrupted".

    Returns:
        The exit code: `function`'s own when it returns an int, else 0; 1 or 2 on failure as the CLI; 130 on Ctrl-C.

    Example:
        >>> if __name__ == "__main__":  # doctest: +SKIP
        ...     sys.exit(run_example(main))
    """
    verbose = os.environ.get("RERENDER_VERBOSE", "") not in ("", "0")
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        with third_party_messages(verbose):
            result = function()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as error:  # e.g. the CLI's own --lora parser (`parse_lora`) used by an example
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if _caused_by_interrupt(error):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return _report(error, verbose, hint="set RERENDER_VERBOSE=1 for details")
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
