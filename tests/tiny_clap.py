"""A tiny random CLAP laid out as ``laion/clap-htsat-unfused``: `ClapModel` weights (safetensors), `ClapProcessor`
(a `ClapFeatureExtractor` with the unfused model's ``rand_trunc``/``repeatpad``, 64 mel bins at 48 kHz, and a
byte-level BPE `RobertaTokenizer`, vocab.json + merges.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.tiny_models import _bytes_to_unicode


def save_tiny_clap(folder: Path, seed: int = 0) -> Path:
    """Save the tiny CLAP into `folder`; loaded with `ClapModel`/`ClapProcessor.from_pretrained(folder)`."""
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in _bytes_to_unicode():
        vocab[symbol] = len(vocab)
    vocab["<mask>"] = len(vocab)
    sources = folder / "_tokenizer"
    sources.mkdir(exist_ok=True)
    (sources / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (sources / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = RobertaTokenizer(str(sources / "vocab.json"), str(sources / "merges.txt"))
    processor = ClapProcessor(
        feature_extractor=ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad"), tokenizer=tokenizer
    )
    config = ClapConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "projection_dim": 8,
            "max_position_embeddings": 80,
        },
        audio_config={
            "hidden_size": 32,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "patch_embeds_hidden_size": 16,
            "projection_dim": 8,
            "window_size": 8,
            "num_hidden_layers": 2,
        },
        projection_dim=8,
    )
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    for path in sources.iterdir():
        path.unlink()
    sources.rmdir()
    return folder
