"""Z-Image keyframe benchmark: RerenderZImagePipeline against diffusers' ZImageControlNetPipeline, same components.

The real block structure at reduced width (no weights here, and 6B parameters would not fit this machine's
time): 30 main-stream blocks and 2 + 2 refiners as Z-Image-Turbo has, a ControlNet with control blocks at
the Union ControlNet's places (0, 5, …, 25), the 16-channel VAE at reduced width, a small Qwen3 text encoder;
random weights; 256×256 frames, 8 steps, strength 1 (diffusers' ControlNet pipeline is text-to-image, so both
start from noise), guidance off (Turbo), fp32 on the CPU. In one process, plain runs before and after ours:

* ``plain``: `ZImageControlNetPipeline`, one call per keyframe (8 transformer calls);
* ``rerender``: the anchor, then keyframes with cross-frame attention in every main block, shape-aware and
  pixel-aware fusion (two passes) and AdaIN.

Printed (by the harness both families share, `transformer_benchmark.run`): seconds per keyframe (the anchor apart),
the time ratio against plain, the ratio of transformer calls (the method's cost by construction), and the memory
the stored attention references take per reference frame at this size (measured) and, by `reference_bytes`, at
1024² for the real model, with the blocks a memory budget allows (`blocks_within`).

Usage:
    python benchmarks/zimage_benchmark.py --threads 2
    python benchmarks/zimage_benchmark.py --width 64 --layers 4 --size 64 --keyframes 1   # smoke test
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from transformer_benchmark import BenchmarkFamily, common_arguments, reduced_vae, run


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, steps=8, real_width=3840)
    parser.add_argument("--layers", type=int, default=30, help="main-stream blocks (real: 30)")
    return parser.parse_args(argv)


def build(width: int, layers: int):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImageControlNetModel, ZImageTransformer2DModel
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
    vae = reduced_vae(quant_conv=True)
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
    from diffusers import ZImageControlNetPipeline

    from rerender.diffusion.zimage import RerenderZImagePipeline

    family = BenchmarkFamily(
        name="Z-Image",
        plain=lambda components: ZImageControlNetPipeline(**components),
        ours=lambda components, plain: RerenderZImagePipeline(**{**components, "controlnet": plain.controlnet}),
        plain_control=lambda control_map: {"control_image": control_map},
        guidance_scale=1.0,
        real_width=3840,
        real_blocks=30,
        preset_blocks=10,
        token_multiple=32,  # SEQ_MULTI_OF: the image tokens are padded
    )
    return run(args, family, build(args.width, args.layers), f"{args.layers} blocks")


if __name__ == "__main__":
    main()
    raise SystemExit(0)
