"""Z-Image keyframe benchmark: RerenderZImagePipeline against diffusers' ZImageControlNetPipeline, same components.

The real block structure at reduced width (no weights here, and 6B parameters would not fit this machine's
time): 30 main-stream blocks and 2 + 2 refiners as Z-Image-Turbo has, a ControlNet with control blocks at
the Union ControlNet's places (0, 5, …, 25), the 16-channel VAE at reduced width, a small Qwen3 text encoder;
random weights; 256×256 frames, 8 steps, strength 1 (diffusers' ControlNet pipeline is text-to-image, so both
start from noise), guidance off (Turbo), fp32 on the CPU. In one process, plain runs before and after ours:

* ``plain``: `ZImageControlNetPipeline`, one call per keyframe (8 transformer calls);
* ``rerender``: the anchor, then keyframes with cross-frame attention in every main block, shape-aware and
  pixel-aware fusion (two passes) and AdaIN.

Printed: seconds per keyframe (the anchor apart), the time ratio against plain, the ratio of transformer calls
(the method's cost by construction), and the memory the stored attention references take per reference frame
at this size and, by `reference_bytes`, at 1024² for the real model.

Usage:
    python benchmarks/zimage_benchmark.py --threads 2
    python benchmarks/zimage_benchmark.py --width 64 --layers 4 --size 64 --keyframes 1   # smoke test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=256, help="transformer width (real: 3840; head dim stays 128)")
    parser.add_argument("--layers", type=int, default=30, help="main-stream blocks (real: 30)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--keyframes", type=int, default=2, help="keyframes after the anchor")
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (GPU check: --device cuda --width 3840 --size 1024)"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument(
        "--last-blocks", type=int, default=None, help="cross-frame attention in the last N blocks only"
    )
    return parser.parse_args(argv)


def build(width: int, layers: int):
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImageControlNetModel,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    from tests.tiny_zimage import write_tiny_qwen_tokenizer

    tokenizer = write_tiny_qwen_tokenizer(Path(tempfile.mkdtemp()))
    heads = max(1, width // 128)
    axes = (
        [32, 48, 48]
        if width // heads == 128
        else [width // heads // 4, width // heads * 3 // 8, width // heads * 3 // 8]
    )
    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(
        dim=width,
        n_layers=layers,
        n_refiner_layers=2,
        n_heads=heads,
        n_kv_heads=heads,
        cap_feat_dim=64,
        axes_dims=axes,
    )
    controlnet = ZImageControlNetModel(
        control_layers_places=list(range(0, layers, 5)),
        control_in_dim=16,
        dim=width,
        n_refiner_layers=2,
        n_heads=heads,
        n_kv_heads=heads,
    )
    vae = AutoencoderKL(
        latent_channels=16,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return dict(
        transformer=transformer,
        controlnet=controlnet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    import numpy as np
    import torch
    from diffusers import ZImageControlNetPipeline

    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.diffusion.transformer_attention import reference_bytes
    from rerender.diffusion.zimage import RerenderZImagePipeline
    from rerender.flow import DISFlowEstimator
    from rerender.video import read_frames

    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    components = build(args.width, args.layers)
    plain = ZImageControlNetPipeline(**components)
    ours = RerenderZImagePipeline(**{**components, "controlnet": plain.controlnet})
    for pipe in (plain, ours):
        pipe.to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
    cuda = device.type == "cuda"

    def peak_reset() -> None:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak() -> float:
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    frames = list(
        read_frames(
            REPO / "rerender" / "assets" / "demo.mp4",
            end=10 * (args.keyframes + 1),
            stride=10,
            resolution=args.size,
            size_multiple=16,
        )
    )
    frames = [frame[: args.size, : args.size] for frame in frames]
    maps = [canny(frame) for frame in frames]
    side = frames[0].shape[0], frames[0].shape[1]
    constraints = ConstraintConfig(adain_period=(0.75, 1.0), cross_frame_blocks=args.last_blocks)

    def run_plain() -> float:
        started = time.perf_counter()
        for control_map in maps[1:]:
            plain(
                "a cartoon",
                control_image=control_map,
                height=side[0],
                width=side[1],
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                generator=torch.Generator().manual_seed(0),
                output_type="np",
            )
        return (time.perf_counter() - started) / (len(maps) - 1)

    def run_ours() -> tuple[float, float, list[int], int]:
        stores = []
        import rerender.diffusion.zimage as zimage

        install = zimage.token_cross_frame_attention
        zimage.token_cross_frame_attention = lambda t, store, *a, **k: (
            stores.append(store) or install(t, store, *a, **k)
        )
        times, calls, anchor_bytes = [], [], 0
        try:
            for frame in ours.render_keyframes(
                frames,
                "a cartoon",
                control_images=[maps],
                num_inference_steps=args.steps,
                guidance_scale=1.0,
                strength=1.0,
                constraints=constraints,
                flow_estimator=DISFlowEstimator(),
                generator=torch.Generator().manual_seed(0),
            ):
                times.append(frame.seconds)
                calls.append(frame.unet_calls)
                if frame.index == 0:
                    anchor_bytes = stores[-1].nbytes
        finally:
            zimage.token_cross_frame_attention = install
        return times[0], float(np.mean(times[1:])), calls, anchor_bytes

    peak_reset()
    before = run_plain()
    plain_peak = peak()
    peak_reset()
    anchor, keyframe, calls, anchor_bytes = run_ours()
    ours_peak = peak()
    after = run_plain()
    plain_time = (before + after) / 2
    print(
        f"Z-Image structure at width {args.width}, {args.layers} blocks, {side[1]}x{side[0]}, {args.steps} steps, "
        f"{args.threads} threads"
    )
    print(
        f"plain ZImageControlNetPipeline: {plain_time:.2f} s/keyframe (runs {before:.2f} / {after:.2f}), {args.steps} calls"
    )
    print(f"rerender: anchor {anchor:.2f} s ({calls[0]} calls), keyframe {keyframe:.2f} s ({calls[1]} calls)")
    print(f"time ratio {keyframe / plain_time:.2f} vs call ratio {calls[1] / args.steps:.2f}")
    tokens = (side[0] // 16) * (side[1] // 16)
    print(
        f"stored references per reference frame here: {anchor_bytes / 2**20:.1f} MiB; at 1024² on Z-Image (bf16, 30 blocks, "
        f"{args.steps} steps): {reference_bytes(4096, 3840, 30, args.steps) / 2**30:.1f} GiB, last 10 blocks: "
        f"{reference_bytes(4096, 3840, 10, args.steps) / 2**30:.1f} GiB"
    )
    if cuda:
        print(f"peak VRAM: plain {plain_peak:.1f} GiB, rerender {ours_peak:.1f} GiB (target ≤ 16 GB without offload)")
    del tokens
    return {
        "plain_seconds": plain_time,
        "keyframe_seconds": keyframe,
        "anchor_seconds": anchor,
        "calls": calls,
        "steps": args.steps,
        "time_ratio": keyframe / plain_time,
        "call_ratio": calls[1] / args.steps,
        "reference_bytes": anchor_bytes,
        "peak_gib": {"plain": plain_peak, "rerender": ours_peak},
    }


if __name__ == "__main__":
    main()
    raise SystemExit(0)
