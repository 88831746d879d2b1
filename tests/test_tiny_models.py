"""The offline test kit: tiny SD1.5 components load through `from_pretrained(local_dir)` and run."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_tiny_pipeline_folder_loads_like_real_weights_and_is_deterministic(tiny_pipeline_dir):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    assert (tiny_pipeline_dir / "model_index.json").is_file()
    pipeline = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(tiny_pipeline_dir, local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    from PIL import Image

    kwargs = dict(
        prompt="a cat",
        image=Image.fromarray(image),
        control_image=Image.fromarray(image),
        num_inference_steps=4,
        strength=0.75,
        output_type="np",
    )
    first = pipeline(**kwargs, generator=torch.Generator().manual_seed(1)).images
    second = pipeline(**kwargs, generator=torch.Generator().manual_seed(1)).images
    assert first.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(first, second)


def test_tiny_tokenizer_is_byte_level(tiny_pipeline_dir):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_pipeline_dir / "tokenizer")
    ids = tokenizer("a cat").input_ids
    assert ids[0] == 512 and ids[-1] == 513 and len(ids) == 2 + len("acat")


def test_hub_ids_fail_fast_offline():
    import time

    from diffusers import UNet2DConditionModel

    start = time.perf_counter()
    with pytest.raises(OSError):
        UNet2DConditionModel.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5", subfolder="unet")
    assert time.perf_counter() - start < 10
