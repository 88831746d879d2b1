"""Blend variants of the reconstruction blend on the suite's cases, tuned on half the clips, checked on the other.

    python benchmarks/propagation_blend_study.py [--clips ...] [--styles cartoon,pencil,watercolor,impasto,glass]
        [--cache /tmp/blend_study]

Each case's two passes are computed once with the balanced preset (as the suite's propagator computes them) and
kept in ``--cache``; every variant then blends the same passes, so a variant costs seconds, not a propagation.
With the balanced preset the patch search sees only the guides (no style term), so the search of a clip is
shared by its styles: it is memoised per clip and each style only re-votes. The default variant reproduces the
suite's pictures exactly. Prints, per half (tuning: cottonbro, boxer, dog, man-surfing; held-out: antoni,
car-turn, woman-running, rabbit), every case against ``warp_blend`` and the worst margins, with the bench's own
metrics (``propagation_bench.psnr`` / ``ssim`` / ``grad_energy``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BENCH = os.environ.get(
    "RERENDER_BENCH", os.path.join(HERE, "..", "..", "shared", "bench")
)  # as propagation_suite_plus
if not os.path.isfile(os.path.join(BENCH, "propagation_bench.py")):
    sys.exit(f"the propagation suite is not at {BENCH}: set RERENDER_BENCH to the folder holding propagation_bench.py")
sys.path.insert(0, BENCH)
import propagation_bench as pb  # noqa: E402
import propagation_suite as ps  # noqa: E402
import propagation_suite_plus  # noqa: E402
from propagation_styles import STYLES  # noqa: E402

import ebsynth_bridge  # noqa: E402
import rerender.propagation.blend as blend_module  # noqa: E402
from rerender.propagation import PropagationOptions, propagate_video  # noqa: E402

HALVES = {
    "tuning": ("cottonbro", "boxer", "dog", "man-surfing"),
    "held-out": ("antoni", "car-turn", "woman-running", "rabbit"),
}


def _passes(clip: str, style: str, cache: str) -> dict:
    """Frames, ground truth and the interval's two passes (cached on disk; the search memoised per clip)."""
    path = os.path.join(cache, f"{clip}_{style}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    file, start, step = ps.CLIPS[clip]
    frames = pb.load_clip(os.path.join(ps.VIDEOS, file), start, step, 21, 384)
    cv2.setNumThreads(1)
    truth = [pb.STYLES[style][0](frame) for frame in frames]
    memo_path = os.path.join(cache, f"search_{clip}.pkl")
    memo = pickle.load(open(memo_path, "rb")) if os.path.exists(memo_path) else {}
    synthesize, merge, got = ebsynth_bridge.synthesize, blend_module._reconstruction_blend, {}

    def memo_synthesize(style_image, guides, **kw):
        key = hashlib.md5(guides[0].source.tobytes() + guides[0].target.tobytes() + str(kw["seed"]).encode()).digest()
        if key in memo:
            nnf, error = memo[key]
            image = ebsynth_bridge.vote(style_image, nnf, patch_size=kw["patch_size"])
            return ebsynth_bridge.SynthesisResult(image=image, error=error, nnf=nnf)
        result = synthesize(style_image, guides, **kw)
        memo[key] = (result.nnf, result.error)
        return result

    def spy(left, right, forward, backward, options):
        got["passes"] = (left, right, forward, backward)
        yield from merge(left, right, forward, backward, options)

    ebsynth_bridge.synthesize, blend_module._reconstruction_blend = memo_synthesize, spy
    try:
        rgb = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
        keys = {0: np.ascontiguousarray(truth[0][..., ::-1]), 20: np.ascontiguousarray(truth[-1][..., ::-1])}
        propagate_video(rgb, keys, options=PropagationOptions.preset("balanced"), progress=False, workers=2)
    finally:
        ebsynth_bridge.synthesize, blend_module._reconstruction_blend = synthesize, merge
    data = dict(frames=frames, truth=truth, passes=got["passes"])
    with open(path, "wb") as f:
        pickle.dump(data, f)
    with open(memo_path, "wb") as f:
        pickle.dump(memo, f)
    return data


def variant(power: float = 1.0, time_exponent: float = 0.5, robust: bool = False):
    """The reconstruction blend with its error weighting varied: ``power`` 1 = ``t/(G*e + 1)`` (the default),
    2 = ``t/(G*e + 1)²`` (inverse variance, the smoothed error standing for the deviation); ``robust`` adds each candidate's distance to the first blend to its
    error and blends again (one IRLS step)."""

    def blend(left, right, forward, backward, options):
        for offset, index in enumerate(range(left + 1, right)):
            back = right - index - 1
            w = (index - left) / (right - left)
            times = [(1 - w) ** time_exponent, w**time_exponent] * 2
            candidates = [forward.images[offset], backward.images[back], forward.warps[offset], backward.warps[back]]
            errors = [forward.reconstruction_errors[offset], backward.reconstruction_errors[back]]
            errors += [forward.warp_errors[offset], backward.warp_errors[back]]
            weights = ebsynth_bridge.reconstruction_weights(errors, times, power=power)
            blended = ebsynth_bridge.weighted_blend(candidates, weights)
            if robust:
                errors = [e + np.abs(c.astype(np.float32) - blended).sum(2) for e, c in zip(errors, candidates)]
                weights = ebsynth_bridge.reconstruction_weights(errors, times)
                blended = ebsynth_bridge.weighted_blend(candidates, weights)
            right_share = float(np.mean(sum(weights[1::2])))
            ratios = [r.key_energies[0] / max(r.key_energies[1], 1e-3) for r in (forward, backward)]
            ratio = (1 - right_share) * ratios[0] + right_share * ratios[1]
            target = options.blend_sharpness * ratio * forward.frame_energies[offset]
            blended, _ = ebsynth_bridge.match_sharpness(blended, candidates, weights, target)
            yield index, np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    return blend


VARIANTS = {
    "default": None,
    "inverse-variance": variant(power=2),
    "time^1": variant(time_exponent=1.0),
    "robust-IRLS": variant(robust=True),
}


def _scores(outputs: list, truth: list) -> tuple[float, float, float]:
    inner = range(1, len(truth) - 1)
    return (
        float(np.mean([pb.psnr(outputs[t], truth[t]) for t in inner])),
        float(np.mean([pb.ssim(outputs[t], truth[t]) for t in inner])),
        float(np.mean([pb.grad_energy(outputs[t]) / pb.grad_energy(truth[t]) for t in inner])),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=",".join(HALVES["tuning"] + HALVES["held-out"]))
    ap.add_argument("--styles", default=",".join(propagation_suite_plus.DEFAULT_STYLES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cache", default=os.path.join("/tmp", "rerender_blend_study"))
    args = ap.parse_args(argv)
    pb.STYLES.update(STYLES)
    os.makedirs(args.cache, exist_ok=True)
    options = PropagationOptions.preset("balanced")
    baselines: dict[tuple[str, str], tuple[float, float, float]] = {}
    for half, members in HALVES.items():
        cases = [(c, s) for c in args.clips.split(",") if c in members for s in args.styles.split(",")]
        for name in args.variants.split(","):
            worst = [np.inf, np.inf, np.inf]
            for clip, style in cases:
                data = _passes(clip, style, args.cache)
                frames, truth = data["frames"], data["truth"]
                if (clip, style) not in baselines:
                    flows = {"flows": pb.FlowCache(frames)}
                    baselines[clip, style] = _scores(
                        pb.prop_warp_blend(frames, {0: truth[0], 20: truth[-1]}, flows), truth
                    )
                merge = VARIANTS[name] or blend_module._reconstruction_blend
                outputs = list(truth)
                for index, image in merge(*data["passes"], options):
                    outputs[index] = np.ascontiguousarray(image[..., ::-1])
                ours, theirs = _scores(outputs, truth), baselines[clip, style]
                delta = (ours[0] - theirs[0], ours[1] - theirs[1], ours[2])
                worst = [min(a, b) for a, b in zip(worst, delta)]
                print(
                    f"{half:<9}{name:<17}{clip:<14}{style:<11}dPSNR {delta[0]:+.2f} dSSIM {delta[1]:+.4f} "
                    f"sharp {delta[2]:.2f}",
                    flush=True,
                )
            if cases:
                print(f"{half:<9}{name:<17}worst dPSNR {worst[0]:+.2f} dSSIM {worst[1]:+.4f} sharp {worst[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
