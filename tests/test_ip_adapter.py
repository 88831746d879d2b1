"""A reference image as the prompt: the tiny IP-Adapter through diffusers' load_ip_adapter, composed with our
cross-frame attention processors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rerender.diffusion.attention import CrossFrameAttentionStore, CrossFrameAttnProcessor, cross_frame_attention
from rerender.diffusion.ip_adapter import check_style_inputs, install_ip_adapter
from rerender.errors import CheckpointError, VideoReadError
from rerender.video import write_image

WEIGHT = "models/ip-adapter_sd15.safetensors"


@pytest.fixture
def pipeline(tiny_pipeline_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    loaded = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    loaded.set_progress_bar_config(disable=True)
    return loaded


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_pipeline_dir) -> Path:
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ip-adapter"), unet)


def style_images():
    rows = np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None]
    warm = np.concatenate(
        [np.full((64, 64, 1), 250, np.uint8), np.broadcast_to(rows, (64, 64, 1)), np.zeros((64, 64, 1), np.uint8)], 2
    )
    cold = warm[::-1, ::-1, ::-1].copy()
    return warm, cold


def render(pipeline, style=None):
    frames = np.stack([np.full((32, 32, 3), 90 + 40 * index, np.uint8) for index in range(2)])
    frames[:, 8:24, 8 + 0 : 16] = 220
    result = (
        pipeline(
            frames,
            "a cat",
            "",
            num_inference_steps=2,
            strength=1.0,
            generator=torch.Generator().manual_seed(0),
            ip_adapter_image=style,
        )
        if style is not None
        else pipeline(
            frames, "a cat", "", num_inference_steps=2, strength=1.0, generator=torch.Generator().manual_seed(0)
        )
    )
    return np.asarray(result.images, dtype=np.float64)


def test_processors_compose(pipeline, adapter_dir):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    install_ip_adapter(pipeline, str(adapter_dir), WEIGHT, 0.6)
    before = dict(pipeline.unet.attn_processors)
    cross = [name for name in before if name.endswith("attn2.processor")]
    assert cross and all(isinstance(before[name], IPAdapterAttnProcessor2_0) for name in cross)
    assert all(before[name].scale == [0.6] for name in cross)
    with cross_frame_attention(pipeline.unet, CrossFrameAttentionStore()) as layers:
        inside = pipeline.unet.attn_processors
        assert layers and all(name.startswith("up_blocks") and name.endswith("attn1.processor") for name in layers)
        assert all(isinstance(inside[name], CrossFrameAttnProcessor) for name in layers)
        assert all(inside[name] is before[name] for name in inside if name not in layers)  # IP-Adapter's kept
    assert all(pipeline.unet.attn_processors[name] is before[name] for name in before)


def test_output_follows_the_image_and_the_scale(pipeline, adapter_dir):
    plain = render(pipeline)
    warm, cold = style_images()
    install_ip_adapter(pipeline, str(adapter_dir), WEIGHT, 1.0)
    with_warm, with_cold = render(pipeline, warm), render(pipeline, cold)
    pipeline.set_ip_adapter_scale(0.0)
    at_zero = render(pipeline, warm)
    scale = max(1.0, plain.max())  # images in [0, 1] or [0, 255]
    assert np.abs(with_warm - with_cold).max() > 1e-3 * scale  # the image steers the keyframes
    assert np.abs(with_warm - plain).max() > 1e-3 * scale
    np.testing.assert_allclose(at_zero, plain, atol=1e-4 * scale, rtol=0)  # scale 0 = the text-only result


def test_adapter_for_another_base_model_is_refused_before_loading(pipeline, tmp_path, monkeypatch):
    from tests.tiny_models import save_tiny_ip_adapter

    other = save_tiny_ip_adapter(tmp_path / "other", pipeline.unet, cross_attention_dim=48)
    monkeypatch.setattr(type(pipeline), "load_ip_adapter", lambda *args, **kwargs: pytest.fail("loaded"))
    with pytest.raises(
        CheckpointError,
        match=r"does not match the base model: its keys are 64×48 where the UNet.s cross-attention has 64×32",
    ):
        install_ip_adapter(pipeline, str(other), WEIGHT, 0.6)


def test_style_image_that_is_not_an_image(tmp_path, adapter_dir):
    fake = tmp_path / "style.png"
    fake.write_text("not an image")
    with pytest.raises(VideoReadError, match="style_image"):
        check_style_inputs(str(fake), str(adapter_dir), WEIGHT)
    with pytest.raises(FileNotFoundError, match="IP-Adapter"):
        write_image(style_images()[0], tmp_path / "ok.png")
        check_style_inputs(str(tmp_path / "ok.png"), "h94/IP-Adapter", WEIGHT)  # offline, not cached


def test_a_missing_hub_adapter_names_a_fetch_command_that_exists(tmp_path, monkeypatch):
    """huggingface_hub ≥ 1.0 ships the `hf` command only; `huggingface-cli` is gone."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_image(style_images()[0], tmp_path / "ok.png")
    with pytest.raises(FileNotFoundError) as caught:
        check_style_inputs(str(tmp_path / "ok.png"), "h94/IP-Adapter", WEIGHT)
    assert f"hf download h94/IP-Adapter --include {WEIGHT!r}" in str(caught.value)
    assert "huggingface-cli" not in str(caught.value)


