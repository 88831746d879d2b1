"""`rerender config show|validate`: print the effective config, or check a config file."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK, Parser, UsageError
from rerender.cli.options import config_parent, load_config, model_defaults, verbose_parent


def register(commands) -> None:
    """Add `config` and its actions (`show`, `validate`) to the `rerender` subparsers."""
    config_parser = commands.add_parser("config", parents=[verbose_parent()], help="show or validate configs")
    config_commands = config_parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=Parser)
    show = config_commands.add_parser(
        "show",
        parents=[verbose_parent(), config_parent(file=False)],
        help="print the config a run uses (the CLI's defaults, then the file, then --set)",
    )
    show.add_argument("file", nargs="?", help="config file to start from (default: the CLI's defaults)")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    validate = config_commands.add_parser(
        "validate", parents=[verbose_parent()], help="check a config file; exit 0 if valid, 2 if not"
    )
    validate.add_argument("file", help="YAML or JSON config")
    config_parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; a usage error without one."""
    if args.config_command == "show":
        return run_show(args)
    if args.config_command == "validate":
        return run_validate(args)
    raise UsageError("rerender config: choose an action (see `rerender config --help`)")


def run_show(args: argparse.Namespace) -> int:
    """Print the effective config as YAML (JSON with --json): exactly what a run with the same file and --set uses,
    the options whose default is the model's (steps, guidance, FreeU's factors, …) set from its family."""
    from rerender.config import config_to_dict, dump_yaml

    args.config = args.file
    config = model_defaults(load_config(args))
    data = config_to_dict(config)
    print(json.dumps(data, indent=2) if args.json else dump_yaml(data), end="")
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    """Check a config file (unknown keys, types, ranges)."""
    from rerender.config import load_config as read_config_file

    read_config_file(args.file)
    print(f"{args.file}: valid")
    return EXIT_OK
