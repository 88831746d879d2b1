"""`rerender batch`: translate a folder of videos or a job list, here or on a Ray cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from rerender.cli.base import EXIT_FAILURE, EXIT_OK, UsageError
from rerender.cli.options import (
    config_parent,
    input_parent,
    integer_at_least,
    load_config,
    quiet_parent,
    renderer_parent,
    require_prompt,
    verbose_parent,
)


def register(commands) -> None:
    """Add `batch` to the `rerender` subparsers."""
    batch_parser = commands.add_parser(
        "batch",
        parents=[
            verbose_parent(),
            renderer_parent(),
            quiet_parent("print only the summary"),
            input_parent(),
            config_parent(),
        ],
        help="translate a folder of videos or a YAML/CSV job list, here or on a Ray cluster",
    )
    batch_parser.add_argument(
        "jobs_source",
        metavar="JOBS",
        help="a folder of videos, or a .yaml/.csv job list (columns: video, prompt, output, config options)",
    )
    batch_parser.add_argument("-p", "--prompt", default=None, help="prompt of every job that does not name its own")
    batch_parser.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (made if missing)"
    )
    batch_parser.add_argument(
        "--jobs",
        type=integer_at_least(1),
        default=1,
        metavar="N",
        help="jobs at once on this machine, in threads; each loads its own model, so up to N copies in memory "
        "(default: 1)",
    )
    batch_parser.add_argument(
        "--ray",
        metavar="local|auto|ADDRESS",
        help="run the jobs on Ray: local starts an instance here, auto joins the running cluster, host:port names one "
        '(needs pip install "rerender[distributed]")',
    )
    batch_parser.set_defaults(handler=run, api_names={"jobs": "JOBS", "ray": "--ray"})


def run(args: argparse.Namespace) -> int:
    """Run every job; prints one line per job and the summary; exit code 1 when a job failed."""
    from rerender.workflow.batching import batch, format_summary, load_jobs

    if Path(args.output).is_file():  # named as the user spelled it, before the jobs are read
        raise UsageError(f"-o/--output {args.output!r} is a file; give a folder for the outputs (made if missing)")
    config = load_config(args)
    renderer = getattr(args, "model.renderer")  # --renderer wins over the job list's columns too
    unprompted = [
        job.video.name for job in load_jobs(args.jobs_source, args.prompt, args.output, config) if job.prompt is None
    ]
    if unprompted:
        require_prompt(
            None,
            config,
            f" for {', '.join(unprompted[:3])}{' …' if len(unprompted) > 3 else ''} "
            "(nor a `prompt` column in the job list)",
        )

    def report(result) -> None:
        if not args.quiet:
            print(f"{result.status}: {result.job.video} -> {result.job.output} ({result.seconds:.1f} s)", flush=True)

    result = batch(
        args.jobs_source,
        args.prompt,
        args.output,
        config,
        renderer=renderer,
        parallel=args.jobs,  # ignored with --ray: `batch` warns, naming --jobs too
        ray=args.ray,
        callback=report,
    )
    print(format_summary(result))
    return EXIT_FAILURE if result.failed else EXIT_OK
