"""Keyframe engine benchmark: RerenderPipeline vs plain diffusers ControlNet img2img, same components.

``--family sd15`` (default) uses full-size SD 1.5; ``--family sdxl`` uses SDXL's block structure (the UNet's three
levels, transformer depths 1/2/10, two text encoders, text/time added conditioning, the SDXL ControlNet) at a
reduced width (``--width``, default 0.5 of every channel count; full-size SDXL does not fit a shared CPU machine's
memory in fp32) with the full-size SDXL VAE, against diffusers' `StableDiffusionXLControlNetImg2ImgPipeline`.

Full-size SD 1.5 UNet + ControlNet + VAE + CLIP text encoder built from the configs shipped in
``rerender/assets/sd15-config`` with random weights (no download), 256×256 frames from the bundled demo clip,
10 DDIM steps, denoising strength 0.75, guidance 7.5, canny control, fp32 on the CPU. In one process:

* ``plain``: diffusers' `StableDiffusionControlNetImg2ImgPipeline`, one call per keyframe, run before, between and
  after the others: each rerender variant is compared with the mean of the two plain runs around it, so a change
  of load on a shared machine does not bias the ratios (and a warning says when the plain runs disagree);
* ``rerender, all constraints``: the anchor then the keyframes with cross-frame attention, shape-aware fusion,
  pixel-aware fusion (second pass + fidelity encoding) and AdaIN (0.8, 1);
* ``rerender, pixel-aware off``: the same without pixel-aware fusion (one pass per keyframe);
* with ``--fidelity-off``, ``rerender, fidelity encoding off``: every constraint, the pixel-aware target encoded
  with a plain VAE encode (paper Eqs. 8–9 off: 1 encode and 2 decodes fewer per keyframe).

Reported per variant: wall time per keyframe (the anchor is excluded for rerender and reported apart), peak
resident memory (sampled every 10 ms) and its increase over the models-loaded baseline, UNet calls per keyframe.
Then the decomposition of the overhead: every UNet (+ ControlNet) call, VAE encode and VAE decode is timed; the
plain runs give the seconds of one call of each kind, and each variant's calls weighed by them give its
*model-work ratio* (what the method's own model calls cost against plain's: 11 UNet calls, 3 encodes and
4 decodes per keyframe with every constraint, against 7 + 1 + 1). "beyond model work" = time ratio − model-work
ratio is what the engine costs on top of its model calls (flow, masks, fusions, AdaIN, cross-frame attention's
extra keys, Python). `keyframe_profile.py` breaks that down per function.

Usage:
    python benchmarks/keyframe_benchmark.py --threads 2
    python benchmarks/keyframe_benchmark.py --family sdxl --size 128 --keyframes 2 --threads 1 --clock cpu  # shared CPU
    python benchmarks/keyframe_benchmark.py --config-dir <tiny diffusers folder> --size 64 --keyframes 2  # smoke test
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15", help="model family (default sd15)")
    parser.add_argument("--width", type=float, default=None, help="SDXL channel scale (default 0.5; 1 = full size)")
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="config folder (default: the family's shipped one)"
    )
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps of the full schedule (default 10)")
    parser.add_argument("--strength", type=float, default=0.75, help="denoising strength (default 0.75)")
    parser.add_argument("--keyframes", type=int, default=3, help="keyframes after the anchor (default 3)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared machine; use with --threads 1)",
    )
    parser.add_argument(
        "--fidelity-off",
        action="store_true",
        help="also run every constraint with the fidelity-oriented encoding off (1 VAE encode and 2 decodes fewer "
        "per keyframe)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args()


class PeakMemory:
    """Peak resident set size of this process while the block runs, sampled by a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def release_memory() -> int:
    """Collect garbage and give freed heap back to the OS so that each variant starts from the same baseline."""
    import psutil

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    return psutil.Process().memory_info().rss


def build_components(config_dir: Path) -> dict:
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet"))
    torch.manual_seed(1)
    controlnet = ControlNetModel.from_config(ControlNetModel.load_config(config_dir / "controlnet"))
    torch.manual_seed(2)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
    torch.manual_seed(3)
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder"))
    tokenizer = CLIPTokenizer.from_pretrained(config_dir / "tokenizer")
    scheduler = DDIMScheduler.from_pretrained(config_dir, subfolder="scheduler")
    for model in (unet, controlnet, vae, text_encoder):
        model.eval().requires_grad_(False)
    return dict(
        unet=unet, controlnet=controlnet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
    )


