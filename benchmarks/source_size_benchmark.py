"""Cost of writing the output at the source's size (issue 9): `propagation.output_size` "processing" vs "source".

Runs `translate` twice on the same real clip, each in a fresh process (so peak memory is its own): once at the
default processing size (long side 512, multiple of 8) and once with `output_size="source"` (keyframes rendered
at the processing size, upscaled, propagation at the cropped source's size). The keyframes come from the classic
stylizer (no diffusion weights needed; keyframe rendering costs the same in both modes). Prints the propagation
seconds per frame, the extra source-size frame decoding, total seconds per frame, and peak RSS of the main
process and of the largest propagation worker, side by side with the ratios.

    python benchmarks/source_size_benchmark.py [--clip PATH] [--frames 20] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CLIP = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "videos"
    / "pexels-cottonbro-studio-6649832-960x506-25fps.mp4"
)  # ../shared beside the repository

PROBE = r"""
import json, resource, sys, time
from rerender.workflow.translation import ClassicRenderer, translate
clip, frames, folder, mode, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
options = {"workers": int(workers)} if workers != "auto" else {}
started = time.perf_counter()
result = translate(clip, "x", K=10, output=f"{folder}/{mode}.mp4", renderer=ClassicRenderer("a cartoon"),
                   progress=False, end_frame=frames, flow_estimator="dis", output_size=mode, **options)
total = time.perf_counter() - started
from rerender.video import probe_video
info = probe_video(result.output)
print(json.dumps({
    "size": [info.width, info.height], "frames": result.frame_count, "timings": result.timings, "total": total,
    "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "workers_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--workers", default="auto", help="propagation workers (default: the config's, CPU cores)")
    args = parser.parse_args()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    records = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("processing", "source"):
            run = subprocess.run(
                [sys.executable, "-c", PROBE, str(args.clip), str(args.frames), folder, mode, str(args.workers)],
                capture_output=True,
                text=True,
                env=environment,
            )
            if run.returncode:
                sys.exit(f"{mode} run failed:\n{run.stderr[-3000:]}")
            records[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{args.clip.name}, first {args.frames} frames, K=10, classic keyframes, DIS flow, default propagation")
    print(f"{'':28s}{'processing':>14s}{'source':>14s}{'ratio':>8s}")

    def row(label: str, values: list[float], unit: str) -> None:
        ratio = values[1] / values[0] if values[0] else float("nan")
        print(f"{label:28s}{values[0]:>11.2f} {unit:2s}{values[1]:>11.2f} {unit:2s}{ratio:>8.2f}")

    sizes = [records[mode]["size"] for mode in ("processing", "source")]
    print(
        f"{'output size':28s}{'%d×%d' % tuple(sizes[0]):>14s}{'%d×%d' % tuple(sizes[1]):>14s}"
        f"{(sizes[1][0] * sizes[1][1]) / (sizes[0][0] * sizes[0][1]):>8.2f}"
    )
    count = records["processing"]["frames"]
    row(
        "propagation per frame",
        [records[m]["timings"].get("propagation", 0) / count for m in ("processing", "source")],
        "s",
    )
    row("writing per frame", [records[m]["timings"].get("writing", 0) / count for m in ("processing", "source")], "s")
    row("total per frame", [records[m]["total"] / count for m in ("processing", "source")], "s")
    row("peak RSS, main process", [records[m]["self_peak_mib"] for m in ("processing", "source")], "MiB")
    row("peak RSS, largest worker", [records[m]["workers_peak_mib"] for m in ("processing", "source")], "MiB")


if __name__ == "__main__":
    main()
