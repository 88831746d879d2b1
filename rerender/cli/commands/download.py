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
            model_parent("The model to fetch instead of the configured one.", lora=True),
            prompt_parent(),
            quiet_parent(),
            config_parent(),
        ],
        help="fetch the files the configured models use (base model, ControlNets, VAE, GMFlow, ...) into the "
        "Hugging Face cache, with each file's size",
    )
    add_config_option(
        download, "--vae", path="model.vae", type=_vae, metavar="VAE", words="'model' = the model's own."
    )
    precision_option(
        download,
        "which weights to fetch: float16 (fp16) fetches only the fp16 variant where a repository publishes "
        "one, and for SDXL the fp16-fixed VAE; bfloat16 and float32 fetch the default files (Z-Image-Turbo's "
        "and FLUX.1's are bfloat16); auto: what loading picks here, float16 (bfloat16 for Z-Image and Flux) "
        "with a CUDA GPU (default: the config's `model.dtype`, auto)",
    )
    download.add_argument("--no-flow", action="store_true", help="do not fetch the GMFlow checkpoint")
    download.add_argument(
        "--dry-run",
        action="store_true",
        help="list the files that would be fetched, with their sizes, and those skipped, without downloading "
        "(offline: by repository and pattern, no sizes)",
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
    """Fetch (or list, with --dry-run) the weights of the config: one line per source with its size, one line per
    file with its size, and the total."""
    from rerender.weights import download_weights

    config = load_config(args)
    if not args.dry_run:  # a mistyped local path is a usage error before the hub is asked (--dry-run lists it)
        from rerender.diffusion.loading import check_model_sources

        if config.prompt.audio_prompt not in (None, "source"):  # 'source' is a video's sound: no video here
            from rerender.sound import check_audio_prompt

            # a sound file the run refuses (missing, no audio, silent) costs no CLAP download, nor any hub request:
            # the run's own check, on a local file, first
            check_audio_prompt(config.prompt.audio_prompt, None, config.prompt.audio_vocabulary)

        base_path = check_model_sources(config.model, config.control)
        if config.model.family == "auto":  # a local file or folder that is no base model (a README, a ControlNet)
            from rerender.weights import detect_family

            detect_family(config.model.base_model)
        from rerender.workflow.preflight import check_model_families

        check_model_families(config, base_path, config.control)  # nothing fetched for a run that would be refused
    records = download_weights(
        config,
        include_flow=not args.no_flow,
        progress=not args.quiet,
        dry_run=args.dry_run,
        precision=_precision(config),
        on_record=lambda record: _print_record(record, args.dry_run),  # the sizes before each download starts
    )
    if not args.dry_run:
        for record in records:
            if record["location"] is not None and record["path"] and record["fetched"]:
                print(f"{record['role']}: {record['location']} -> {record['path']}")
    _print_total(records, args.dry_run)
    return EXIT_OK


def _precision(config) -> str:
    """The precision whose variants to fetch: `model.dtype`, or for auto what loading picks here (float16 on a
    CUDA GPU for the UNet families, bfloat16 for the transformer ones, else float32)."""
    if config.model.dtype != "auto":
        return config.model.dtype
    from rerender.diffusion.loading import resolve_device
    from rerender.weights import model_family

    if resolve_device(config.model.device).type != "cuda":
        return "float32"
    return "bfloat16" if model_family(config.model) in ("zimage", "flux") else "float16"


def format_size(size: int | None) -> str:
    """Bytes as people read them: ``1.2 KB``, ``335.3 MB``, ``6.94 GB`` (powers of 1000, as the hub shows sizes);
    "size unknown" for None."""
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{size} B"


def _print_record(record: dict, dry_run: bool) -> None:
    where = record["path"] or ("(dry run)" if dry_run else "(fetching)")
    if record["location"] is None:
        print(f"not resolved: {record['note']}")
        return
    if not record["resolved"]:
        print(
            f"{record['role']}: {record['location']}{' (already cached)' if record['cached'] else ''}: "
            f"{record['note']}"
        )
    elif record["fetched"] or record["skipped"]:
        cached = set(record["cached_files"])
        pending = [record["sizes"].get(name) for name in record["fetched"] if name not in cached]
        remaining = "" if not cached else f", {format_size(_sum(pending))} of it not cached yet"
        print(
            f"{record['role']}: {record['location']}: {len(record['fetched'])} files, "
            f"{format_size(record['size'])}{remaining}"
            f"{', skipped ' + str(len(record['skipped'])) + ' unused' if record['skipped'] else ''} -> {where}"
        )
    elif record["cached"]:
        print(f"{record['role']}: {record['location']}: local, nothing to fetch")
    else:  # a local path that is not there: a typo, not something to fetch
        from rerender.weights import typed_hub_id

        hub_id = typed_hub_id(str(record["location"]))
        check = f"for the Hugging Face model, pass its hub id {hub_id!r}" if hub_id else "check the path"
        print(f"{record['role']}: {record['location']}: local path not found (nothing to fetch; {check})")
    if record["terms"]:
        print(f"  terms: {record['terms']}")
    if record["resolved"] and record["note"]:  # e.g. which weights a translator loads
        print(f"  {record['note']}")
    cached = set(record["cached_files"])
    for name in record["fetched"]:
        size = record["sizes"].get(name) if record["sizes"] else None
        state = " (cached)" if name in cached else ""
        print(f"  fetch {name}" + (f"  {format_size(size)}{state}" if record["sizes"] else ""))
    if dry_run:
        for name in record["skipped"]:
            print(f"  skip  {name}")


def _sum(sizes) -> int | None:
    sizes = list(sizes)
    return None if None in sizes else sum(sizes)


def _print_total(records: list[dict], dry_run: bool) -> None:
    """The sum over every source with known sizes; says when some are unknown (offline patterns)."""
    sized = [record for record in records if record["location"] is not None and record["sizes"]]
    if records and not sized and all(record["path"] == record["location"] for record in records):
        print("nothing to fetch: every source is local")  # so an offline machine needs no network
    if not sized:
        return
    total = _sum(record["size"] for record in sized)
    pending = _sum(
        record["sizes"][name]
        for record in sized
        for name in record["fetched"]
        if name not in set(record["cached_files"])
    )
    files = sum(len(record["fetched"]) for record in sized)
    unknown = any(record["location"] is not None and not record["resolved"] for record in records)
    verb = "would fetch" if dry_run else "fetched"
    print(
        f"total: {files} files, {format_size(total)} ({format_size(pending)} not cached before, {verb})"
        + ("; some sizes unknown (listed by pattern)" if unknown else "")
    )
