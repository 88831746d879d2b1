"""`rerender download`: fetch the weights the config names into the Hugging Face cache."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK
from rerender.cli.options import (
    NONE,
    add_config_option,
    config_parent,
    load_config,
    model_parent,
    precision_option,
    prompt_parent,
    quiet_parent,
    verbose_parent,
)


def register(commands) -> None:
    """Add `download` to the `rerender` subparsers."""
    download = commands.add_parser(
        "download",
        parents=[
            verbose_parent(),
            model_parent("The model to fetch instead of the configured one."),
            prompt_parent(),
            quiet_parent(),
            config_parent(),
        ],
        help="fetch the configured base model, ControlNets, VAE and GMFlow into the Hugging Face cache",
    )
    add_config_option(
        download, "--vae", path="model.vae", type=_vae, metavar="VAE", words="'model' = the model's own."
    )
    precision_option(
        download,
        "which weights to fetch: float16 (fp16) fetches only half-precision weights where a "
        "repository has them; auto: float16 when a CUDA GPU is here (default: the config's "
        "`model.dtype`, auto)",
    )
    download.add_argument("--no-flow", action="store_true", help="do not fetch the GMFlow checkpoint")
    download.add_argument(
        "--dry-run",
        action="store_true",
        help="list the files that would be fetched and skipped (offline: by repository and pattern)",
    )
    add_config_option(
        download,
        "-p",
        "--prompt",
        path="prompt.prompt",
        metavar="PROMPT",
        help="the prompt, to detect its language with --prompt-language auto",
    )
    download.set_defaults(handler=run)


def _vae(text: str) -> object:
    """`--vae model` (or none, null): the base model's own VAE (`model.vae` = None)."""
    return NONE if text in ("model", "none", "null") else text


def run(args: argparse.Namespace) -> int:
    """Fetch (or list, with --dry-run) the weights of the config; prints one line per source."""
    from rerender.weights import download_weights

    config = load_config(args)
    records = download_weights(
        config,
        half_precision=_half_precision(config),
        include_flow=not args.no_flow,
        progress=not args.quiet,
        dry_run=args.dry_run,
    )
    for record in records:
        _print_record(record, args.dry_run)
    return EXIT_OK


def _half_precision(config) -> bool:
    """Whether to fetch the fp16 variants: `model.dtype` float16, or auto on a CUDA GPU."""
    if config.model.dtype != "auto":
        return config.model.dtype == "float16"
    import torch

    from rerender.diffusion.loading import resolve_device, resolve_dtype

    return resolve_dtype("auto", resolve_device(config.model.device)) == torch.float16


def _print_record(record: dict, dry_run: bool) -> None:
    where = record["path"] or "(dry run)"
    if record["location"] is None:
        print(f"not resolved: {record['note']}")
        return
    if not record["resolved"]:
        print(
            f"{record['role']}: {record['location']}{' (already cached)' if record['cached'] else ''}: "
            f"{record['note']}"
        )
    elif record["fetched"] or record["skipped"]:
        print(
            f"{record['role']}: {record['location']}: {len(record['fetched'])} files"
            f"{', skipped ' + str(len(record['skipped'])) + ' unused' if record['skipped'] else ''} -> {where}"
        )
    elif record["cached"]:
        print(f"{record['role']}: {record['location']}: local, nothing to fetch")
    else:  # a local path that is not there: a typo, not something to fetch
        print(f"{record['role']}: {record['location']}: local path not found (nothing to fetch; check the path)")
    if dry_run:
        if record["resolved"] and record["note"]:  # e.g. which weights a translator loads
            print(f"  {record['note']}")
        for name in record["fetched"]:
            print(f"  fetch {name}")
        for name in record["skipped"]:
            print(f"  skip  {name}")
