#!/usr/bin/env python
"""Flow benchmark (issue 3): accuracy on known motion, occlusion F1 and speed, plus a real-clip sanity check.

For each estimator (the three OpenCV DIS presets; GMFlow with the official weights if you pass them; GMFlow with
random weights for timing only) this reports, on the `rerender.synthetic` known-motion suite at --size:

* EPE: mean end-point error in pixels over the pixels that stay visible (ground-truth non-occluded), both
  directions pooled;
* occlusion F1: `rerender.flow.forward_backward_occlusion` (UnFlow thresholds) on the estimated flows against
  the true occlusion masks, both directions pooled over all pairs;
* s/pair: wall seconds per frame pair for forward *and* backward flow, as `estimator(source, target)`.

`--strides 1 3` also scores pairs three frames apart (larger motion); their ground truth is the exact per-frame
flow chained with `compose_flows`, and a pixel counts as occluded if it is occluded at any step.

The real-clip check warps frame t+4 of each test clip onto frame t with the estimated backward flow and reports
the mean absolute RGB difference (0–255) over all pixels and over the pixels the occlusion test trusts, next to
the no-motion baseline. It is a sanity check, not a ground-truth metric. Clips come from ``../shared/data/videos``
beside the repository (``--clip-folder``); by default two of them (``--clips all`` for every clip).

Run (keep it to one thread on a shared machine):

    OMP_NUM_THREADS=1 python benchmarks/flow_benchmark.py --size 512 --strides 1 3
    OMP_NUM_THREADS=1 python benchmarks/flow_benchmark.py --gmflow-checkpoint models/gmflow_sintel-0c07dcb3.pth
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from rerender.flow import (
    DIS_PRESETS,
    DISFlowEstimator,
    FlowEstimator,
    GMFlow,
    GMFlowEstimator,
    compose_flows,
    forward_backward_occlusion,
    warp,
    warp_with_validity,
)
from rerender.synthetic import MOTIONS, make_synthetic_video

#: The shared test clips, beside the repository (``../shared``) as for the other benchmarks.
REAL_CLIP_FOLDER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
#: Clips of the real-clip check by default (a substring of each name); ``--clips all`` takes every clip.
DEFAULT_CLIPS = ("cottonbro", "car-turn")


@dataclass
class KnownMotionPair:
    """Two frames and their exact motion: flows (1, 2, H, W), occlusions (1, 1, H, W) bool, frames (1, 3, H, W)."""

    motion: str
    stride: int
    source: torch.Tensor
    target: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor
    forward_occlusion: torch.Tensor
    backward_occlusion: torch.Tensor


def _chain(flows: list[torch.Tensor], occlusions: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain per-step flows a→b→c… and OR the step occlusions along each pixel's path."""
    flow, occluded = flows[0], occlusions[0]
    for next_flow, next_occlusion in zip(flows[1:], occlusions[1:], strict=True):
        occlusion_there, inside = warp_with_validity(next_occlusion.float(), flow, mode="nearest")
        occluded = occluded | (occlusion_there > 0.5) | (inside < 0.5)
        flow = compose_flows(flow, next_flow)
    return flow, occluded


def known_motion_pairs(size: int, pairs_per_motion: int, stride: int, seed: int = 0) -> Iterator[KnownMotionPair]:
    """Pairs `stride` frames apart from 16-frame `rerender.synthetic` clips of every motion, evenly spread."""

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()

    for motion in MOTIONS:
        video = make_synthetic_video(num_frames=16, width=size, height=size, motion=motion, seed=seed)
        starts = np.linspace(0, 15 - stride, pairs_per_motion).round().astype(int)
        for start in starts:
            steps = range(start, start + stride)
            forward, forward_occlusion = _chain(
                [tensor(video.forward_flow[t]) for t in steps],
                [tensor(video.forward_occlusion[t][..., None]).bool() for t in steps],
            )
            backward, backward_occlusion = _chain(
                [tensor(video.backward_flow[t]) for t in reversed(steps)],
                [tensor(video.backward_occlusion[t][..., None]).bool() for t in reversed(steps)],
            )
            yield KnownMotionPair(
                motion,
                stride,
                tensor(video.frames[start]) / 255,
                tensor(video.frames[start + stride]) / 255,
                forward,
                backward,
                forward_occlusion,
                backward_occlusion,
            )


