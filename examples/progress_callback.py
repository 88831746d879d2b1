"""Follow a translation from your own program: a callback per stage instead of progress bars.

    python examples/progress_callback.py input.mp4 "a watercolor painting" out.mp4

The callback receives (stage, done, total) for "frames", "keyframes", "propagation" and "writing"; the
library itself never prints. Interrupt with Ctrl-C and run again: finished work is reused from the workspace.
"""

from __future__ import annotations

import argparse
import sys
import time

import rerender
from rerender.cli import run_example
from rerender.config import RendererName, choices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument(
        "--renderer",
        choices=choices(RendererName),
        default="auto",
        help="auto: diffusion when its weights can be loaded, else the classic stylizer",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    last_report: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent >= last_report.get(stage, -10) + 10 or done == total:  # every 10 %
            last_report[stage] = percent
            print(f"[{time.perf_counter() - started:6.1f} s] {stage:12s} {done:4d}/{total} ({percent}%)")

    result = rerender.translate(
        args.video, args.prompt, output=args.output, progress=False, callback=on_progress, renderer=args.renderer
    )
    print(f"done: {result.output} (reused from the workspace: {result.reused or 'nothing'})")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
