"""Translate a folder of videos (or a YAML/CSV job list) in one call, here or on a Ray cluster.

    python examples/batch_translate.py clips/ "a watercolor painting" styled/
    python examples/batch_translate.py jobs.csv "a watercolor painting" styled/ --parallel 2
    python examples/batch_translate.py clips/ "..." styled/ --ray local      # needs pip install "rerender[distributed]"

A job list has one row per video: `video`, optional `prompt` and `output`, and any config option as a column
(`denoising_strength`, `keyframes.keyframe_interval`). A failed job does not stop the others; running the same
command again skips the jobs that finished and retries the failed ones.
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.cli import run_example
from rerender.config import RendererName, choices
from rerender.workflow.batching import format_summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", help="a folder of videos, or a .yaml/.csv job list")
    parser.add_argument("prompt")
    parser.add_argument("output_dir")
    parser.add_argument("--renderer", choices=choices(RendererName), default="auto")
    parser.add_argument("--parallel", type=int, default=1, help="jobs at once here, in threads (one model copy each)")
    parser.add_argument("--ray", default=None, help="local, auto or a cluster address host:port")
    parser.add_argument(
        "--resolution", type=int, default=512, help="processing size of the long side (`video.resolution`)"
    )
    args = parser.parse_args()

    result = rerender.batch(
        args.jobs,
        args.prompt,
        args.output_dir,
        renderer=args.renderer,
        parallel=args.parallel,
        ray=args.ray,
        resolution=args.resolution,
        callback=lambda job: print(f"{job.status}: {job.job.video.name} ({job.seconds:.1f} s)", flush=True),
    )
    print(format_summary(result))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