def build_sdxl_components(config_dir: Path, width: float = 1.0, device=None) -> dict:
    """SDXL components from the shipped configs with random weights; every UNet/ControlNet/text-encoder channel
    count scaled by `width` (block structure, depths and the VAE unchanged)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    def scaled(value: int, multiple: int = 32) -> int:
        return max(multiple, int(round(value * width / multiple)) * multiple)

    config = dict(UNet2DConditionModel.load_config(config_dir / "unet"))
    first = CLIPTextConfig.from_pretrained(config_dir / "text_encoder")
    second = CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")
    if width != 1.0:
        first.hidden_size, first.intermediate_size = scaled(first.hidden_size, 64), scaled(first.intermediate_size, 64)
        second.hidden_size, second.intermediate_size = (
            scaled(second.hidden_size, 64),
            scaled(second.intermediate_size, 64),
        )
        second.projection_dim = second.hidden_size
        config["block_out_channels"] = [scaled(channels) for channels in config["block_out_channels"]]
        config["attention_head_dim"] = [max(1, int(heads * width)) for heads in config["attention_head_dim"]]
        config["cross_attention_dim"] = first.hidden_size + second.hidden_size
        config["projection_class_embeddings_input_dim"] = 6 * config["addition_time_embed_dim"] + second.projection_dim
    with torch.device(device or "cpu"):
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(config)
        torch.manual_seed(1)
        embedding = ControlNetModel.load_config(config_dir / "controlnet")["conditioning_embedding_out_channels"]
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=tuple(embedding), load_weights_from_unet=False
        )
        torch.manual_seed(2)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
        torch.manual_seed(3)
        text_encoder = CLIPTextModel(first)
        torch.manual_seed(4)
        text_encoder_2 = CLIPTextModelWithProjection(second)
    components = dict(
        unet=unet,
        controlnet=controlnet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer.from_pretrained(config_dir / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(config_dir / "tokenizer_2"),
        scheduler=DDIMScheduler.from_pretrained(config_dir, subfolder="scheduler"),
    )
    for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        components[name].eval().requires_grad_(False)
    return components


def read_demo_frames(count: int, size: int):
    import cv2

    from rerender.video import read_frames

    frames = list(read_frames(REPO / "rerender" / "assets" / "demo.mp4", start=0, end=10 * count, stride=10))
    return [cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in frames[:count]]


def main() -> int:
    arguments = parse_arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)
    sys.path.insert(0, str(REPO))
    from diffusers import StableDiffusionControlNetImg2ImgPipeline
    from PIL import Image

    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.flow import DISFlowEstimator

    clock = time.process_time if arguments.clock == "cpu" else time.perf_counter
    sdxl = arguments.family == "sdxl"
    width = arguments.width if arguments.width is not None else (0.5 if sdxl else 1.0)
    arguments.config_dir = arguments.config_dir or REPO / "rerender" / "assets" / f"{arguments.family}-config"
    started = time.perf_counter()
    components = build_sdxl_components(arguments.config_dir, width) if sdxl else build_components(arguments.config_dir)
    build_seconds = time.perf_counter() - started
    frames = read_demo_frames(arguments.keyframes + 1, arguments.size)
    controls = [canny(frame) for frame in frames]
    prompt = "a watercolour painting of a woman, best quality, extremely detailed"
    common = dict(num_inference_steps=arguments.steps, strength=arguments.strength, guidance_scale=7.5)

    if sdxl:
        from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

        plain = StableDiffusionXLControlNetImg2ImgPipeline(**components, requires_aesthetics_score=False)
    else:
        plain = StableDiffusionControlNetImg2ImgPipeline(
            **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    ours = RerenderPipeline(**components)
    for pipeline in (plain, ours):
        pipeline.set_progress_bar_config(disable=True)

    unet_calls = []
    components["unet"].register_forward_pre_hook(lambda module, args: unet_calls.append(1))
    # model work: seconds and calls of every UNet (+ ControlNet), VAE encode and VAE decode, per variant
    model_seconds: dict[str, float] = {"unet": 0.0, "encode": 0.0, "decode": 0.0}
    model_calls: dict[str, int] = {"unet": 0, "encode": 0, "decode": 0}

    def timed(function, kind: str):
        def call(*args, **kwargs):
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                model_seconds[kind] += clock() - began
                model_calls[kind] += kind != "controlnet"

        return call

    def counted_controlnet(function):  # its time is the UNet call's: one model call is UNet + ControlNet
        def call(*args, **kwargs):
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                model_seconds["unet"] += clock() - began

        return call

    components["unet"].forward = timed(components["unet"].forward, "unet")
    components["controlnet"].forward = counted_controlnet(components["controlnet"].forward)
    components["vae"].encode = timed(components["vae"].encode, "encode")
    components["vae"].decode = timed(components["vae"].decode, "decode")

    def reset_model_work() -> None:
        for kind in model_seconds:
            model_seconds[kind], model_calls[kind] = 0.0, 0

    def model_work() -> dict:
        return dict(seconds=dict(model_seconds), calls=dict(model_calls))

    with torch.no_grad():
        # warm-up (oneDNN primitives, allocator) with a short plain run
        plain(
            prompt,
            image=Image.fromarray(frames[0]),
            control_image=Image.fromarray(controls[0]),
            controlnet_conditioning_scale=1.0,
            num_inference_steps=arguments.steps,
            strength=max(0.2, 1.0 / arguments.steps),
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
    baseline = release_memory()

    results = []

    def run_plain(label: str) -> None:
        release_memory()
        times, calls = [], []
        reset_model_work()
        with PeakMemory() as memory, torch.no_grad():
            for frame, control in zip(frames[1:], controls[1:]):
                unet_calls.clear()
                begin = clock()
                plain(
                    prompt,
                    image=Image.fromarray(frame),
                    control_image=Image.fromarray(control),
                    controlnet_conditioning_scale=1.0,
                    generator=torch.Generator().manual_seed(0),
                    output_type="np",
                    **common,
                )
                times.append(clock() - begin)
                calls.append(len(unet_calls))
        results.append(
            dict(
                variant=label,
                seconds=times,
                anchor_seconds=None,
                unet_calls=calls,
                peak=memory.peak,
                model_work=model_work(),
                keyframes=len(times),
            )
        )
        print(
            f"{label}: {np.mean(times):.1f} s/keyframe {times}, UNet calls {calls}, peak {memory.peak / 2**30:.2f} GiB",
            flush=True,
        )

    def run_ours(label: str, constraints: ConstraintConfig) -> None:
        release_memory()
        unet_calls.clear()
        reset_model_work()
        rendered, seconds = [], []
        with PeakMemory() as memory:
            frames_out = ours.render_keyframes(
                frames,
                prompt,
                control_images=controls,
                flow_estimator=DISFlowEstimator("medium"),
                constraints=constraints,
                generator=torch.Generator().manual_seed(0),
                **common,
            )
            while True:
                began = clock()
                frame = next(frames_out, None)
                if frame is None:
                    break
                seconds.append(clock() - began)
                if frame.is_anchor:  # the model work of the keyframes only, as their times
                    reset_model_work()
                rendered.append(frame)
        keyframes = rendered[1:]
        assert sum(frame.unet_calls for frame in rendered) == len(unet_calls)
        times = seconds[1:]
        calls = [frame.unet_calls for frame in keyframes]
        results.append(
            dict(
                variant=label,
                seconds=times,
                anchor_seconds=seconds[0],
                unet_calls=calls,
                peak=memory.peak,
                model_work=model_work(),
                keyframes=len(times),
            )
        )
        print(
            f"{label}: {np.mean(times):.1f} s/keyframe {times} (anchor {seconds[0]:.1f} s), UNet calls {calls}, "
            f"peak {memory.peak / 2**30:.2f} GiB",
            flush=True,
        )

    # Each rerender variant is bracketed by plain runs and compared with their mean, so that a change of load on a
    # shared machine during the benchmark biases no variant.
    all_on = ConstraintConfig(adain_period=(0.8, 1.0))
    run_plain("plain diffusers (run 1)")
    run_ours("rerender, all constraints", all_on)
    run_plain("plain diffusers (run 2)")
    run_ours("rerender, pixel-aware off", ConstraintConfig(adain_period=(0.8, 1.0), pixel_fusion_period=None))
    run_plain("plain diffusers (run 3)")
    if arguments.fidelity_off:
        run_ours("rerender, fidelity encoding off", replace(all_on, fidelity_encoding=False))
        run_plain("plain diffusers (run 4)")

    plain_runs = [r for r in results if r["variant"].startswith("plain")]
    plain_peak = max(r["peak"] for r in plain_runs)
    for position, result in enumerate(results):
        if result["variant"].startswith("plain"):
            neighbours = [result]
        else:
            neighbours = [results[position - 1], results[position + 1]]
        result["plain_time"] = float(np.mean([s for r in neighbours for s in r["seconds"]]))
    plain_time = float(np.mean([s for r in plain_runs for s in r["seconds"]]))
    print()
    described = f"width {width:g}" if sdxl and width != 1.0 else "full size"
    print(
        f"UNet + ControlNet + VAE + CLIP from {arguments.config_dir.name} ({described}, random weights), "
        f"{arguments.size}x{arguments.size}, {arguments.steps} steps, "
        f"strength {arguments.strength}, {arguments.keyframes} keyframes, fp32 CPU, {arguments.threads} threads, "
        f"{arguments.clock} clock, load {os.getloadavg()[0]:.1f}, "
        f"models built in {build_seconds:.0f} s, baseline RSS {baseline / 2**30:.2f} GiB"
    )
    print()
    print(
        "| variant | time / keyframe (s) | × adjacent plain runs | peak RSS (GiB) | × plain | peak − baseline (GiB) | UNet calls / keyframe |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        mean_time = float(np.mean(result["seconds"]))
        print(
            f"| {result['variant']} | {mean_time:.1f} | {mean_time / result['plain_time']:.2f} | {result['peak'] / 2**30:.2f} | "
            f"{result['peak'] / plain_peak:.2f} | {(result['peak'] - baseline) / 2**30:.2f} | "
            f"{'/'.join(map(str, result['unet_calls']))} |"
        )
    ours_all = next(r for r in results if r["variant"] == "rerender, all constraints")
    ours_off = next(r for r in results if r["variant"] == "rerender, pixel-aware off")
    spread = max(np.mean(r["seconds"]) for r in plain_runs) / min(np.mean(r["seconds"]) for r in plain_runs)
    if spread > 1.2:
        print(
            f"warning: the plain runs differ by {spread:.2f}× (load changed during the benchmark); time ratios are unreliable"
        )
    memory_ratio = ours_all["peak"] / plain_peak

    # Model work: the seconds of one model call of each kind, measured on the plain runs of this process (their
    # mean), weigh each variant's calls; the ratio of these sums is what the method's own model calls cost.
    def per_keyframe(result: dict, kind: str) -> float:
        return result["model_work"]["calls"][kind] / result["keyframes"]

    weight = {
        kind: sum(r["model_work"]["seconds"][kind] for r in plain_runs)
        / max(1, sum(r["model_work"]["calls"][kind] for r in plain_runs))
        for kind in ("unet", "encode", "decode")
    }

    def model_seconds_per_keyframe(result: dict) -> float:
        return sum(per_keyframe(result, kind) * weight[kind] for kind in weight)

    plain_model = float(np.mean([model_seconds_per_keyframe(r) for r in plain_runs]))
    plain_unet = float(np.mean([per_keyframe(r, "unet") for r in plain_runs]))
    print()
    print(
        f"model work, seconds per call on the plain runs: UNet + ControlNet {weight['unet']:.3f}, "
        f"VAE encode {weight['encode']:.3f}, VAE decode {weight['decode']:.3f}"
    )
    print()
    print(
        "| variant | time ratio | UNet-call ratio | model-work ratio | beyond model work | UNet calls | VAE enc | "
        "VAE dec | s / UNet call (× plain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for result in (r for r in results if not r["variant"].startswith("plain")):
        time_ratio = float(np.mean(result["seconds"])) / result["plain_time"]
        call_ratio = per_keyframe(result, "unet") / plain_unet
        work_ratio = model_seconds_per_keyframe(result) / plain_model
        unet_call = result["model_work"]["seconds"]["unet"] / max(1, result["model_work"]["calls"]["unet"])
        summary[result["variant"]] = dict(time=time_ratio, calls=call_ratio, model_work=work_ratio)
        print(
            f"| {result['variant']} | {time_ratio:.3f} | {call_ratio:.3f} | {work_ratio:.3f} | "
            f"{time_ratio - work_ratio:+.3f} | {per_keyframe(result, 'unet'):g} | {per_keyframe(result, 'encode'):g} | "
            f"{per_keyframe(result, 'decode'):g} | {unet_call:.3f} ({unet_call / weight['unet']:.3f}) |"
        )
    print(
        f"| plain (mean) | 1 | 1 | 1 | | {plain_unet:g} | "
        f"{np.mean([per_keyframe(r, 'encode') for r in plain_runs]):g} | "
        f"{np.mean([per_keyframe(r, 'decode') for r in plain_runs]):g} | {weight['unet']:.3f} (1) |"
    )
    ratio_all, call_ratio = summary[ours_all["variant"]]["time"], summary[ours_all["variant"]]["calls"]
    ratio_off = summary[ours_off["variant"]]["time"]
    print()
    print(
        f"overhead: all constraints {ratio_all:.2f}× the plain time against a UNet-call ratio of {call_ratio:.2f} "
        f"(target: within 0.1, ≤ {call_ratio + 0.1:.2f}: {'met' if ratio_all <= call_ratio + 0.1 else 'MISSED'}) "
        f"and a model-work ratio of {summary[ours_all['variant']]['model_work']:.2f} (UNet calls and VAE calls)"
    )
    print(
        f"targets: all constraints ≤ 2.1× time: {ratio_all:.2f} ({'met' if ratio_all <= 2.1 else 'MISSED'}); "
        f"≤ 1.25× peak memory: {memory_ratio:.2f} ({'met' if memory_ratio <= 1.25 else 'MISSED'}); "
        f"pixel-aware off ≤ 1.15× time: {ratio_off:.2f} ({'met' if ratio_off <= 1.15 else 'MISSED'})"
    )
    if arguments.json is not None:
        arguments.json.write_text(
            json.dumps(
                dict(
                    results=results, baseline=baseline, plain_time=plain_time, seconds_per_call=weight, ratios=summary
                ),
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
