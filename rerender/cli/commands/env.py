"""`rerender env`: versions, devices, optional components and where weights are looked for."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK
from rerender.cli.options import config_parent, load_config, model_parent, verbose_parent


def register(commands) -> None:
    """Add `env` to the `rerender` subparsers."""
    env = commands.add_parser(
        "env",
        parents=[
            verbose_parent(),
            model_parent("Report on this model instead of the configured one.", lora=True),
            config_parent(),
        ],
        help="versions, devices, the model's family, the propagation engine, where weights are looked for",
    )
    env.add_argument("--json", action="store_true", help="print JSON")
    env.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the environment report (JSON with --json)."""
    from rerender.environment import collect_environment

    config = load_config(args)
    report = collect_environment(config)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    said = _in_cli_terms(args)
    print(f"python    {report['python']}  ({report['platform']})")
    print("packages")
    for name, version in report["packages"].items():
        print(f"  {name:32s}{version or 'not installed'}")
    print("optional")
    for name, item in report["optional"].items():
        state = "usable" if item["usable"] else ("installed, not importable" if item["version"] else "not installed")
        print(f"  {name:32s}{state:28s}{item['for']}")
    print("devices")
    for key, value in report["devices"].items():
        print(f"  {key:32s}{value}")
    family = report["model"]
    shown = family["label"] or f"unknown ({said(family['error'])})"
    print(f"model     {family['base_model']}: {shown}; {family['how']}")
    propagation = report["propagation"]
    asked = f"engine {propagation['engine']}, device {propagation['device']}"
    if propagation["error"] is None:
        device = "" if propagation["resolved_engine"] == "numba" else f" on {propagation['resolved_device']}"
        print(f"propagation  {asked} -> {propagation['resolved_engine']}{device}")
    else:
        print(f"propagation  {asked} -> cannot run here: {said(propagation['error'])}")
    cuda = "yes" if propagation["torch_on_cuda"] else "no"
    print(f"  torch engine on CUDA: {cuda} ({propagation['cuda_reason']})")
    print("weights are looked for in")
    for key, value in report["weights"].items():
        print(f"  {key:32s}{value}")
    models = report["models"]
    print("weights of the config")
    for item in models["sources"]:
        missing = "missing" if not item["downloadable"] else "not cached (downloaded when used)"
        state = "present" if item["present"] else missing
        if item["role"] == "GMFlow" and not item["present"]:
            state = "missing (flow uses OpenCV DIS)"
        elif item.get("optional") and not item["present"]:
            state = "optional, not here (float32 VAE)" if not item["downloadable"] else "optional, fetched when used"
        print(f"  {item['role']:32s}{state:36s}{item['location']}")
    if models["translate"].startswith("refused: "):
        print(f"translate refuses this config: {said(models['translate'].removeprefix('refused: '))}")
    else:
        print(f"translate will render keyframes with: {models['translate']}")
    for command in models["fetch"]:
        print(f"  fetch with: {command}")
    return EXIT_OK


def _in_cli_terms(args: argparse.Namespace):
    """A library message as the run's CLI prints it: an option the user set with one of this command's flags named
    by that flag (`model.base_model` → --model), the others by their config key (`rerender.cli._cli_message`)."""
    from rerender.cli import _cli_message, _typed_names, build_parser

    names = _typed_names(build_parser(), args)
    return lambda message: _cli_message(message, names)
