"""Where a keyframe's time goes, ours against plain img2img: per-call timers on every model and every constraint.

The same components as `keyframe_benchmark.py` (SD 1.5 full size, or SDXL's structure at reduced width with
``--family sdxl``), random weights, every constraint on (AdaIN (0.8, 1) too), DIS flow. In one process: plain
diffusers ControlNet img2img on the keyframes, then the anchor plus the keyframes through `RerenderPipeline`,
then plain again. Every model call (UNet, ControlNet, VAE encode/decode, text encoders) and every constraint
function the pipeline calls (flow, occlusion, masks, warps, the fusions, AdaIN, colour correction) is timed;
"the rest" is the frame's wall time minus these. Inside the UNet, the cross-frame attention processors are timed
apart (their time is part of the UNet's).

Usage:
    python benchmarks/keyframe_profile.py --size 256 --keyframes 2
    python benchmarks/keyframe_profile.py --family sdxl --size 256 --keyframes 2
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLOCK = time.process_time  # this process's CPU time: steady on a shared machine (run with --threads 1)
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


class Timers:
    """Accumulated seconds and counts per label; nested timers are reported apart (never subtracted twice)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter = collections.Counter()
        self.depth = 0
        self.top_level: set[str] = set()

    def wrap(self, function, label: str):
        def timed(*args, **kwargs):
            self.depth += 1
            began = CLOCK()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += CLOCK() - began
                self.calls[label] += 1
                self.depth -= 1
                if self.depth == 0:
                    self.top_level.add(label)

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()  # `top_level` is kept: a label is nested or not whichever run saw it


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--width", type=float, default=None, help="SDXL channel scale (default 0.5)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strength", type=float, default=0.75)
    parser.add_argument("--keyframes", type=int, default=2, help="keyframes after the anchor (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time = work)")
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)
    from keyframe_benchmark import build_components, build_sdxl_components, read_demo_frames
    from PIL import Image

    import rerender.diffusion.attention as attention_module
    import rerender.diffusion.pipeline as pipeline_module
    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.flow import DISFlowEstimator

    sdxl = arguments.family == "sdxl"
    config_dir = REPO / "rerender" / "assets" / f"{arguments.family}-config"
    width = arguments.width if arguments.width is not None else (0.5 if sdxl else 1.0)
    components = build_sdxl_components(config_dir, width) if sdxl else build_components(config_dir)
    frames = read_demo_frames(arguments.keyframes + 1, arguments.size)
    controls = [canny(frame) for frame in frames]
    prompt = "a watercolour painting of a woman, best quality, extremely detailed"
    common = dict(num_inference_steps=arguments.steps, strength=arguments.strength, guidance_scale=7.5)
    timers = Timers()

    # models: patch the instances' methods (both pipelines share them)
    for name, label in (("unet", "UNet"), ("controlnet", "ControlNet"), ("text_encoder", "text encoder")):
        components[name].forward = timers.wrap(components[name].forward, label)
    if sdxl:
        components["text_encoder_2"].forward = timers.wrap(components["text_encoder_2"].forward, "text encoder")
    components["vae"].encode = timers.wrap(components["vae"].encode, "VAE encode")
    components["vae"].decode = timers.wrap(components["vae"].decode, "VAE decode")
    # the constraint functions, where the pipeline looks them up
    for name in (
        "correct_colors",
        "forward_backward_occlusion",
        "soften_mask",
        "mask_to_latent",
        "flow_to_latent",
        "warp",
        "flat_regions",
        "noise_rescale",
        "composite_references",
        "pixel_aware_fusion",
        "shape_aware_fusion",
        "adain",
        "channel_statistics",
        "predict_original",
        "ddim_update",
    ):
        setattr(pipeline_module, name, timers.wrap(getattr(pipeline_module, name), name))
    attention_module.attend_to_references = timers.wrap(
        attention_module.attend_to_references, "  cross-frame attention (in UNet)"
    )
    flow = DISFlowEstimator("medium")
    flow_estimator = timers.wrap(flow, "optical flow (DIS)")

    if sdxl:
        from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

        plain = StableDiffusionXLControlNetImg2ImgPipeline(**components, requires_aesthetics_score=False)
    else:
        from diffusers import StableDiffusionControlNetImg2ImgPipeline

        plain = StableDiffusionControlNetImg2ImgPipeline(
            **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    ours = pipeline_module.RerenderPipeline(**components)
    for pipeline in (plain, ours):
        pipeline.set_progress_bar_config(disable=True)

    def run_plain() -> tuple[float, dict, dict]:
        timers.reset()
        began = CLOCK()
        with torch.no_grad():
            for frame, control in zip(frames[1:], controls[1:]):
                plain(
                    prompt,
                    image=Image.fromarray(frame),
                    control_image=Image.fromarray(control),
                    controlnet_conditioning_scale=1.0,
                    generator=torch.Generator().manual_seed(0),
                    output_type="np",
                    **common,
                )
        return (CLOCK() - began) / arguments.keyframes, dict(timers.seconds), dict(timers.calls)

    def run_ours() -> tuple[float, dict, dict, float]:
        timers.reset()
        keyframe_seconds, anchor_seconds = 0.0, 0.0
        seconds_at_keyframes: dict = {}
        calls_at_keyframes: collections.Counter = collections.Counter()
        frames_out = ours.render_keyframes(
            frames,
            prompt,
            control_images=controls,
            flow_estimator=flow_estimator,
            constraints=ConstraintConfig(adain_period=(0.8, 1.0)),
            generator=torch.Generator().manual_seed(0),
            **common,
        )
        while True:
            began = CLOCK()
            rendered = next(frames_out, None)
            if rendered is None:
                break
            rendered.seconds = CLOCK() - began
            if rendered.is_anchor:
                anchor_seconds = rendered.seconds
                seconds_at_keyframes = {k: -v for k, v in timers.seconds.items()}
                calls_at_keyframes = collections.Counter({k: -v for k, v in timers.calls.items()})
            else:
                keyframe_seconds += rendered.seconds
        seconds = {k: (v + seconds_at_keyframes.get(k, 0.0)) / arguments.keyframes for k, v in timers.seconds.items()}
        calls = {k: (v + calls_at_keyframes.get(k, 0)) / arguments.keyframes for k, v in timers.calls.items()}
        return keyframe_seconds / arguments.keyframes, seconds, calls, anchor_seconds

    with torch.no_grad():  # warm-up
        plain(
            prompt,
            image=Image.fromarray(frames[0]),
            control_image=Image.fromarray(controls[0]),
            num_inference_steps=arguments.steps,
            strength=max(0.2, 1.0 / arguments.steps),
            output_type="np",
        )
    plain_1 = run_plain()
    ours_run = run_ours()
    plain_2 = run_plain()
    plain_time = (plain_1[0] + plain_2[0]) / 2
    plain_seconds = {k: (plain_1[1].get(k, 0) + plain_2[1].get(k, 0)) / 2 / arguments.keyframes for k in plain_1[1]}
    plain_calls = {k: plain_1[2][k] / arguments.keyframes for k in plain_1[2]}
    ours_time, ours_seconds, ours_calls, anchor_time = ours_run

    described = f"width {width:g}" if sdxl and width != 1.0 else "full size"
    print(
        f"{arguments.family} ({described}, random weights), {arguments.size}², {arguments.steps} steps, strength "
        f"{arguments.strength}, {arguments.keyframes} keyframes, fp32 CPU, {arguments.threads} threads, CPU time, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"plain runs: {plain_1[0]:.2f} and {plain_2[0]:.2f} s/keyframe; ours {ours_time:.2f} (anchor {anchor_time:.2f})"
    )
    print()
    print("| per keyframe | plain s | calls | ours s | calls | difference s |")
    print("|---|---|---|---|---|---|")
    labels = sorted(set(plain_seconds) | set(ours_seconds), key=lambda k: -ours_seconds.get(k, 0.0))
    nested = {label for label in labels if label.startswith("  ")} | {
        label for label in labels if label not in timers.top_level and label not in plain_seconds
    }
    for label in labels:
        p, o = plain_seconds.get(label, 0.0), ours_seconds.get(label, 0.0)
        mark = " (nested)" if label in nested and not label.startswith("  ") else ""
        print(
            f"| {label}{mark} | {p:.3f} | {plain_calls.get(label, 0):g} | {o:.3f} | {ours_calls.get(label, 0):g} | "
            f"{o - p:+.3f} |"
        )
    counted_plain = sum(v for k, v in plain_seconds.items() if k not in nested)
    counted_ours = sum(v for k, v in ours_seconds.items() if k not in nested)
    print(
        f"| the rest (Python, copies, small ops) | {plain_time - counted_plain:.3f} | | {ours_time - counted_ours:.3f} "
        f"| | {(ours_time - counted_ours) - (plain_time - counted_plain):+.3f} |"
    )
    print(f"| **total** | {plain_time:.3f} | | {ours_time:.3f} | | {ours_time - plain_time:+.3f} |")
    print()
    unet = plain_seconds["UNet"] / plain_calls["UNet"] + plain_seconds["ControlNet"] / plain_calls["ControlNet"]
    encode = plain_seconds["VAE encode"] / plain_calls["VAE encode"]
    decode = plain_seconds["VAE decode"] / plain_calls["VAE decode"]
    print(f"plain's seconds per call: UNet+ControlNet {unet:.3f}, VAE encode {encode:.3f}, VAE decode {decode:.3f}")
    print(f"time ratio {ours_time / plain_time:.3f}; UNet-call ratio {ours_calls['UNet'] / plain_calls['UNet']:.3f}")
    model_work = lambda c: c["UNet"] * unet + c.get("VAE encode", 0) * encode + c.get("VAE decode", 0) * decode  # noqa: E731
    print(f"model-work ratio {model_work(ours_calls) / model_work(plain_calls):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
