"""Tiny SD1.5-shaped components with random weights, built from configs as diffusers' own tests do.

They have the real architectures (UNet with cross-attention down/up blocks, a ControlNet made from the
UNet, a KL VAE, a CLIP text encoder, a CLIP BPE tokenizer) at a size that runs in about a second per frame
on one CPU thread. `save_tiny_pipeline` writes them as a local diffusers folder, so tests load them through
the same `from_pretrained(local_dir)` path users take with real weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Byte-level CLIP vocabulary: 256 byte symbols, the same with the end-of-word mark, and two specials.
TINY_VOCAB_SIZE = 514
BOS_TOKEN_ID, EOS_TOKEN_ID = 512, 513


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's reversible byte → printable-unicode table."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def write_tiny_tokenizer_files(folder: Path) -> Path:
    """Write `vocab.json` and `merges.txt` of a 514-token byte-level CLIP vocabulary into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _bytes_to_unicode()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": 256 + index for index, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = BOS_TOKEN_ID
    vocab["<|endoftext|>"] = EOS_TOKEN_ID
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def make_tiny_components(folder_for_tokenizer: Path, seed: int = 0) -> dict:
    """Build the tiny components; each is seeded before construction so the weights are reproducible."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=32,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TINY_VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=BOS_TOKEN_ID,
            eos_token_id=EOS_TOKEN_ID,
            pad_token_id=EOS_TOKEN_ID,
        )
    )
    tokenizer_folder = write_tiny_tokenizer_files(folder_for_tokenizer)
    tokenizer = CLIPTokenizer(
        str(tokenizer_folder / "vocab.json"), str(tokenizer_folder / "merges.txt"), model_max_length=77
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet,
        "controlnet": controlnet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def save_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save the tiny components as a local diffusers folder (model_index.json + one subfolder each)."""
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    components = make_tiny_components(folder / "_tokenizer_source", seed)
    pipeline = StableDiffusionControlNetImg2ImgPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipeline.save_pretrained(folder)
    return folder


TINY_TRANSLATOR_WORDS = (
    "a cat dog man woman girl robot dragon painting cartoon sketch watercolor red blue night city moon sea "
    "một con mèo chó người bức tranh 고양이 강아지 그림 만화"
).split()


def save_tiny_translator(folder: Path, seed: int = 0, weights: str = "safetensors") -> Path:
    """A tiny random MarianMT model laid out as ``Helsinki-NLP/opus-mt-*-en``: ``source.spm``/``target.spm``
    (SentencePiece models trained here on the tiny vocabulary), ``vocab.json``, ``tokenizer_config.json``,
    ``config.json``, ``generation_config.json`` (beam search, as Marian's) and the weights, as
    ``model.safetensors`` or, with ``weights="bin"``, only ``pytorch_model.bin`` (as many opus-mt repositories).

    Loaded with `AutoTokenizer` (a `MarianTokenizer`, which needs `sentencepiece`) and
    `AutoModelForSeq2SeqLM.from_pretrained(folder)`; its "translations" are random pieces, fixed by `seed`.
    """
    import io
    import json

    import sentencepiece
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    corpus = [" ".join(TINY_TRANSLATOR_WORDS[index : index + 5]) for index in range(len(TINY_TRANSLATOR_WORDS))] * 4
    protos = []
    for size in (60, 48):  # source and target models differ, as in opus-mt (one joint vocab.json)
        proto = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus),
            model_writer=proto,
            vocab_size=size,
            model_type="unigram",
            character_coverage=1.0,
            unk_id=1,
            eos_id=0,
            bos_id=-1,
            pad_id=-1,
            hard_vocab_limit=False,
            minloglevel=2,
        )
        protos.append(proto.getvalue())
    vocab: dict[str, int] = {}
    for proto_bytes in protos:
        pieces = sentencepiece.SentencePieceProcessor(model_proto=proto_bytes)
        for index in range(pieces.get_piece_size()):
            vocab.setdefault(pieces.id_to_piece(index), len(vocab))
    vocab["<pad>"] = pad = len(vocab)  # Marian: </s> = 0, <unk> = 1, <pad> last
    source = folder / "_sources"
    source.mkdir(parents=True, exist_ok=True)
    for name, proto_bytes in zip(("source.spm", "target.spm"), protos):
        (source / name).write_bytes(proto_bytes)
    (source / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(str(source / "source.spm"), str(source / "target.spm"), str(source / "vocab.json"))
    torch.manual_seed(seed)
    model = MarianMTModel(
        MarianConfig(
            vocab_size=len(vocab),
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=32,
            pad_token_id=pad,
            eos_token_id=0,
            decoder_start_token_id=pad,
            forced_eos_token_id=0,
        )
    )
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]],
        bos_token_id=0,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        max_length=24,
        num_beams=4,
        pad_token_id=pad,
    )
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    for path in source.iterdir():
        path.unlink()
    source.rmdir()
    if weights == "bin":  # the layout of opus-mt repositories without safetensors
        state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
        torch.save(state, folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    return folder


def save_tiny_ip_adapter(folder: Path, unet, seed: int = 0, cross_attention_dim: int | None = None) -> Path:
    """A tiny random IP-Adapter for `unet`, laid out as ``h94/IP-Adapter``: ``models/ip-adapter_sd15.safetensors``
    (image projection to 4 tokens + `to_k_ip`/`to_v_ip` per cross-attention layer, numbered 1, 3, 5, … as in the
    original checkpoints) and ``models/image_encoder`` (a 2-layer CLIP vision model with projection).

    `cross_attention_dim` other than the UNet's makes an adapter for another base model (for mismatch tests).
    """
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    models = folder / "models"
    torch.manual_seed(seed)
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=24,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(models / "image_encoder")
    dim = cross_attention_dim or unet.config.cross_attention_dim
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * dim, 24) * 0.2,
        "image_proj.proj.bias": torch.zeros(4 * dim),
        "image_proj.norm.weight": torch.ones(dim),
        "image_proj.norm.bias": torch.zeros(dim),
    }
    cross_attention = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    modules = dict(unet.named_modules())
    for number, name in zip(range(1, 2 * len(cross_attention), 2), cross_attention):
        inner = modules[name[: -len(".processor")]].to_k.out_features
        tensors[f"ip_adapter.{number}.to_k_ip.weight"] = torch.randn(inner, dim) * 0.2
        tensors[f"ip_adapter.{number}.to_v_ip.weight"] = torch.randn(inner, dim) * 0.2
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(models / "ip-adapter_sd15.safetensors"))
    return folder


