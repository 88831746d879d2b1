"""Tiny Flux.1-shaped components with random weights, built from configs as diffusers' own tests do.

The real architectures at toy width: a `FluxTransformer2DModel` (double- then single-stream blocks, 64-channel
packed input = 16 latent channels × 2×2, 3-axis RoPE), optionally with a guidance embedding (dev) or without
(schnell), `FluxControlNetModel`s (a VAE-latent one, as published, and a hint-block one), a 16-channel KL VAE with
a shift factor, a CLIP text encoder with the byte-level CLIP tokenizer of `tests.tiny_models`, a T5 encoder with a
Unigram tokenizer of T5's type (`T5TokenizerFast`, Metaspace pre-tokenizer, ``</s>`` appended) built locally, and
Flux's `FlowMatchEulerDiscreteScheduler` (dynamic shifting). `save_tiny_flux` writes a diffusers folder with the
real repository's layout.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from tests.tiny_models import BOS_TOKEN_ID, EOS_TOKEN_ID, TINY_VOCAB_SIZE, write_tiny_tokenizer_files

T5_DIM = 32
CLIP_DIM = 32


def make_tiny_t5_tokenizer():
    """A Unigram tokenizer of T5's type: ``<pad>``=0, ``</s>``=1, ``<unk>``=2, then "▁" and a piece per character."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(character, -3.0) for character in string.ascii_lowercase + string.ascii_uppercase + string.digits]
    pieces += [("▁" + character, -2.5) for character in string.ascii_lowercase]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=512,
    )


def make_tiny_flux_components(tokenizer_folder: Path, seed: int = 0, guidance_embeds: bool = False) -> dict:
    """Build the tiny components (schnell-shaped by default); each is seeded so the weights are reproducible."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=CLIP_DIM,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=[4, 6, 6],
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        block_out_channels=(8, 16, 16, 16),  # 8× down
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TINY_VOCAB_SIZE,
            hidden_size=CLIP_DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=BOS_TOKEN_ID,
            eos_token_id=EOS_TOKEN_ID,
            pad_token_id=EOS_TOKEN_ID,
        )
    )
    folder = write_tiny_tokenizer_files(tokenizer_folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer_2 = make_tiny_t5_tokenizer()
    torch.manual_seed(seed + 3)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=T5_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()  # as from_pretrained leaves it: T5's dropout off
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "scheduler": scheduler,
    }


def make_tiny_flux_controlnet(transformer, seed: int = 4, hint_block: bool = False, union: bool = False):
    """A tiny `FluxControlNetModel` for `transformer`: VAE-latent conditioning (as published), or a hint block;
    `union`: with 7 control modes, as the InstantX/Shakker-Labs Union ControlNets."""
    from diffusers import FluxControlNetModel

    torch.manual_seed(seed)
    config = transformer.config
    controlnet = FluxControlNetModel(
        patch_size=2 if hint_block else 1,  # the hint block's 16 channels at H/8, patched 2×2 into 64
        in_channels=config.in_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=config.attention_head_dim,
        num_attention_heads=config.num_attention_heads,
        joint_attention_dim=config.joint_attention_dim,
        pooled_projection_dim=config.pooled_projection_dim,
        guidance_embeds=config.guidance_embeds,
        axes_dims_rope=list(config.axes_dims_rope),
        conditioning_embedding_channels=16 if hint_block else None,
        num_mode=7 if union else None,
    )
    # a trained ControlNet's output projections are not zero (they start at zero for training): make them act
    with torch.no_grad():
        zeroed = [
            controlnet.controlnet_x_embedder,
            *controlnet.controlnet_blocks,
            *controlnet.controlnet_single_blocks,
        ]
        if hint_block:
            zeroed.append(controlnet.input_hint_block.conv_out)
        for module in zeroed:
            torch.nn.init.normal_(module.weight, std=0.2)
    return controlnet


def save_tiny_flux(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny Flux base (the layout of black-forest-labs/FLUX.1-schnell) and, beside it, a tiny Flux
    ControlNet folder. Returns ``(base folder, controlnet folder)``."""
    from diffusers import FluxPipeline

    components = make_tiny_flux_components(folder / "_tokenizer", seed)
    base, control = folder / "flux", folder / "flux-controlnet"
    FluxPipeline(**components, image_encoder=None, feature_extractor=None).save_pretrained(base)
    make_tiny_flux_controlnet(components["transformer"]).save_pretrained(control)
    return base, control
