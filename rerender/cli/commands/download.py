"""`rerender download`: fetch the weights the config names into the Hugging Face cache."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK
from rerender.cli.options import add_config_options, add_prompt_options, load_config, translate_overrides, verbose_parent


def register(commands) -> None:
    """Add `download` to the `rerender` subparsers."""
    download = commands.add_parser(
        "download", parents=[verbose_parent()],
        help="fetch the configured base model, ControlNets, VAE and GMFlow into the Hugging Face cache",
    )
    download.add_argument("--model", help="SD1.5 hub id to fetch instead of the configured one")
    download.add_argument("--vae", help="a separate VAE hub id to fetch (e.g. stabilityai/sd-vae-ft-mse); 'model' = the model's own")
    download.add_argument(
        "--precision", choices=("auto", "fp16", "fp32"), default="auto",
        help="fp16: only half-precision weights where a repository has them; auto: fp16 when a CUDA GPU is here",
    )
    download.add_argument("--no-flow", action="store_true", help="do not fetch the GMFlow checkpoint")
    download.add_argument("--dry-run", action="store_true",
                          help="list the files that would be fetched and skipped (offline: by repository and pattern)")
    download.add_argument("-p", "--prompt", help="the prompt, to detect its language with --prompt-language auto")
    add_prompt_options(download)
    download.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_config_options(download)
    download.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rerender.diffusion.loading import resolve_device, resolve_dtype
    from rerender.weights import download_weights

    config = load_config(args)
    extra = translate_overrides(args)
    if args.prompt:
        extra["prompt.prompt"] = args.prompt
    if args.vae:
        extra["model.vae"] = None if args.vae in ("model", "none", "null") else args.vae
    if extra:
        from rerender.config import apply_overrides

        config = apply_overrides(config, extra)
    if args.precision == "auto":
        import torch

        half = resolve_dtype(config.model.dtype, resolve_device(config.model.device)) == torch.float16
    else:
        half = args.precision == "fp16"
    records = download_weights(config, half_precision=half, include_flow=not args.no_flow, progress=not args.quiet,
                               dry_run=args.dry_run)
    for record in records:
        where = record["path"] or "(dry run)"
        if record["location"] is None:
            print(f"not resolved: {record['note']}")
            continue
        if not record["resolved"]:
            print(f"{record['role']}: {record['location']}{' (already cached)' if record['cached'] else ''}: "
                  f"{record['note']}")
        elif record["fetched"] or record["skipped"]:
            print(f"{record['role']}: {record['location']}: {len(record['fetched'])} files"
                  f"{', skipped ' + str(len(record['skipped'])) + ' unused' if record['skipped'] else ''} -> {where}")
        elif record["cached"]:
            print(f"{record['role']}: {record['location']}: local, nothing to fetch")
        else:  # a local path that is not there: a typo, not something to fetch
            print(f"{record['role']}: {record['location']}: local path not found (nothing to fetch; check the path)")
        if args.dry_run:
            for name in record["fetched"]:
                print(f"  fetch {name}")
            for name in record["skipped"]:
                print(f"  skip  {name}")
    return EXIT_OK