# --------------------------------------------------------------------------------------------------------
# SDXL: two CLIP text encoders, a UNet with text/time added conditioning, a ControlNet and a Union ControlNet
# --------------------------------------------------------------------------------------------------------

TINY_SDXL_TEXT_WIDTH = 32
"""Hidden width of the first tiny SDXL text encoder (CLIP ViT-L's place)."""
TINY_SDXL_TEXT_WIDTH_2 = 48
"""Hidden and projection width of the second (OpenCLIP bigG's place). The widths differ, as 768 and 1280 do, which
diffusers' single-file loader relies on; the UNet's cross-attention takes both, concatenated (80)."""


def _tiny_clip_config(**overrides):
    from transformers import CLIPTextConfig

    values = dict(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=TINY_SDXL_TEXT_WIDTH,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=5,
        max_position_embeddings=77,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=EOS_TOKEN_ID,
        hidden_act="gelu",
        projection_dim=TINY_SDXL_TEXT_WIDTH,
    )
    values.update(overrides)
    return CLIPTextConfig(**values)


def make_tiny_sdxl_unet(seed: int = 0):
    """The UNet of diffusers' SDXL tests: text_time added conditioning (pooled text + 6 size/crop numbers)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + TINY_SDXL_TEXT_WIDTH_2,
        cross_attention_dim=TINY_SDXL_TEXT_WIDTH + TINY_SDXL_TEXT_WIDTH_2,
        norm_num_groups=32,
    )


def make_tiny_union_controlnet(unet, seed: int = 0):
    """A ControlNet Union (xinsir layout: 8 control types, one transformer layer mixing the conditions)."""
    from diffusers import ControlNetUnionModel

    torch.manual_seed(seed)
    base = ControlNetUnionModel.from_unet(
        unet, conditioning_embedding_out_channels=(16, 32), load_weights_from_unet=False
    )
    width = unet.config.block_out_channels[0]
    config = {key: value for key, value in base.config.items() if not key.startswith("_")}
    config = {
        **config,
        "num_control_type": 8,
        "num_trans_channel": width,
        "num_trans_head": 2,
        "num_proj_channel": width,
    }
    torch.manual_seed(seed)
    return ControlNetUnionModel.from_config(config)


def make_tiny_sdxl_components(folder_for_tokenizer: Path, seed: int = 0) -> dict:
    """Tiny SDXL components as diffusers' SDXL tests build them, each seeded before construction."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    unet = make_tiny_sdxl_unet(seed)
    torch.manual_seed(seed + 1)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=32,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        sample_size=128,
        scaling_factor=0.13025,
        force_upcast=True,
    )
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(_tiny_clip_config())
    torch.manual_seed(seed + 4)
    text_encoder_2 = CLIPTextModelWithProjection(
        _tiny_clip_config(hidden_size=TINY_SDXL_TEXT_WIDTH_2, projection_dim=TINY_SDXL_TEXT_WIDTH_2)
    )
    tokenizer_folder = write_tiny_tokenizer_files(folder_for_tokenizer)
    tokenizer = CLIPTokenizer(
        str(tokenizer_folder / "vocab.json"), str(tokenizer_folder / "merges.txt"), model_max_length=77
    )
    tokenizer_2 = CLIPTokenizer(
        str(tokenizer_folder / "vocab.json"), str(tokenizer_folder / "merges.txt"), model_max_length=77, pad_token="!"
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    return {
        "unet": unet,
        "controlnet": controlnet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "scheduler": scheduler,
    }


def save_tiny_sdxl_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save the tiny SDXL components as a diffusers SDXL ControlNet img2img folder (the layout of a hub SDXL
    model plus `controlnet/`), and a Union ControlNet beside it in `controlnet_union/`."""
    from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

    components = make_tiny_sdxl_components(folder / "_tokenizer_source", seed)
    pipeline = StableDiffusionXLControlNetImg2ImgPipeline(**components, requires_aesthetics_score=False)
    pipeline.save_pretrained(folder)
    make_tiny_union_controlnet(components["unet"], seed + 5).save_pretrained(folder / "controlnet_union")
    return folder