@dataclass
class Score:
    estimator: str
    stride: int
    epe: float
    epe_by_motion: dict[str, float]
    occlusion_f1: float
    occlusion_precision: float
    occlusion_recall: float
    seconds_per_pair: float


def score(estimator: FlowEstimator, pairs: list[KnownMotionPair]) -> Score:
    """EPE on non-occluded pixels, occlusion precision/recall/F1 pooled over pairs, seconds per pair."""
    estimator(pairs[0].source, pairs[0].target)  # warm-up: first-call allocations, OpenCL probing
    error_sum: dict[str, float] = {}
    error_count: dict[str, int] = {}
    true_positives = false_positives = false_negatives = 0
    seconds = 0.0
    for pair in pairs:
        start = time.perf_counter()
        forward, backward = estimator(pair.source, pair.target)
        seconds += time.perf_counter() - start
        occlusion_forward, occlusion_backward = forward_backward_occlusion(forward, backward)
        for estimated, truth, occluded, predicted in (
            (forward, pair.forward, pair.forward_occlusion, occlusion_forward),
            (backward, pair.backward, pair.backward_occlusion, occlusion_backward),
        ):
            visible = ~occluded[:, 0]
            error = (estimated - truth).norm(dim=1)[visible]
            error_sum[pair.motion] = error_sum.get(pair.motion, 0.0) + float(error.sum())
            error_count[pair.motion] = error_count.get(pair.motion, 0) + int(error.numel())
            predicted = predicted > 0.5
            true_positives += int((predicted & occluded).sum())
            false_positives += int((predicted & ~occluded).sum())
            false_negatives += int((~predicted & occluded).sum())
    precision = true_positives / max(1, true_positives + false_positives)
    recall = true_positives / max(1, true_positives + false_negatives)
    return Score(
        estimator.name,
        pairs[0].stride,
        sum(error_sum.values()) / max(1, sum(error_count.values())),
        {motion: error_sum[motion] / max(1, error_count[motion]) for motion in error_sum},
        2 * precision * recall / max(1e-9, precision + recall),
        precision,
        recall,
        seconds / len(pairs),
    )


def time_only(estimator: FlowEstimator, size: int, repeats: int) -> float:
    """Seconds per pair on random frames (for random-weight networks, whose flow means nothing); NaN for 0 repeats."""
    if repeats < 1:
        return float("nan")
    generator = torch.Generator().manual_seed(0)
    source, target = torch.rand(2, 1, 3, size, size, generator=generator)
    estimator(source, target)
    start = time.perf_counter()
    for _ in range(repeats):
        estimator(source, target)
    return (time.perf_counter() - start) / repeats


def read_frame(path: str, index: int, size: int) -> torch.Tensor:
    capture = cv2.VideoCapture(path)
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {path}")
    frame = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255


def real_clip_paths(folder: Path, names: list[str]) -> list[Path]:
    """The clips in `folder` whose names contain one of `names` (``["all"]``: every clip)."""
    paths = sorted(folder.glob("*.mp4"))
    if not paths:
        raise SystemExit(f"no clips in {folder}; pass --clip-folder or --skip-real")
    if names != ["all"]:
        paths = [path for path in paths if any(name in path.name for name in names)]
        if not paths:
            raise SystemExit(f"--clips {names} match none of {[path.name for path in sorted(folder.glob('*.mp4'))]}")
    return paths


