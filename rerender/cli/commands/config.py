"""`rerender config show|validate`: print the effective config, or check a config file."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK, Parser, UsageError
from rerender.cli.options import load_config, verbose_parent


def register(commands) -> None:
    """Add `config` and its actions to the `rerender` subparsers."""
    config_parser = commands.add_parser("config", parents=[verbose_parent()], help="show or validate configs")
    config_commands = config_parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=Parser)
    show = config_commands.add_parser("show", parents=[verbose_parent()], help="print the effective config (defaults, file, overrides)")
    show.add_argument("file", nargs="?", help="config file to start from (default: built-in defaults)")
    show.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[], help="override an option")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(handler=run_show)
    validate = config_commands.add_parser("validate", parents=[verbose_parent()], help="check a config file; exit 0 if valid, 2 if not")
    validate.add_argument("file", help="YAML or JSON config")
    validate.set_defaults(handler=run_validate)
    config_parser.set_defaults(handler=lambda args: missing_action(config_parser))


def run_show(args: argparse.Namespace) -> int:
    from rerender.config import config_to_dict, dump_yaml

    args.config = args.file
    config = load_config(args)
    data = config_to_dict(config)
    print(json.dumps(data, indent=2) if args.json else dump_yaml(data), end="")
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    from rerender.config import load_config as read_config_file

    read_config_file(args.file)
    print(f"{args.file}: valid")
    return EXIT_OK


def missing_action(parser: argparse.ArgumentParser) -> int:
    raise UsageError(f"{parser.prog}: choose an action (see `{parser.prog} --help`)")
