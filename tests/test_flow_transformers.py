"""What Z-Image and Flux share (`rerender.diffusion.flow_transformer`, `load_transformer_pipeline`), tested once per
family on tiny random components built from configs. Family-specific tests stay in test_zimage.py / test_flux.py."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rerender.config import ConstraintConfig, ControlConfig, FreeUConfig, LoraConfig, ModelConfig
from rerender.errors import ConfigError
from rerender.flow import DISFlowEstimator

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Family:
    """One transformer family as these tests build and drive it."""

    name: str  # how messages name it
    pipeline: str  # module:class
    tiny: str  # the tiny builder module in tests/
    preset: str  # configs/<preset>
    guidance_scale: float  # guidance off
    image_tokens: int  # what the transformer sees of a 64×64 frame (Z-Image pads to a multiple of 32)

    def pipeline_class(self) -> type:
        module, name = self.pipeline.split(":")
        return getattr(importlib.import_module(module), name)

    def builders(self) -> Any:
        return importlib.import_module(self.tiny)


FAMILIES = {
    "zimage": Family("Z-Image", "rerender.diffusion.zimage:RerenderZImagePipeline", "tests.tiny_zimage",
                     "zimage_turbo.yaml", 1.0, 32),
    "flux": Family("Flux", "rerender.diffusion.flux:RerenderFluxPipeline", "tests.tiny_flux", "flux.yaml", 0.0, 16),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pipe(family, tmp_path_factory):
    spec = FAMILIES[family]
    make = getattr(spec.builders(), f"make_tiny_{family}_components")
    components = make(tmp_path_factory.mktemp(f"{family}-tokenizer"))
    components.pop("controlnet", None)
    pipeline = spec.pipeline_class()(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def tiny_dirs(family, tmp_path_factory) -> tuple[Path, Path]:
    return getattr(FAMILIES[family].builders(), f"save_tiny_{family}")(tmp_path_factory.mktemp(family))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    return [np.roll(base, shift, axis=1) for shift in (0, 2, 4)]  # a pan


# ------------------------------------------------------------------------------------------- the pipeline


def test_resume_gives_the_same_keyframes(family, pipe, frames):
    settings = dict(
        num_inference_steps=3,
        guidance_scale=FAMILIES[family].guidance_scale,
        strength=0.9,
        flow_estimator=DISFlowEstimator(),
    )
    full = list(pipe.render_keyframes(frames, "a cube", generator=torch.Generator().manual_seed(1), **settings))
    state = full[1].resume_state
    resumed = list(
        pipe.render_keyframes(frames, "a cube", generator=torch.Generator().manual_seed(1), resume=state, **settings)
    )
    assert [frame.index for frame in resumed] == [2]
    torch.testing.assert_close(resumed[0].image, full[2].image)


def test_stored_references_cost_what_reference_bytes_says(family, pipe, frames, monkeypatch):
    from rerender.diffusion.attention import CrossFrameAttentionStore
    from rerender.diffusion.transformer_attention import reference_bytes

    stores, sizes = [], []
    install = type(pipe).cross_frame_attention
    monkeypatch.setattr(
        type(pipe),
        "cross_frame_attention",
        lambda self, store, last: stores.append(store) or install(self, store, last),
    )

    def spy(pipeline, step, timestep, kwargs):
        sizes.append(sum(t.numel() * t.element_size() for t in stores[-1].anchor.values()))

    spec = FAMILIES[family]
    settings = dict(
        num_inference_steps=3,
        guidance_scale=spec.guidance_scale,
        strength=1.0,
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=spy,
    )
    with install(pipe, CrossFrameAttentionStore(), None) as names:
        blocks = len(names)  # every block the family's structural rule picks
    for kept in (None, 1):
        sizes.clear()
        constraints = ConstraintConfig(shape_fusion_period=None, pixel_fusion_period=None, cross_frame_blocks=kept)
        pipe(frames[:2], "a cube", constraints=constraints, **settings)
        # the anchor records one (1, image tokens, 32 channels) float32 input per block and step
        expected = reference_bytes(spec.image_tokens, pipe.model_width, kept or blocks, steps=3, element_size=4)
        assert max(sizes) == expected


def test_short_gpu_memory_names_the_cross_frame_blocks_that_fit(family, pipe, monkeypatch, caplog):
    """On CUDA, references larger than the free memory warn with the `blocks_within` count; none when they fit."""
    from types import SimpleNamespace

    from rerender.diffusion.transformer_attention import reference_bytes

    monkeypatch.setattr(type(pipe), "_execution_device", property(lambda self: torch.device("cuda")))
    pipe._latent_tokens = 16
    per_block = 3 * reference_bytes(16, pipe.model_width, 1, 2, element_size=4)  # three references, float32
    free = [per_block * 2 + 1]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free[0], 10**12))
    state = SimpleNamespace(
        schedule=SimpleNamespace(cross_attention=frozenset({0, 1})),
        do_classifier_free_guidance=False,
        prompt_embeds=SimpleNamespace(guided=False),
    )
    with caplog.at_level(logging.WARNING, logger="rerender.diffusion"):
        assert pipe.check_reference_memory(state, 4) == 2
    assert "set constraints.cross_frame_blocks to 2 or fewer" in caplog.text
    free[0] = per_block * 4
    assert pipe.check_reference_memory(state, 4) is None


def test_options_that_do_not_apply_are_refused_or_ignored(family, pipe, frames, caplog):
    name = FAMILIES[family].name
    guidance = FAMILIES[family].guidance_scale
    with pytest.raises(ConfigError, match=f"IP-Adapter.*{name}"):
        pipe(frames[:1], "a cube", num_inference_steps=2, guidance_scale=guidance, ip_adapter_image=frames[0])
    with pytest.raises(ConfigError, match="multiples of 16"):
        pipe([np.zeros((40, 64, 3), np.uint8)], "a cube", num_inference_steps=2, guidance_scale=guidance)
    with caplog.at_level(logging.INFO, logger="rerender.diffusion"):
        pipe(
            frames[:1],
            "a cube",
            num_inference_steps=2,
            guidance_scale=guidance,
            constraints=ConstraintConfig(freeu=FreeUConfig()),
        )
    assert f"FreeU is defined on UNet skip connections; {name} has none" in caplog.text


def test_text_alone_renders_keyframes_moved_by_whole_latent_pixels(family, pipe, monkeypatch):
    """Text2Video-Zero on the flow path: keyframe k starts from the anchor's latent moved by `keyframe_offsets`
    (whole latent pixels, as `generate` moves its guides), also for a motion that is not a whole latent pixel."""
    import rerender.diffusion.text2video as text2video

    shifts = []
    original = text2video.translate_latents
    monkeypatch.setattr(
        text2video, "translate_latents", lambda latents, shift: shifts.append(shift) or original(latents, shift)
    )
    run = lambda seed: text2video.render_text_keyframes(  # noqa: E731
        pipe,
        "a red cube",
        [0, 3, 5],
        (3.0, -2.0),  # 9 and 15 px right, 6 and 10 px up: 1.125, 1.875, 0.75, 1.25 latent pixels
        (64, 64),
        num_inference_steps=4,
        guidance_scale=FAMILIES[family].guidance_scale,
        noise_steps=(1, 2),
        generator=torch.Generator().manual_seed(seed),
    )
    first, again = run(0), run(0)
    assert shifts[:2] == [(1, -1), (2, -1)]  # ⌊offset / 8 + ½⌋ per axis
    assert text2video.keyframe_offsets([0, 3, 5], (3.0, -2.0), 8) == [(0, 0), (8, -8), (16, -8)]
    assert [image.shape for image in first] == [(1, 3, 64, 64)] * 3
    for image, same in zip(first, again, strict=True):
        torch.testing.assert_close(image, same)
    assert not torch.allclose(first[0], first[1])
    with pytest.raises(ConfigError, match=f"background_smoothing.*{FAMILIES[family].name}"):
        text2video.render_text_keyframes(
            pipe, "x", [0, 4], (8.0, 0.0), (64, 64), num_inference_steps=4, background_smoothing=object()
        )


# -------------------------------------------------------------------------------------------- loading


def test_a_folder_is_recognised_and_load_pipeline_builds_it_with_its_controlnet(family, tiny_dirs, frames):
    from rerender.diffusion.loading import controlnet_family, load_pipeline
    from rerender.weights import detect_family

    base, control = tiny_dirs
    assert detect_family(str(base)) == family and controlnet_family(str(control)) == family
    pipeline = load_pipeline(ModelConfig(base_model=str(base), device="cpu"), [ControlConfig(model=str(control))])
    assert isinstance(pipeline, FAMILIES[family].pipeline_class()) and pipeline.controlnet is not None
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(
        frames[:2],
        "a cube",
        num_inference_steps=2,
        guidance_scale=FAMILIES[family].guidance_scale,
        flow_estimator=DISFlowEstimator(),
    ).images
    assert images.shape == (2, 64, 64, 3) and np.isfinite(images).all()


def _lora(path: Path, key: str) -> str:
    from safetensors.torch import save_file

    save_file({key: torch.zeros(4, 32)}, str(path))
    return str(path)


def test_what_does_not_fit_is_refused_before_the_transformer_loads(
    family, tiny_dirs, tiny_pipeline_dir, tmp_path, monkeypatch
):
    """An SD ControlNet or LoRA, the other family's LoRA, a VAE, two ControlNets: refused naming both families,
    before `from_pretrained` (the minutes-long load of the real model)."""
    from rerender.diffusion.loading import load_pipeline

    spec = FAMILIES[family]
    monkeypatch.setattr(
        spec.pipeline_class(),
        "from_pretrained",
        classmethod(lambda cls, *a, **k: pytest.fail("the base model was loaded")),
    )
    base, control = tiny_dirs
    model = ModelConfig(base_model=str(base), device="cpu")
    sd_control = ControlConfig(model=str(tiny_pipeline_dir / "controlnet"))
    with pytest.raises(
        ConfigError, match=rf"control\[0\]\.model.*made for SD 1\.5, but the base model is {spec.name}"
    ):
        load_pipeline(model, [sd_control])
    sd_lora = _lora(tmp_path / "sd15.safetensors", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight")
    with pytest.raises(ConfigError, match=rf"loras\[0\].*Stable Diffusion UNet.*base model is {spec.name}"):
        load_pipeline(ModelConfig(base_model=str(base), device="cpu", loras=(LoraConfig(path=sd_lora),)), [])
    other, key = (
        ("Flux", "transformer.transformer_blocks.0.attn.to_q.lora_A.weight")
        if family == "zimage"
        else ("Z-Image", "transformer.layers.0.attention.to_q.lora_A.weight")
    )
    other_lora = _lora(tmp_path / "other.safetensors", key)
    with pytest.raises(ConfigError, match=rf"loras\[0\].*LoRA for {other}.*base model is {spec.name}"):
        load_pipeline(ModelConfig(base_model=str(base), device="cpu", loras=(LoraConfig(path=other_lora),)), [])
    with pytest.raises(ConfigError, match=f"model.vae.*does not apply to {spec.name}"):
        load_pipeline(ModelConfig(base_model=str(base), device="cpu", vae=str(tiny_pipeline_dir / "vae")), [])
    with pytest.raises(ConfigError, match=f"lists 2 ControlNets; {spec.name} takes one"):
        load_pipeline(model, [ControlConfig(model=str(control))] * 2)


def test_transformer_lora_family_is_read_from_the_keys(tmp_path):
    from rerender.diffusion.loading import transformer_lora_family

    keys = {
        "sd": "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
        "flux": "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",  # kohya Flux: lora_unet_ but no UNet
        "zimage": "diffusion_model.layers.0.attention.to_q.lora_A.weight",
    }
    for expected, key in keys.items():
        assert transformer_lora_family(_lora(tmp_path / f"{expected}.safetensors", key)) == expected
    assert transformer_lora_family(_lora(tmp_path / "x.safetensors", "something.else")) is None
    assert transformer_lora_family(tmp_path / "missing.safetensors") is None


# ------------------------------------------------------------------------------- every command, end to end


def _cli(*arguments: Any) -> list[str]:
    return [str(argument) for argument in arguments]


def _tiny_settings(family: str, control: Path) -> list[str]:
    settings = [
        f"control.model={control}",
        "model.cpu_offload=false",
        "num_inference_steps=2",
        "resolution=64",
        "device=cpu",
        "propagation_preset=fast",
        "workers=1",
        "flow_estimator=dis",
    ]
    return ["--config", str(REPO / "configs" / FAMILIES[family].preset)] + [
        part for setting in settings for part in ("--set", setting)
    ]


@pytest.mark.slow  # each family loads and renders several times: about two minutes on a loaded 2-core machine
def test_every_command_runs_with_a_tiny_folder_as_model(family, capsys, synthetic_clip, tiny_dirs, tmp_path):
    """translate, its three stages (first, keyframes, propagate), generate, animate, batch and env, with a tiny
    folder of the family as --model and the family's preset."""
    from rerender.cli import main
    from rerender.video import probe_video

    base, control = tiny_dirs
    common = ["--model", str(base), *_tiny_settings(family, control)]

    def run(*arguments: Any) -> str:
        code = main(_cli(*arguments))
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    output = tmp_path / "out.mp4"
    for stage in ("first", "keyframes", "propagate"):
        run("translate", synthetic_clip, "-p", "a cat", "-o", output, "-K", "10", "-q", "--stage", stage, *common)
    assert probe_video(output).frame_count == 20
    out = run("translate", synthetic_clip, "-p", "a cat", "-o", tmp_path / "all.mp4", "-K", "10", "-q", *common)
    assert "keyframes (diffusion): [0, 10" in out
    out = run(
        "generate", "-p", "a cat", "--frames", "6", "-K", "3", "--width", "64", "--height", "64", "--dx", "3",
        "-o", tmp_path / "gen.mp4", "-q", *common,
    )  # fmt: skip
    assert "keyframes (diffusion): [0, 3" in out and probe_video(tmp_path / "gen.mp4").frame_count == 6
    from PIL import Image

    still = tmp_path / "still.png"
    Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)).save(still)
    run("animate", still, "-p", "a cat", "--seconds", "0.4", "--fps", "10", "-o", tmp_path / "anim.mp4", "-q", *common)
    assert probe_video(tmp_path / "anim.mp4").frame_count == 4
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(Path(synthetic_clip).read_bytes())
    out = run(
        "batch", folder, "-p", "a cat", "-o", tmp_path / "batch", "-q",
        *_tiny_settings(family, control), "--set", f"model.base_model={base}", "--set", "keyframe_interval=10",
    )  # fmt: skip
    assert probe_video(tmp_path / "batch" / "clip.mp4").frame_count == 20, out
    import json

    report = json.loads(run("env", "--json", *common))
    assert json.dumps(report).count(str(base)) >= 1


