"""Flux keyframe benchmark: RerenderFluxPipeline against diffusers' FluxControlNetPipeline, same components.

The real block structure at reduced width (no weights here, and 12B parameters would not fit this machine's
time): 19 double-stream and 38 single-stream blocks as FLUX.1 has, head dim 128, a ControlNet with 5 double- and
10 single-stream blocks (the InstantX canny ControlNet's shape, VAE-latent conditioning), the 16-channel VAE at
reduced width, small CLIP and T5 encoders; random weights; 256×256 frames, 4 steps (schnell), strength 1
(diffusers' ControlNet pipeline is text-to-image, so both start from noise), no guidance, fp32 on the CPU. In one
process, plain runs before and after ours:

* ``plain``: `FluxControlNetPipeline`, one call per keyframe (4 transformer calls);
* ``rerender``: the anchor, then keyframes with cross-frame attention in every block, shape-aware and pixel-aware
  fusion (two passes) and AdaIN.

Printed: seconds per keyframe (the anchor apart), the time ratio against plain, the ratio of transformer calls,
and the memory the stored attention references take per reference frame here and, by `reference_bytes`, at
1024² for the real model.

Usage:
    python benchmarks/flux_benchmark.py --threads 2
    python benchmarks/flux_benchmark.py --width 128 --layers 2 --single-layers 4 --size 64 --keyframes 1   # smoke
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
    parser.add_argument("--width", type=int, default=256, help="transformer width (real: 3072; head dim stays 128)")
    parser.add_argument("--layers", type=int, default=19, help="double-stream blocks (real: 19)")
    parser.add_argument("--single-layers", type=int, default=38, help="single-stream blocks (real: 38)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--keyframes", type=int, default=2, help="keyframes after the anchor")
    parser.add_argument(
        "--last-blocks", type=int, default=None, help="cross-frame attention in the last N blocks only"
    )
    return parser.parse_args(argv)


def build(width: int, layers: int, single_layers: int) -> dict:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxControlNetModel, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    from tests.tiny_flux import make_tiny_t5_tokenizer
    from tests.tiny_models import BOS_TOKEN_ID, EOS_TOKEN_ID, TINY_VOCAB_SIZE, write_tiny_tokenizer_files

    heads = max(1, width // 128)
    head_dim = width // heads
    axes = [16, 56, 56] if head_dim == 128 else [head_dim // 8 * 2, head_dim * 3 // 8, head_dim * 3 // 8]
    axes[0] = head_dim - axes[1] - axes[2]
    shape = dict(
        in_channels=64,
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        guidance_embeds=False,
        axes_dims_rope=axes,
    )
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(num_layers=layers, num_single_layers=single_layers, **shape)
    controlnet = FluxControlNetModel(num_layers=min(5, layers), num_single_layers=min(10, single_layers), **shape)
    vae = AutoencoderKL(
        latent_channels=16,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    folder = write_tiny_tokenizer_files(Path(tempfile.mkdtemp()))
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TINY_VOCAB_SIZE,
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=2,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=BOS_TOKEN_ID,
            eos_token_id=EOS_TOKEN_ID,
            pad_token_id=EOS_TOKEN_ID,
        )
    ).eval()
    tokenizer_2 = make_tiny_t5_tokenizer()
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=64,
            d_kv=32,
            d_ff=128,
            num_layers=2,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    return dict(
        transformer=transformer,
        controlnet=controlnet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        scheduler=scheduler,
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    import numpy as np
    import torch
    from diffusers import FluxControlNetPipeline

    import rerender.diffusion.flux as flux
    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.diffusion.transformer_attention import reference_bytes
    from rerender.flow import DISFlowEstimator
    from rerender.video import read_frames

    torch.set_num_threads(args.threads)
    components = build(args.width, args.layers, args.single_layers)
    plain = FluxControlNetPipeline(**components)
    ours = flux.RerenderFluxPipeline(**components)
    plain_length = ours.max_sequence_length  # 256 without a guidance embedding (schnell)
    for pipe in (plain, ours):
        pipe.set_progress_bar_config(disable=True)
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
                control_image=torch.from_numpy(control_map).permute(2, 0, 1)[None].float() / 127.5 - 1,
                height=side[0],
                width=side[1],
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                max_sequence_length=plain_length,
                generator=torch.Generator().manual_seed(0),
                output_type="np",
            )
        return (time.perf_counter() - started) / (len(maps) - 1)

    def run_ours() -> tuple[float, float, list[int], int]:
        stores = []
        install = flux.flux_cross_frame_attention
        flux.flux_cross_frame_attention = lambda t, store, *a, **k: stores.append(store) or install(t, store, *a, **k)
        times, calls, anchor_bytes = [], [], 0
        try:
            for frame in ours.render_keyframes(
                frames,
                "a cartoon",
                control_images=[maps],
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                strength=1.0,
                constraints=constraints,
                flow_estimator=DISFlowEstimator(),
                generator=torch.Generator().manual_seed(0),
            ):
                times.append(frame.seconds)
                calls.append(frame.unet_calls)
                anchor_bytes = stores[-1].nbytes if frame.index == 0 else anchor_bytes
        finally:
            flux.flux_cross_frame_attention = install
        return times[0], float(np.mean(times[1:])), calls, anchor_bytes

    before = run_plain()
    anchor, keyframe, calls, anchor_bytes = run_ours()
    after = run_plain()
    plain_time = (before + after) / 2
    blocks = args.layers + args.single_layers
    print(
        f"Flux structure at width {args.width}, {args.layers}+{args.single_layers} blocks, {side[1]}x{side[0]}, "
        f"{args.steps} steps, {args.threads} threads"
    )
    print(
        f"plain FluxControlNetPipeline: {plain_time:.2f} s/keyframe (runs {before:.2f} / {after:.2f}), "
        f"{args.steps} calls"
    )
    print(f"rerender: anchor {anchor:.2f} s ({calls[0]} calls), keyframe {keyframe:.2f} s ({calls[1]} calls)")
    print(f"time ratio {keyframe / plain_time:.2f} vs call ratio {calls[1] / args.steps:.2f}")
    full, last = (reference_bytes(4096, 3072, count, args.steps) / 2**30 for count in (57, 20))
    print(
        f"stored references per reference frame here ({blocks} blocks): {anchor_bytes / 2**20:.1f} MiB; "
        f"at 1024² on FLUX.1 (bf16, 57 blocks, {args.steps} steps): {full:.1f} GiB, last 20 blocks: {last:.1f} GiB"
    )
    return {
        "plain_seconds": plain_time,
        "keyframe_seconds": keyframe,
        "anchor_seconds": anchor,
        "calls": calls,
        "steps": args.steps,
        "time_ratio": keyframe / plain_time,
        "call_ratio": calls[1] / args.steps,
        "reference_bytes": anchor_bytes,
    }


if __name__ == "__main__":
    main()
    raise SystemExit(0)
