"""An 8-clip batch: local sequential against a local Ray cluster with 2 CPUs, as a ratio in one run; then the
figures the scaling table in the README is computed from (propagation seconds per frame on one core at 512 px,
workspace bytes per frame: what a worker reads and writes).

    python benchmarks/batch_benchmark.py                       # 8 synthetic 24-frame 128×96 clips, classic renderer
    python benchmarks/batch_benchmark.py --frames 48 --size 256 --clips 8
    python benchmarks/batch_benchmark.py --scaling-clip ../shared/data/videos/dog-512x512-24fps.mp4
    python benchmarks/batch_benchmark.py --clips 0 --long-frames 360 --size 256   # one long clip: local vs Ray (~4 min)

The long-clip comparison translates one synthetic clip three times (local, `RayExecutor()` on the shared
workspace, `RayExecutor(shared_storage=False)`), every stage timed (frames and flows in chunks, keyframes in the
actor, propagation per key interval), and checks the three outputs are byte-identical. The load average is
printed: the machine may be shared, and on 2 cores Ray's own processes compete with the work.

Keyframes use the classic renderer (no GPU here); the diffusion keyframe time per GPU comes from published
figures (see the README's "Scaling out"). Needs `pip install "rerender[distributed]"`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="clips of the batch comparison (0: skip it)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128, help="clip width (height = 3/4)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument(
        "--long-frames",
        type=int,
        default=0,
        help="frames of one clip translated locally and with RayExecutor (default 0: skip; 360 "
        "at --size 256 takes about 4 minutes on 2 cores)",
    )
    parser.add_argument("--chunk-frames", type=int, default=32, help="RayExecutor's frames per decoding/flow task")
    parser.add_argument("--scaling-clip", default=None, help="a 512-px clip to measure propagation per core on")
    parser.add_argument("--scaling-frames", type=int, default=21)
    args = parser.parse_args()

    import ray
    import torch

    import rerender
    from rerender.synthetic import write_synthetic_video

    torch.set_num_threads(1)
    options = dict(resolution=args.size * 3 // 4, size_multiple=16, workers=1, keyframe_interval=8)
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        clips = work / "clips"
        clips.mkdir()
        motions = ("translation", "mixed", "zoom", "rotation")
        for number in range(args.clips):
            write_synthetic_video(
                clips / f"clip{number}.mp4",
                num_frames=args.frames,
                width=args.size,
                height=args.size * 3 // 4,
                motion=motions[number % len(motions)],
                seed=number,
                audio=False,
            )
        # Warm the numba kernels once so neither side pays their compilation in this process.
        warm = work / "warm.mp4"
        write_synthetic_video(warm, num_frames=8, width=args.size, height=args.size * 3 // 4, audio=False)
        rerender.batch([{"video": warm}], "warm-up", work / "warm", renderer="classic", **options)
        load = os.getloadavg()

        local = remote = None
        if args.clips:
            started = time.perf_counter()
            local = rerender.batch(clips, "a cartoon", work / "sequential", renderer="classic", **options)
            sequential = time.perf_counter() - started

        started = time.perf_counter()
        ray.init(
            num_cpus=args.cpus,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
        )
        startup = time.perf_counter() - started
        try:
            if args.clips:
                started = time.perf_counter()
                remote = rerender.batch(clips, "a cartoon", work / "ray", renderer="classic", ray="local", **options)
                on_ray = time.perf_counter() - started
            if args.long_frames:
                from rerender.workflow.executors import RayExecutor

                # Start and warm the workers (imports, numba kernels) once, so no timed run pays for it.
                rerender.translate(
                    warm,
                    "warm-up",
                    output=work / "warm-ray.mp4",
                    renderer="classic",
                    progress=False,
                    executor=RayExecutor(chunk_frames=2),
                    **options,
                )
                long_clip = work / "long.mp4"
                write_synthetic_video(
                    long_clip,
                    num_frames=args.long_frames,
                    width=args.size,
                    height=args.size * 3 // 4,
                    motion="mixed",
                    audio=False,
                )
                long_runs = {}
                for name, executor in (
                    ("local", None),
                    ("RayExecutor", RayExecutor(chunk_frames=args.chunk_frames)),
                    ("RayExecutor, object store", RayExecutor(shared_storage=False, chunk_frames=args.chunk_frames)),
                ):
                    started = time.perf_counter()
                    result = rerender.translate(
                        long_clip,
                        "a cartoon",
                        output=work / f"long {name}.mp4",
                        renderer="classic",
                        progress=False,
                        executor=executor,
                        **options,
                    )
                    long_runs[name] = (time.perf_counter() - started, result.timings, result.output.read_bytes())
        finally:
            ray.shutdown()
        end_load = os.getloadavg()
        print(
            f"load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
            f"{end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f} at the end; {os.cpu_count()} cores"
        )
        if args.clips:
            assert not local.failed and not remote.failed
            frames = args.clips * args.frames
            print(
                f"{args.clips} clips × {args.frames} frames, {args.size}×{args.size * 3 // 4}, classic keyframes, K=8"
            )
            print(f"local sequential       {sequential:7.1f} s  ({frames / sequential:.2f} frames/s)")
            print(
                f"local Ray, {args.cpus} CPUs      {on_ray:7.1f} s  ({frames / on_ray:.2f} frames/s; + {startup:.1f} s cluster start)"
            )
            print(
                f"speed-up               {sequential / on_ray:7.2f}×  ({sequential / (on_ray + startup):.2f}× with the start)"
            )
        if args.long_frames:
            reference = long_runs["local"]
            print(
                f"one {args.long_frames}-frame {args.size}×{args.size * 3 // 4} clip, classic keyframes, K=8, "
                f"{args.cpus} Ray CPUs, chunks of {args.chunk_frames} frames (+ {startup:.1f} s cluster start and a warm-up run, not counted):"
            )
            stages = list(reference[1])
            print(f"  {'':28}{'total':>8}" + "".join(f"{stage:>13}" for stage in stages) + "   speed vs local (total)")
            for name, (seconds, timings, data) in long_runs.items():
                print(
                    f"  {name:28}{seconds:7.1f}s"
                    + "".join(f"{timings.get(stage, 0.0):12.1f}s" for stage in stages)
                    + f"   {reference[0] / seconds:.2f}×"
                    + ("" if data == reference[2] else "  OUTPUT DIFFERS")
                )
        if args.clips:
            per_stage = {}
            for item in local.jobs:
                for stage, seconds in item.timings.items():
                    per_stage[stage] = per_stage.get(stage, 0.0) + seconds
            print(
                "sequential time per stage: "
                + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in per_stage.items())
            )

        if args.scaling_clip:
            info = rerender.probe_video(args.scaling_clip)
            output = work / "scaling.mp4"
            result = rerender.translate(
                args.scaling_clip,
                "a cartoon",
                output=output,
                renderer="classic",
                progress=False,
                end_frame=min(args.scaling_frames, info.frame_count),
                keyframe_interval=10,
                resolution=512,
                workers=1,
            )
            count = result.frame_count
            sizes = {
                name: sum(path.stat().st_size for path in (result.workspace / name).rglob("*") if path.is_file())
                for name in ("frames", "flows", "keyframes", "propagated")
            }
            print(f"\n512-px clip {Path(args.scaling_clip).name}, {count} frames, one core, default preset:")
            print(
                "  seconds per frame: "
                + ", ".join(f"{stage} {seconds / count:.3f}" for stage, seconds in result.timings.items())
            )
            print(
                "  bytes per frame:   "
                + ", ".join(f"{name} {size / count / 1e3:.0f} kB" for name, size in sizes.items())
            )
            print(f"  output video:      {output.stat().st_size / count / 1e3:.1f} kB per frame")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
