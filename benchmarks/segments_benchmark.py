"""What splitting the keyframe chain into segments (`RayExecutor(keyframe_segments=N)`) costs in temporal
consistency, against the single chain, measured with `rerender eval`'s metrics (`rerender.evaluation`).

    python benchmarks/segments_benchmark.py                     # car-turn clip, 64 px, K=8, tiny model, 1/2/4 segments
    python benchmarks/segments_benchmark.py --clip ../shared/data/videos/woman-running-512x512-20fps.mp4 --size 128
    python benchmarks/segments_benchmark.py --model runwayml/stable-diffusion-v1-5 --size 512 --gpus 4   # real weights

Keyframes come from the test kit's tiny SD 1.5 + ControlNet (`tests/tiny_models.py`: the real architectures with
random weights, so the images are not a style anyone wants) rendered on a local Ray cluster with 2 CPUs and no
GPU: segments run on CPU actors. The cross-frame constraints (anchor and previous-keyframe attention, fusion)
act as with real weights, so the figures show what losing the previous keyframe at a join does; with real weights
the absolute numbers differ. Printed per run: warp error, its excess over the source's, and flicker, over the
whole video (what `rerender eval` reports) and over the key intervals that hold a join (the frames between the
last keyframe of one segment and the first of the next, propagated from both).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--clip", default=str(REPO.parent / "shared" / "data" / "videos" / "car-turn-480x480-10fps.mp4")
    )
    parser.add_argument("--frames", type=int, default=49, help="frames of the clip to translate")
    parser.add_argument("--size", type=int, default=64, help="processing resolution (long side)")
    parser.add_argument("--interval", type=int, default=8, help="keyframe interval K")
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--model",
        default=None,
        help="real SD 1.5 weights (hub id, folder or .safetensors) with the "
        "default ControlNet and 20 steps, instead of the tiny model",
    )
    parser.add_argument("--gpus", type=int, default=0, help="GPUs of the local Ray cluster (one per segment)")
    args = parser.parse_args()

    import numpy as np
    import ray
    import torch

    import rerender
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.evaluation import evaluate_frames, evaluate_video
    from rerender.video import read_frames
    from rerender.workflow.executors.ray import RayExecutor, keyframe_segments

    sys.path.insert(0, str(REPO))
    from tests.tiny_models import save_tiny_pipeline

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="segments-bench-"))
    load = os.getloadavg()
    try:
        settings = {
            "renderer": "diffusion",
            "seed": 0,
            "resolution": args.size,
            "size_multiple": 16,
            "end_frame": args.frames,
            "keyframe_interval": args.interval,
            "propagation_preset": "fast",
            "workers": 1,
        }
        if args.model:
            settings["base_model"] = args.model
        else:
            tiny = save_tiny_pipeline(work / "tiny-sd15")
            settings.update(
                {
                    "base_model": str(tiny),
                    "control.0.model": str(tiny / "controlnet"),
                    "vae": None,
                    "device": "cpu",
                    "dtype": "float32",
                    "num_inference_steps": 4,
                    "denoising_strength": 0.75,
                    "added_prompt": "",
                    "negative_prompt": "",
                }
            )
        config = apply_overrides(RerenderConfig(), settings)
        ray.init(
            num_cpus=2,
            num_gpus=args.gpus,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
        )
        rows = []
        try:
            for count in args.segments:
                started = time.perf_counter()
                result = rerender.translate(
                    args.clip,
                    "a cat",
                    output=work / f"segments{count}.mp4",
                    config=config,
                    progress=False,
                    executor=RayExecutor(keyframe_segments=count),
                )
                seconds = time.perf_counter() - started
                whole = evaluate_video(result.output, args.clip, clip_model=None, progress=False)
                keys = result.keyframe_indices
                parts = keyframe_segments(len(keys), count)
                joins = [(keys[part.stop - 1], keys[part.stop]) for part in parts[:-1]]
                outputs = list(read_frames(result.output))
                sources = list(read_frames(args.clip, start=0, end=len(outputs)))
                at_joins = [
                    evaluate_frames(outputs[start : end + 1], sources[start : end + 1]) for start, end in joins
                ]
                rows.append((count, seconds, result.timings.get("keyframes", 0.0), whole, joins, at_joins))
        finally:
            ray.shutdown()
        model = args.model or "tiny SD 1.5 + ControlNet (random weights), 4 steps"
        print(
            f"{Path(args.clip).name}: {args.frames} frames at {args.size} px, K={args.interval}, {model}, "
            f"{args.gpus or 'no'} GPUs; load average {load[0]:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end"
        )
        print(
            f"{'segments':>8} {'keyframes s':>11} {'warp err':>9} {'excess':>9} {'flicker':>8}   "
            f"at the joins (intervals): warp err / excess / flicker"
        )
        for count, seconds, key_seconds, whole, joins, at_joins in rows:
            join_text = (
                "—"
                if not joins
                else (
                    f"{np.mean([item['warp_error'] for item in at_joins]):.5f} / "
                    f"{np.mean([item['warp_error_excess'] for item in at_joins]):.5f} / "
                    f"{np.mean([item['flicker'] for item in at_joins]):.2f}  ({', '.join(f'{a}–{b}' for a, b in joins)})"
                )
            )
            print(
                f"{count:>8} {key_seconds:>11.1f} {whole['warp_error']:>9.5f} {whole['warp_error_excess']:>9.5f} "
                f"{whole['flicker']:>8.2f}   {join_text}"
            )
        single = rows[0][3] if rows and rows[0][0] == 1 else None
        if single is not None:
            # the same intervals in the single chain: what the joins cost is the difference
            outputs = list(read_frames(work / "segments1.mp4"))
            sources = list(read_frames(args.clip, start=0, end=len(outputs)))
            for count, _, _, _, joins, at_joins in rows[1:]:
                reference = [
                    evaluate_frames(outputs[start : end + 1], sources[start : end + 1]) for start, end in joins
                ]
                print(
                    f"{count} segments, the same intervals in the single chain: warp err "
                    f"{np.mean([item['warp_error'] for item in reference]):.5f}, flicker "
                    f"{np.mean([item['flicker'] for item in reference]):.2f}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
