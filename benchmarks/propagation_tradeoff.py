"""The sharpness trade-off of the default blend, measured on the propagation suite's hardest cases.

The "reconstruction" blend restores the detail that averaging its candidates washes out, up to
``blend_sharpness`` times the keyframes' style-to-source sharpness (see ``PropagationOptions``). More
restored detail is sharper and, where that detail is not predictable from the keyframes, costs PSNR and
SSIM. This script runs the default with several ``blend_sharpness`` values (and the previous default, the
``agreement`` blend with a 3-px vote and DIS medium flow) on the cases of ``../shared/bench/propagation_suite.py``
that sit nearest to a target, and prints each against ``warp_blend`` exactly as the suite does:
dPSNR / dSSIM / sharpness (targets: ≥ +0.3 dB, ≥ +0.005, ≥ 0.90).

    python benchmarks/propagation_tradeoff.py [--long-side 384] [--cases car-turn/cartoon,cottonbro/pencil]

Needs ``../shared/bench`` (the suite's harness, for its clips, styles and metrics). Takes a few minutes.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "bench"
DEFAULT_CASES = "car-turn/cartoon,car-turn/pencil,cottonbro/pencil,antoni/cartoon,dog/pencil,woman-running/cartoon"
SETTINGS = {
    "blend_sharpness=None": dict(blend_sharpness=None),
    "0.90": dict(blend_sharpness=0.90),
    "0.95 (default)": {},
    "1.00": dict(blend_sharpness=1.00),
    "previous default": dict(blend_mode="agreement", vote_size=3),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-side", type=int, default=384)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="clip/style pairs, comma-separated")
    args = parser.parse_args(argv)
    if not BENCH.is_dir():
        parser.error(f"the suite's harness is not at {BENCH}")
    sys.path.insert(0, str(BENCH))
    import propagation_bench as bench  # noqa: E402  (the shared harness)
    import propagation_suite as suite  # noqa: E402

    from rerender.flow import DISFlowEstimator, estimate_flow_numpy
    from rerender.propagation import PropagationOptions, propagate_video

    cases = [case.split("/") for case in args.cases.split(",")]
    for clip, style in cases:
        if clip not in suite.CLIPS or style not in bench.STYLES:
            parser.error(f"unknown case {clip}/{style}; clips {sorted(suite.CLIPS)}, styles {sorted(bench.STYLES)}")
    medium_flow = functools.partial(estimate_flow_numpy, DISFlowEstimator("medium"))
    print(f"{'case':<24}" + "".join(f"{name:>26}" for name in SETTINGS))
    for clip, style in cases:
        file, start, step = suite.CLIPS[clip]
        frames = bench.load_clip(os.path.join(suite.VIDEOS, file), start, step, 21, args.long_side)
        truth = [bench.STYLES[style][0](frame) for frame in frames]
        last = len(frames) - 1
        keys = {0: truth[0], last: truth[last]}
        flows = bench.FlowCache(frames)
        inner = range(1, last)

        def scores(outputs: list[np.ndarray]) -> tuple[float, float, float]:
            return (
                float(np.mean([bench.psnr(outputs[t], truth[t]) for t in inner])),
                float(np.mean([bench.ssim(outputs[t], truth[t]) for t in inner])),
                float(np.mean([bench.grad_energy(outputs[t]) / bench.grad_energy(truth[t]) for t in inner])),
            )

        base_psnr, base_ssim, _ = scores(bench.prop_warp_blend(frames, keys, {"flows": flows}))
        rgb_frames = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
        rgb_keys = {index: np.ascontiguousarray(key[..., ::-1]) for index, key in keys.items()}
        row = f"{clip + '/' + style:<24}"
        for name, overrides in SETTINGS.items():
            flow = medium_flow if name == "previous default" else None
            outputs = propagate_video(
                rgb_frames, rgb_keys, flow=flow, options=PropagationOptions(**overrides), progress=False
            )
            psnr, ssim, sharpness = scores([np.ascontiguousarray(output[..., ::-1]) for output in outputs])
            row += f"{psnr - base_psnr:>+12.2f} {ssim - base_ssim:+.4f} {sharpness:.3f}"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
