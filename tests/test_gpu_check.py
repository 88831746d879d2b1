"""`benchmarks/gpu_check.py --tiny`: the GPU readiness check's code path on the CPU with the tiny models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the SD 1.5 row runs by default in tests/test_gpu_check_all.py (`--all --tiny`)
def test_gpu_check_tiny_mode_runs_every_variant_it_can_and_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    output = tmp_path / "check.json"
    assert gpu_check.main(["--tiny", "--keyframes", "1", "--large-size", "64", "--json", str(output)]) == 0
    report = json.loads(output.read_text())
    variants = {result["variant"]: result for result in report["variants"]}
    assert list(variants) == [
        "plain",
        "sdpa",
        "sdpa (repeat)",
        "xformers",
        "plain 64² tiled",
        "sdpa 64² tiled",
        "sdpa 64² untiled",
        "cpu offload",
    ]
    assert variants["xformers"]["skipped"] in ("xformers is not importable", "needs CUDA")
    assert variants["cpu offload"]["skipped"] == "needs CUDA"
    # 4 steps at strength 0.75: the plain pipeline runs 3 UNet calls, a keyframe 3 + the pixel-aware step again
    assert variants["plain"]["unet_calls_per_keyframe"] == [3]
    assert variants["sdpa"]["unet_calls_per_keyframe"] == [4]
    # the same seed gives the same keyframe on the CPU; ratios are what they say
    assert variants["sdpa (repeat)"]["max_abs_difference"] == 0.0
    sdpa, plain = variants["sdpa"], variants["plain"]
    assert sdpa["time_vs_plain"] == sdpa["seconds_per_keyframe"] / plain["seconds_per_keyframe"]
    assert sdpa["peak_vram_gib"] is None and report["targets"]["peak_vram_gib"]["met"] is None
    # VAE tiling changes the decode (the tiny VAE's tiles are 32 px): compared with the untiled run at that size
    assert variants["sdpa 64² tiled"]["difference_to"] == "sdpa 64² untiled"
    assert variants["sdpa 64² tiled"]["max_abs_difference"] > 0.0
    assert all(result.get("non_finite_pixels", 0) == 0 for result in report["variants"])
    assert "| sdpa | 64 |" in capsys.readouterr().out
