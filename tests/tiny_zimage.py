"""Tiny Z-Image-shaped components with random weights, built from configs as diffusers' own tests do.

The real architectures at toy width: a `ZImageTransformer2DModel` (patch 2, single-stream blocks, RoPE over
(frame, row, column)), a `ZImageControlNetModel` (control blocks at the real model's kind of places), a 16-channel
KL VAE with a shift factor, a Qwen3 text encoder, and a byte-level BPE tokenizer of Qwen2's type
(`Qwen2TokenizerFast` with a chat template, written as vocab.json/merges.txt like the real repository's) and
a `FlowMatchEulerDiscreteScheduler` with Z-Image's shift. `save_tiny_zimage` writes them as a diffusers folder with
the real repository's layout (model_index.json, one sub-folder per component).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.tiny_models import _bytes_to_unicode

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def write_tiny_qwen_tokenizer(folder: Path):
    """A byte-level BPE tokenizer of Qwen2's type (no merges: one token per byte) with a chat template."""
    from transformers import Qwen2TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: index for index, symbol in enumerate(_bytes_to_unicode())}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = Qwen2TokenizerFast(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tiny_zimage_components(tokenizer_folder: Path, seed: int = 0, controlnet: bool = True) -> dict:
    """Build the tiny components; each is seeded before construction so the weights are reproducible."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImageControlNetModel,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = write_tiny_qwen_tokenizer(tokenizer_folder)
    dim, heads = 32, 2  # head_dim 16 = sum(axes_dims)
    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=dim,
        n_layers=3,
        n_refiner_layers=1,
        n_heads=heads,
        n_kv_heads=heads,
        cap_feat_dim=16,
        axes_dims=[4, 6, 6],
        axes_lens=[256, 64, 64],
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        block_out_channels=(8, 16, 16, 16),  # 8× down, as the real VAE
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    torch.manual_seed(seed + 2)
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=512,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    components = {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }
    if controlnet:
        torch.manual_seed(seed + 3)
        components["controlnet"] = ZImageControlNetModel(
            control_layers_places=[0, 2],
            control_in_dim=16,
            all_patch_size=(2,),
            all_f_patch_size=(1,),
            dim=dim,
            n_refiner_layers=1,
            n_heads=heads,
            n_kv_heads=heads,
        )
    return components


def save_tiny_zimage(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny Z-Image base (the layout of Tongyi-MAI/Z-Image-Turbo) and, beside it, a tiny Z-Image ControlNet
    folder (the Union ControlNet is a repository of its own). Returns ``(base folder, controlnet folder)``."""
    from diffusers import ZImagePipeline

    components = make_tiny_zimage_components(folder / "_tokenizer", seed)
    controlnet = components.pop("controlnet")
    base, control = folder / "z-image", folder / "z-image-controlnet"
    ZImagePipeline(**components).save_pretrained(base)
    controlnet.save_pretrained(control)
    return base, control