def real_clip_check(
    estimators: list[FlowEstimator], size: int, paths: list[Path], first: int = 10, gap: int = 4
) -> list[dict]:
    """Photometric warp error (0–255) of frame `first` rebuilt from frame `first + gap` with the backward flow."""
    rows = []
    for path in paths:
        source, target = read_frame(path, first, size), read_frame(path, first + gap, size)
        baseline = float((source - target).abs().mean()) * 255
        for estimator in estimators:
            forward, backward = estimator(source, target)
            _, occlusion_backward = forward_backward_occlusion(forward, backward)
            # the flow target→source brings the source into the target's geometry
            difference = (warp(source, backward) - target).abs().mean(dim=1, keepdim=True) * 255
            trusted = occlusion_backward < 0.5
            rows.append(
                {
                    "clip": Path(path).name[:40],
                    "estimator": estimator.name,
                    "no_motion": baseline,
                    "warp_error_all": float(difference.mean()),
                    "warp_error_trusted": float(difference[trusted].mean()),
                    "occluded_fraction": float(1 - trusted.float().mean()),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels (square frames)")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per motion and stride")
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 3], help="frame gaps to score")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument("--gmflow-checkpoint", type=Path, default=None, help="score GMFlow with these weights")
    parser.add_argument("--gmflow-repeats", type=int, default=2, help="timed runs of random-weight GMFlow")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-clip check")
    parser.add_argument("--clip-folder", type=Path, default=REAL_CLIP_FOLDER, help="folder of real .mp4 clips")
    parser.add_argument(
        "--clips",
        nargs="+",
        default=list(DEFAULT_CLIPS),
        help="real clips to check, by part of their name, or 'all' (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    cv2.setNumThreads(arguments.threads)

    estimators: list[FlowEstimator] = [DISFlowEstimator(preset) for preset in DIS_PRESETS]
    if arguments.gmflow_checkpoint is not None:
        estimators.append(GMFlowEstimator.from_checkpoint(arguments.gmflow_checkpoint))

    scores = []
    for stride in arguments.strides:
        pairs = list(known_motion_pairs(arguments.size, arguments.pairs, stride))
        for estimator in estimators:
            scores.append(score(estimator, pairs))

    torch.manual_seed(0)
    random_gmflow = GMFlowEstimator(GMFlow().eval(), name="gmflow-random-weights")
    gmflow_seconds = time_only(random_gmflow, arguments.size, arguments.gmflow_repeats)

    size = arguments.size
    print(
        f"\nKnown-motion suite: rerender.synthetic, {len(MOTIONS)} motions × {arguments.pairs} pairs, {size}×{size}, "
        f"{arguments.threads} thread(s); EPE on non-occluded pixels, both directions\n"
    )
    print(
        "| estimator | stride | EPE (px) | "
        + " | ".join(f"EPE {motion}" for motion in MOTIONS)
        + " | occlusion F1 | precision | recall | s / pair (fwd+bwd) |"
    )
    print("|---|---|---|" + "---|" * len(MOTIONS) + "---|---|---|---|")
    for result in scores:
        per_motion = " | ".join(f"{result.epe_by_motion[motion]:.3f}" for motion in MOTIONS)
        print(
            f"| {result.estimator} | {result.stride} | {result.epe:.3f} | {per_motion} | {result.occlusion_f1:.3f} | "
            f"{result.occlusion_precision:.3f} | {result.occlusion_recall:.3f} | {result.seconds_per_pair:.4f} |"
        )
    empty_columns = " – |" * (len(MOTIONS) + 3)
    print(f"| gmflow (random weights, timing only) | – | – |{empty_columns} {gmflow_seconds:.3f} |")

    real_rows = []
    if not arguments.skip_real:
        real_rows = real_clip_check(estimators, size, real_clip_paths(arguments.clip_folder, arguments.clips))
        print(f"\nReal clips, frame 10 rebuilt from frame 14 by backward warping, {size}×{size}, mean |Δ| RGB 0–255\n")
        print("| clip | estimator | no motion | warp error, all | warp error, trusted | occluded |")
        print("|---|---|---|---|---|---|")
        for row in real_rows:
            print(
                f"| {row['clip']} | {row['estimator']} | {row['no_motion']:.2f} | {row['warp_error_all']:.2f} | "
                f"{row['warp_error_trusted']:.2f} | {row['occluded_fraction']:.3f} |"
            )

    if arguments.json is not None:
        arguments.json.write_text(
            json.dumps(
                {
                    "scores": [asdict(result) for result in scores],
                    "gmflow_random_seconds": gmflow_seconds,
                    "real": real_rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