def test_the_web_page_builds_the_family_from_its_model_settings(family, tiny_dirs, tmp_path):
    """The page's model settings (base model and ControlNet folders) give the family's pipeline."""
    from rerender.ui.runs import RunRequest, build_config, renderer_argument
    from rerender.ui.sessions import UiSessions

    base, control = tiny_dirs
    settings = {
        "model.base_model": str(base),
        "control.model": str(control),
        "control.type": "canny",
        "sampling.guidance_scale": FAMILIES[family].guidance_scale,
        "sampling.true_cfg_scale": 1.0,
        "constraints.cross_frame_blocks": 2,
    }
    config = build_config(RunRequest(stage="all", renderer="diffusion", settings=settings))
    chosen = renderer_argument("diffusion", config, UiSessions(root=tmp_path))
    assert isinstance(chosen["pipeline"], FAMILIES[family].pipeline_class())
    assert config.constraints.cross_frame_blocks == 2


def test_the_cli_refuses_an_sd_controlnet_or_lora_before_the_transformer_loads(
    family, capsys, synthetic_clip, tiny_dirs, tiny_pipeline_dir, tmp_path, monkeypatch
):
    import rerender.diffusion.loading
    from rerender.cli import main

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", lambda *args: pytest.fail("the model was loaded"))
    base, control = tiny_dirs
    sd_lora = _lora(tmp_path / "sd15.safetensors", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight")
    for setting in (f"control.model={tiny_pipeline_dir / 'controlnet'}", f"model.loras=[{{path: '{sd_lora}'}}]"):
        code = main(
            _cli(
                "translate", synthetic_clip, "-p", "a cat", "-o", tmp_path / "x.mp4", "-q",
                *_tiny_settings(family, control), "--model", base, "--set", setting,
            )
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and ("SD 1.5" in err or "Stable Diffusion" in err) and FAMILIES[family].name in err, err
    assert not (tmp_path / "x.mp4.work" / "frames").exists()
