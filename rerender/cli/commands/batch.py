"""`rerender batch`: translate a folder of videos or a job list, here or on a Ray cluster."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_FAILURE, EXIT_OK
from rerender.cli.options import add_config_options, config_names_renderer, load_config, require_prompt, verbose_parent


def register(commands) -> None:
    """Add `batch` to the `rerender` subparsers."""
    batch_parser = commands.add_parser(
        "batch", parents=[verbose_parent()],
        help="translate a folder of videos or a YAML/CSV job list, here or on a Ray cluster",
    )
    batch_parser.add_argument(
        "jobs_source", metavar="JOBS",
        help="a folder of videos, or a .yaml/.csv job list (columns: video, prompt, output, config options)",
    )
    batch_parser.add_argument("-p", "--prompt", default=None, help="prompt of every job that does not name its own")
    batch_parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (made if missing)")
    batch_parser.add_argument(
        "--renderer", choices=("auto", "diffusion", "classic"), default=None,
        help="keyframe renderer of every job (default: auto, as translate)",
    )
    batch_parser.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="jobs at once on this machine, in threads; each loads its own model, so up to N copies in memory (default 1)",
    )
    batch_parser.add_argument(
        "--ray", metavar="local|auto|ADDRESS",
        help="run the jobs on Ray: local starts an instance here, auto joins the running cluster, host:port names one "
             "(needs pip install \"rerender[distributed]\")",
    )
    batch_parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    add_config_options(batch_parser)
    batch_parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rerender.workflow.batching import batch, format_summary, load_jobs

    config = load_config(args)
    renderer = args.renderer or (None if config_names_renderer(args) else "auto")
    unprompted = [job.video.name for job in load_jobs(args.jobs_source, args.prompt, args.output, config)
                  if job.prompt is None]
    if unprompted:
        require_prompt(None, config, f" for {', '.join(unprompted[:3])}{' …' if len(unprompted) > 3 else ''} "
                                      "(nor a `prompt` column in the job list)")

    def report(result) -> None:
        if not args.quiet:
            print(f"{result.status}: {result.job.video} -> {result.job.output} ({result.seconds:.1f} s)", flush=True)

    result = batch(args.jobs_source, args.prompt, args.output, config, renderer=renderer, parallel=args.jobs,
                   ray=args.ray, callback=report)
    print(format_summary(result))
    return EXIT_FAILURE if result.failed else EXIT_OK