def test_translate_with_a_style_image(synthetic_clip, tmp_path, pipeline, adapter_dir):
    from rerender.workflow.translation import translate

    write_image(style_images()[0], tmp_path / "style.png")
    processors = dict(pipeline.unet.attn_processors)
    settings = dict(
        output=None,
        stage="first",
        pipeline=pipeline,
        resolution=64,
        size_multiple=16,
        num_inference_steps=2,
        added_prompt="",
        negative_prompt="",
        device="cpu",
        dtype="float32",
        flow_estimator="dis",
        progress=False,
    )
    styled = translate(
        synthetic_clip,
        "a cat",
        workspace=tmp_path / "a",
        style_image=str(tmp_path / "style.png"),
        ip_adapter=str(adapter_dir),
        style_image_scale=1.0,
        **settings,
    )
    plain = translate(synthetic_clip, "a cat", workspace=tmp_path / "b", **settings)
    from rerender.video import read_image

    difference = np.abs(
        read_image(styled.previews["first"]).astype(int) - read_image(plain.previews["first"]).astype(int)
    )
    assert difference.max() > 0
    assert pipeline.unet.encoder_hid_proj is None and dict(pipeline.unet.attn_processors).keys() == processors.keys()
    with pytest.raises(VideoReadError, match="style_image"):
        (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
        translate(
            synthetic_clip,
            "a cat",
            workspace=tmp_path / "c",
            style_image=str(tmp_path / "bad.png"),
            ip_adapter=str(adapter_dir),
            **settings,
        )
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_style_image_example(synthetic_clip, tmp_path, tiny_pipeline_dir, adapter_dir):
    import os
    import subprocess
    import sys

    from rerender.video import probe_video

    write_image(style_images()[0], tmp_path / "style.png")
    example = Path(__file__).resolve().parents[1] / "examples" / "style_image.py"
    settings = {
        "base_model": tiny_pipeline_dir,
        "control.0.model": tiny_pipeline_dir / "controlnet",
        "resolution": 64,
        "size_multiple": 16,
        "num_inference_steps": 2,
        "device": "cpu",
        "dtype": "float32",
        "vae": "null",
        "flow_estimator": "dis",
        "propagation_preset": "fast",
        "end_frame": 6,
        "workers": 1,
    }
    result = subprocess.run(
        [
            sys.executable,
            str(example),
            str(synthetic_clip),
            str(tmp_path / "style.png"),
            "a cat",
            str(tmp_path / "o.mp4"),
            "--adapter",
            str(adapter_dir),
            "--scale",
            "0.8",
            "-K",
            "5",
            *[item for key, value in settings.items() for item in ("--set", f"{key}={value}")],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 6


def test_cli_style_image_that_is_not_an_image(synthetic_clip, tmp_path, capsys):
    from rerender.cli import main

    (tmp_path / "notes.png").write_text("hello")
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "a cat",
            "-o",
            str(tmp_path / "o.mp4"),
            "--renderer",
            "classic",
            "--style-image",
            str(tmp_path / "notes.png"),
            "--style-image-scale",
            "0.5",
        ]
    )
    assert code == 2 and "style_image" in capsys.readouterr().err and not (tmp_path / "o.mp4.work").exists()


def test_the_classic_renderer_ignores_a_style_image_and_needs_no_adapter(
    synthetic_clip, tmp_path, caplog, monkeypatch
):
    import rerender

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no adapter here, none downloadable: classic must not ask for one
    style = write_image(np.full((32, 32, 3), 200, np.uint8), tmp_path / "style.png")
    options = dict(
        renderer="classic", progress=False, resolution=64, end_frame=4, model__ip_adapter=str(tmp_path / "none")
    )
    options = {key.replace("__", "."): value for key, value in options.items()}
    plain = rerender.translate(synthetic_clip, "a cat", output=tmp_path / "plain.mp4", **options)
    with caplog.at_level("WARNING", logger="rerender.workflow.translation"):
        styled = rerender.translate(
            synthetic_clip, "a cat", output=tmp_path / "styled.mp4", style_image=str(style), **options
        )
    assert "does not use `prompt.style_image`" in caplog.text
    assert styled.output.read_bytes() == plain.output.read_bytes()


def test_style_image_is_keyed_by_its_bytes_not_its_path(synthetic_clip, tmp_path, pipeline, adapter_dir):
    from rerender.video import read_image
    from rerender.workflow.translation import translate

    warm, cold = style_images()
    style, copy = tmp_path / "style.png", tmp_path / "elsewhere" / "same.png"
    write_image(warm, style)
    settings = dict(
        output=None,
        stage="keyframes",
        pipeline=pipeline,
        workspace=tmp_path / "ws",
        ip_adapter=str(adapter_dir),
        style_image_scale=1.0,
        resolution=64,
        size_multiple=16,
        num_inference_steps=2,
        end_frame=3,
        keyframe_interval=2,
        added_prompt="",
        negative_prompt="",
        device="cpu",
        dtype="float32",
        flow_estimator="dis",
        progress=False,
    )
    first = translate(synthetic_clip, "a cat", style_image=str(style), **settings)
    anchor = read_image(first.workspace / "keyframes" / "0000.png")
    assert "keyframes" not in first.reused

    # the same bytes at another path: nothing is redone
    copy.parent.mkdir()
    copy.write_bytes(style.read_bytes())
    moved = translate(synthetic_clip, "a cat", style_image=str(copy), **settings)
    assert "keyframes" in moved.reused and moved.redone == []

    # new bytes at the same path: the keyframes are redone, and follow the new image
    write_image(cold, style)
    changed = translate(synthetic_clip, "a cat", style_image=str(style), **settings)
    assert "keyframes" not in changed.reused
    assert any(line.startswith("redoing keyframes") and "prompt" in line for line in changed.redone)
    assert np.abs(read_image(changed.workspace / "keyframes" / "0000.png").astype(int) - anchor.astype(int)).max() > 0


def test_a_callers_own_adapter_gets_its_scale_back(pipeline, adapter_dir, tmp_path):
    """`style_adapter` sets the scale of an IP-Adapter the caller loaded for the run only, then restores it."""
    from dataclasses import replace

    from rerender.config import RerenderConfig
    from rerender.diffusion.ip_adapter import style_adapter

    install_ip_adapter(pipeline, str(adapter_dir), WEIGHT, 0.6)
    image = tmp_path / "style.png"
    write_image(style_images()[0], image)
    config = RerenderConfig()
    config = replace(config, prompt=replace(config.prompt, style_image=str(image), style_image_scale=0.25))

    def scales():
        return {name: p.scale for name, p in pipeline.unet.attn_processors.items() if hasattr(p, "to_k_ip")}

    assert scales() and set(map(tuple, scales().values())) == {(0.6,)}
    with style_adapter(pipeline, config) as reference:
        assert reference is not None and set(map(tuple, scales().values())) == {(0.25,)}
    assert set(map(tuple, scales().values())) == {(0.6,)}
    assert pipeline.unet.encoder_hid_proj is not None  # the caller's adapter stays loaded
