"""Same pictures, less time? Two checkouts of the numba engine run side by side on suite cases.

    python benchmarks/propagation_identity.py --old /path/to/old/checkout [--new .] \\
        [--cases boxer:cartoon,man-surfing:pencil] [--long-side 384] [--threads 2] [--repeats 2] \\
        [--preset balanced] [--json FILE]

Each case (a clip and a style of the shared propagation suite, 21 frames, keyframes first and last, as
``propagation_suite.py`` builds them; ``$RERENDER_BENCH`` names its folder) is propagated by both checkouts, each
in a fresh process whose ``PYTHONPATH`` is that checkout, with ``workers`` = ``--threads`` and
``NUMBA_NUM_THREADS`` fixed. Each process first propagates a small warm-up (so loading the compiled kernels is not
timed), then the case, and saves every output frame. The runs are interleaved (old, new, new, old, ...) so that a
shared machine's load falls on both alike. Printed per case: whether the two checkouts' frames are byte-for-byte
identical (all 21), and each one's CPU seconds (all threads) and wall seconds per propagated frame, the median
over ``--repeats``, with the 1-minute load average.

Exit status 1 when any case's frames differ.
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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.environ.get("RERENDER_BENCH", os.path.join(HERE, "..", "..", "shared", "bench"))
FRAME_COUNT = 21


def _load_case(clip: str, style: str, long_side: int):
    """The suite's frames (BGR uint8) and keyframes ``{0: ..., 20: ...}`` of one case."""
    import cv2

    sys.path.insert(0, BENCH)
    sys.path.insert(0, HERE)
    import propagation_bench
    import propagation_suite
    from propagation_styles import STYLES

    propagation_bench.STYLES.update(STYLES)
    file, start, step = propagation_suite.CLIPS[clip]
    frames = propagation_bench.load_clip(
        os.path.join(propagation_suite.VIDEOS, file), start, step, FRAME_COUNT, long_side
    )
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as the bench: some OpenCV filters vary slightly with threading
    try:
        stylize = propagation_bench.STYLES[style][0]
        keys = {0: stylize(frames[0]), FRAME_COUNT - 1: stylize(frames[-1])}
    finally:
        cv2.setNumThreads(threads)
    return frames, keys


def _worker(args: argparse.Namespace) -> None:
    """One checkout, one case: warm up, propagate, save the frames, print the timings as JSON."""
    import numpy as np

    from rerender.propagation import PropagationOptions, propagate_video

    frames, keys = _load_case(args.clip, args.style, args.long_side)
    options = PropagationOptions.preset(args.preset, workers=args.threads, engine="numba")
    rgb = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
    keys_rgb = {index: np.ascontiguousarray(key[..., ::-1]) for index, key in keys.items()}
    small = [frame[::4, ::4].copy() for frame in rgb[:4]]
    propagate_video(small, {0: keys_rgb[0][::4, ::4].copy(), 3: small[3]}, options=options, progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    outputs = propagate_video(rgb, keys_rgb, options=options, progress=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    stacked = np.stack(outputs)
    np.save(args.out, stacked)
    propagated = FRAME_COUNT - len(keys)
    print(
        json.dumps(
            {
                "cpu_spf": cpu / propagated,
                "wall_spf": wall / propagated,
                "load": os.getloadavg()[0],
                "sha256": hashlib.sha256(stacked.tobytes()).hexdigest(),
            }
        )
    )


def _run(checkout: str, case: str, args: argparse.Namespace, out: str) -> dict:
    clip, style = case.split(":")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout), NUMBA_NUM_THREADS=str(args.threads))
    env.update(OMP_NUM_THREADS=str(args.threads), RERENDER_BENCH=os.path.abspath(BENCH))
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--clip", clip, "--style", style]
    command += ["--long-side", str(args.long_side), "--threads", str(args.threads), "--preset", args.preset]
    command += ["--out", out]
    done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{checkout} failed on {case}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="checkout of the reference engine (e.g. a worktree of main)")
    parser.add_argument("--new", default=os.path.join(HERE, ".."), help="checkout under test (default: this one)")
    parser.add_argument("--cases", default="boxer:cartoon,man-surfing:pencil", help="clip:style,...")
    parser.add_argument("--long-side", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2, help="workers and NUMBA_NUM_THREADS")
    parser.add_argument("--repeats", type=int, default=2, help="runs per checkout and case (median reported)")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--json", default="", help="write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--style", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if not args.old:
        parser.error("--old (a checkout of the reference engine) is required")
    if not os.path.isfile(os.path.join(BENCH, "propagation_suite.py")):
        parser.error(f"the propagation suite is not at {BENCH}: set RERENDER_BENCH to the folder holding it")
    import numpy as np

    rows = []
    differ = False
    print(
        f"{'case':<22}{'identical':>10}{'old CPU s/f':>12}{'new CPU s/f':>12}{'ratio':>7}{'old wall':>9}{'new wall':>9}"
        f"{'load':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="propagation_identity_") as folder:
        for case in args.cases.split(","):
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for repeat in range(args.repeats):
                order = ("old", "new") if repeat % 2 == 0 else ("new", "old")
                for name in order:
                    out = os.path.join(folder, f"{name}{repeat}.npy")
                    runs[name].append(_run(getattr(args, name), case, args, out))
            frames = {name: np.load(os.path.join(folder, f"{name}0.npy")) for name in runs}
            identical = (
                frames["old"].tobytes() == frames["new"].tobytes()
                and len({run["sha256"] for name in runs for run in runs[name]}) == 1
            )
            differ |= not identical
            row = {"case": case, "identical": identical}
            for name in runs:
                row[f"{name}_cpu_spf"] = statistics.median(run["cpu_spf"] for run in runs[name])
                row[f"{name}_wall_spf"] = statistics.median(run["wall_spf"] for run in runs[name])
            row["load"] = statistics.mean(run["load"] for name in runs for run in runs[name])
            if not identical:
                row["max_abs_difference"] = int(
                    np.abs(frames["old"].astype(np.int16) - frames["new"].astype(np.int16)).max()
                )
            rows.append(row)
            print(
                f"{case:<22}{str(identical):>10}{row['old_cpu_spf']:12.3f}{row['new_cpu_spf']:12.3f}"
                f"{row['new_cpu_spf'] / row['old_cpu_spf']:7.3f}{row['old_wall_spf']:9.3f}{row['new_wall_spf']:9.3f}"
                f"{row['load']:6.2f}",
                flush=True,
            )
    print(f"threads {args.threads}, {args.long_side} px, preset {args.preset}, median of {args.repeats} per checkout")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"cases": rows, "threads": args.threads, "long_side": args.long_side}, file, indent=1)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
