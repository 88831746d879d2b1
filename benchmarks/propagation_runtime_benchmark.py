#!/usr/bin/env python
"""Propagation runtime: this checkout's threads against a baseline's (by default `main`'s) propagation, in one run.

Both sides propagate the same frames and keyframes with the same options and the same precomputed flows (DIS
medium, estimated before timing, so only the propagation is timed), or with `--flow default`, the propagation's
own default flow (DIS fine) estimated inside the timed call, as `propagate_video(flow=None)` runs for a user. Each measurement runs in a fresh
interpreter (numba's on-disk kernel cache warmed by a tiny synthesis first), alternating baseline and ours so
that load from other users of the machine biases neither side. The baseline's `rerender` and `ebsynth_bridge`
come from `git archive <ref>` of this repository (`main`: the spawn process pool).

Printed: seconds per propagated frame of each run, the median ratio ours / baseline (< 1: ours faster), peak
resident memory of the measuring process and its children, and whether both sides gave identical frames.

Run:

    python benchmarks/propagation_runtime_benchmark.py                      # 384 px, 25 frames, keys every 8
    python benchmarks/propagation_runtime_benchmark.py --size 512 --repeats 3 --baseline main
    python benchmarks/propagation_runtime_benchmark.py --flow default --frames 41 --interval 10  # flow timed too
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP_FOLDER = REPO.parent / "shared" / "data" / "videos"


def load_clip(clip: str, frame_count: int, size: int):
    """`frame_count` RGB frames of the first shared clip whose name contains `clip`, long side `size`.

    Falls back to a `rerender.synthetic` clip when the shared clips are absent.
    """
    from rerender.video import read_frames

    paths = sorted(CLIP_FOLDER.glob(f"*{clip}*.mp4"))
    if paths:
        return paths[0].name, list(
            read_frames(paths[0], start=0, end=frame_count, resolution=size, resize_side="long", size_multiple=8)
        )
    from rerender.synthetic import make_synthetic_video

    video = make_synthetic_video(num_frames=frame_count, width=size, height=size * 3 // 4, motion="mixed")
    return "synthetic", list(video.frames)


def measure(arguments: argparse.Namespace) -> dict:
    """One timed propagation in this interpreter (whichever `rerender` is on its path)."""
    import numpy as np

    import rerender.propagation as propagation
    from rerender.flow import DISFlowEstimator, estimate_flow_numpy
    from rerender.stylizer import ClassicStylizer

    name, frames = load_clip(arguments.clip, arguments.frames, arguments.size)
    stylizer = ClassicStylizer("cartoon")
    keys = {index: stylizer(frames[index]) for index in range(0, len(frames), arguments.interval)}
    estimator = DISFlowEstimator("medium")
    flows = {}
    for earlier, later in zip(frames, frames[1:]) if arguments.flow == "cached" else ():
        flows[(earlier.tobytes(), later.tobytes())] = estimate_flow_numpy(estimator, earlier, later)

    def cached_flow(source, target):
        return flows[(source.tobytes(), target.tobytes())]

    options = propagation.PropagationOptions.preset(arguments.preset, workers=arguments.workers)
    tiny = [np.zeros((16, 16, 3), np.uint8)] * 3
    propagation.propagate_video(
        tiny,
        {0: tiny[0], 2: tiny[0]},
        flow=lambda a, b: (np.zeros((16, 16, 2), np.float32),) * 2,
        options=options,
        progress=False,
        workers=1,
    )  # load the compiled kernels
    started = time.perf_counter()
    flow = cached_flow if arguments.flow == "cached" else None
    output = propagation.propagate_video(frames, keys, flow=flow, options=options, progress=False)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(b"".join(frame.tobytes() for frame in output)).hexdigest()
    usage = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {
        "clip": name,
        "shape": list(frames[0].shape),
        "propagated": len(frames) - len(keys),
        "seconds": seconds,
        "digest": digest,
        "peak_rss_mb": usage / 1024,
    }


def baseline_tree(ref: str, folder: Path) -> Path:
    """`rerender` and `ebsynth_bridge` of `ref`, unpacked into `folder`."""
    archive = folder / "baseline.tar"
    with archive.open("wb") as stream:
        subprocess.run(
            ["git", "-C", str(REPO), "archive", ref, "rerender", "ebsynth_bridge"], stdout=stream, check=True
        )
    with tarfile.open(archive) as tar:
        # our own archive of this repository; the "data" filter where this Python has it (3.10.12+)
        tar.extractall(folder / "tree", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return folder / "tree"


def run_side(path: Path, arguments: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure",
        "--clip",
        arguments.clip,
        "--frames",
        str(arguments.frames),
        "--size",
        str(arguments.size),
        "--interval",
        str(arguments.interval),
        "--preset",
        arguments.preset,
        "--flow",
        arguments.flow,
    ] + (["--workers", str(arguments.workers)] if arguments.workers else [])
    env = {**os.environ, "PYTHONPATH": str(path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"measurement with {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git ref to compare against (default: %(default)s)")
    parser.add_argument("--clip", default="cottonbro", help="shared clip, by part of its name (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=25, help="frames to propagate (default: %(default)s)")
    parser.add_argument("--interval", type=int, default=8, help="keyframe every N frames (default: %(default)s)")
    parser.add_argument("--size", type=int, default=384, help="long side in pixels (default: %(default)s)")
    parser.add_argument("--preset", default="balanced", help="propagation preset (default: %(default)s)")
    parser.add_argument(
        "--flow",
        choices=("cached", "default"),
        default="cached",
        help="precomputed flows (untimed), or the default flow estimated in the timed call (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=None, help="workers on both sides (default: one per core)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side (default: %(default)s)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        print(json.dumps(measure(arguments)))
        return

    with tempfile.TemporaryDirectory(prefix="propagation-runtime-") as folder:
        baseline = baseline_tree(arguments.baseline, Path(folder))
        runs: dict[str, list[dict]] = {"baseline": [], "ours": []}
        for _ in range(arguments.repeats):
            runs["baseline"].append(run_side(baseline, arguments))
            runs["ours"].append(run_side(REPO, arguments))
    first = runs["ours"][0]
    print(
        f"{first['clip']}, {first['shape'][1]}×{first['shape'][0]}, {first['propagated']} propagated frames, "
        f"key every {arguments.interval}, preset {arguments.preset}, workers {arguments.workers or 'one per core'} "
        f"({os.cpu_count()} cores), baseline {arguments.baseline!r}\n"
    )
    print("| side | s / propagated frame (each run) | median | peak RSS (MB) |")
    print("|---|---|---|---|")
    medians = {}
    for side, side_runs in runs.items():
        per_frame = [run["seconds"] / run["propagated"] for run in side_runs]
        medians[side] = statistics.median(per_frame)
        print(
            f"| {side} | {', '.join(f'{value:.3f}' for value in per_frame)} | {medians[side]:.3f} | "
            f"{max(run['peak_rss_mb'] for run in side_runs):.0f} |"
        )
    identical = len({run["digest"] for side_runs in runs.values() for run in side_runs}) == 1
    print(f"\nratio ours / baseline (median s per frame): {medians['ours'] / medians['baseline']:.3f}")
    print(f"identical frames on both sides and every run: {identical}")


if __name__ == "__main__":
    main()
