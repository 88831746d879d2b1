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

Printed (by the harness both families share, `transformer_benchmark.run`): seconds per keyframe (the anchor apart),
the time ratio against plain, the ratio of transformer calls, and the memory the stored attention references take
per reference frame here (measured, double- and single-stream blocks) and, by `reference_bytes`, at 1024² for the
real model, with the blocks a memory budget allows (`blocks_within`).

Usage:
    python benchmarks/flux_benchmark.py --threads 2
    python benchmarks/flux_benchmark.py --width 128 --layers 2 --single-layers 4 --size 64 --keyframes 1   # smoke
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from transformer_benchmark import BenchmarkFamily, common_arguments, reduced_vae, run


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, steps=4, real_width=3072)
    parser.add_argument("--layers", type=int, default=19, help="double-stream blocks (real: 19)")
    parser.add_argument("--single-layers", type=int, default=38, help="single-stream blocks (real: 38)")
    return parser.parse_args(argv)


def build(width: int, layers: int, single_layers: int) -> dict:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxControlNetModel, FluxTransformer2DModel
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
    vae = reduced_vae(quant_conv=False)
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
    import torch
    from diffusers import FluxControlNetPipeline

    from rerender.diffusion.flux import RerenderFluxPipeline

    family = BenchmarkFamily(
        name="Flux",
        plain=lambda components: FluxControlNetPipeline(**components),
        ours=lambda components, plain: RerenderFluxPipeline(**components),
        plain_control=lambda control_map: {
            "control_image": torch.from_numpy(control_map).permute(2, 0, 1)[None].float() / 127.5 - 1,
            "max_sequence_length": 256,  # schnell's, as ours without a guidance embedding
        },
        guidance_scale=0.0,
        real_width=3072,
        real_blocks=57,
        preset_blocks=20,
    )
    structure = f"{args.layers}+{args.single_layers} blocks"
    return run(args, family, build(args.width, args.layers, args.single_layers), structure)


if __name__ == "__main__":
    main()
    raise SystemExit(0)
