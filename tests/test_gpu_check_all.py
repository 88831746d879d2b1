"""`benchmarks/gpu_check.py --all`: every row of the GPU check in priority order within a time budget, on the CPU
with the tiny models (`--tiny`): each row's code path runs, skips say why, the JSON is rewritten after each row."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_all", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # every row of gpu_check on tiny models (~20 s)
def test_tiny_all_runs_every_row_in_priority_order_and_writes_json(gpu_check, tmp_path, capsys):
    output = tmp_path / "all.json"
    assert gpu_check.main(["--all", "--tiny", "--no-suite", "--json", str(output)]) == 0
    report = json.loads(output.read_text())
    assert (
        list(report["rows"])
        == report["order"]
        == ["sd15", "sdxl", "zimage", "propagation", "suite", "translate", "flux"]
    )
    assert {name: entry["status"] for name, entry in report["rows"].items()} == dict.fromkeys(report["order"], "done")
    assert report["environment"]["packages"]["torch"] and report["environment"]["cpu_count"] >= 1
    rows = {name: entry["result"] for name, entry in report["rows"].items()}
    # SD 1.5: 4 steps at strength 0.75: plain 3 UNet calls a keyframe, ours 3 + the pixel-aware step again
    variants = {variant["variant"]: variant for variant in rows["sd15"]["variants"]}
    assert variants["plain"]["unet_calls_per_keyframe"] == [3] and variants["sdpa"]["unet_calls_per_keyframe"] == [4]
    assert (
        variants["sdpa (repeat)"]["max_abs_difference"] == 0.0 and variants["cpu offload"]["skipped"] == "needs CUDA"
    )
    # SDXL: the same accounting on the SDXL base, references on the device and on the host (the same pixels),
    # offload variants only on CUDA
    sdxl = rows["sdxl"]
    assert set(sdxl["variants"]) == {"plain", "rerender, device storage", "rerender, host storage"}
    assert set(sdxl["skipped"]) == {"plain, cpu offload", "rerender, cpu offload, auto storage"}
    assert sdxl["variants"]["plain"]["unet_calls_per_keyframe"] == [3]
    for storage in ("device", "host"):
        ours = sdxl["variants"][f"rerender, {storage} storage"]
        assert ours["unet_calls_per_keyframe"] == [4] and ours["reference_storage"] == storage
        assert f"kept in {storage} memory (reference_storage: {storage})" in ours["references"]
        assert (
            ours["time_vs_plain"]
            == ours["wall_seconds_per_keyframe"] / sdxl["variants"]["plain"]["wall_seconds_per_keyframe"]
        )
    assert sdxl["variants"]["rerender, host storage"]["reference_fetches"]["on_demand"] == 0
    assert sdxl["host_vs_device_max_difference"] == 0.0 and sdxl["targets"]["host_equals_device"]["met"]
    # transformers: strength 1, 4 steps: plain 4 calls, ours the 4 + the pixel-aware pass; ratios as defined
    for family, labels in (
        ("zimage", {"plain", "rerender", "rerender, last 10 blocks"}),
        ("flux", {"plain", "rerender"}),
    ):
        result = rows[family]
        assert set(result["variants"]) == labels and result["family"] == family and result["steps"] == 4
        ours, plain = result["variants"]["rerender"], result["variants"]["plain"]
        assert ours["calls_per_keyframe"] == [5] and ours["call_ratio"] == 5 / 4 and ours["non_finite_pixels"] == 0
        assert ours["time_vs_plain"] == ours["seconds_per_keyframe"] / plain["seconds_per_keyframe"]
        assert result["targets"]["time_ratio"]["target"] == pytest.approx(5 / 4 + 0.1)
    # propagation: torch against numba on the same interval; the suite row fell back to the engines' parity
    (row,) = rows["propagation"]["rows"]
    assert row["preset"] == "balanced" and abs(row["torch_psnr"] - row["numba_psnr"]) < 0.1
    suite = rows["suite"]
    assert suite["suite"] is None and suite["reason"] == "--no-suite"
    assert {case["clip"] for case in suite["parity_cases"]} == {"synthetic texture", "bundled demo.mp4"}
    assert suite["parity"] is all(case["within_tolerance"] for case in suite["parity_cases"])
    # translate end to end: 12 frames, K = 10: keyframes 0 and 11 (10 is closer than K/2 to the last frame)
    translate = rows["translate"]
    assert translate["frames"] == 12 and translate["keyframes"] == [0, 11]
    assert translate["seconds_per_frame"] == pytest.approx(translate["seconds"] / 12)
    assert translate["targets"]["peak_vram_gib"]["met"] is None  # no CUDA: no memory figure, no verdict
    out = capsys.readouterr().out
    assert out.startswith("environment: ") and "summary:" in out and "| plain |" in out


def test_rows_that_would_not_fit_or_lack_a_package_are_skipped_with_the_reason(gpu_check, tmp_path, monkeypatch):
    real = gpu_check.environment_report

    def without_av():
        report = real()
        report["packages"]["av"] = None
        return report

    monkeypatch.setattr(gpu_check, "environment_report", without_av)
    ran = []
    monkeypatch.setattr(gpu_check, "run_row", lambda name, arguments: ran.append(name) or {"row": name})
    output = tmp_path / "skips.json"
    assert gpu_check.main(["--all", "--tiny", "--rows", "translate,propagation", "--json", str(output)]) == 0
    rows = json.loads(output.read_text())["rows"]
    assert rows["translate"] == {
        "status": "skipped",
        "reason": "missing packages: av (carry their wheels)",
        "estimate_s": gpu_check.ROWS["translate"][2],
    }
    assert rows["propagation"]["status"] == "done" and ran == ["propagation"]
    # a spent budget skips what is left; nothing runs
    ran.clear()
    assert gpu_check.main(["--all", "--tiny", "--budget-s", "0", "--rows", "sd15", "--json", str(output)]) == 0
    assert json.loads(output.read_text())["rows"]["sd15"]["reason"].startswith("would not fit") and ran == []
    assert gpu_check.main(["--all", "--tiny", "--rows", "sd15,nonsense"]) == 2
    assert gpu_check.main(["--all", "--tiny", "--suite", str(tmp_path / "no-suite.py")]) == 2


def test_the_json_is_rewritten_after_every_row_and_a_failed_row_does_not_stop_the_rest(
    gpu_check, tmp_path, monkeypatch
):
    written = []
    real_write = gpu_check._write_json
    monkeypatch.setattr(
        gpu_check,
        "_write_json",
        lambda path, report: written.append(json.loads(json.dumps(report))) or real_write(path, report),
    )

    def rows(name, arguments):
        if name == "sdxl":
            raise RuntimeError("out of memory")
        return {"row": name}

    monkeypatch.setattr(gpu_check, "run_row", rows)
    output = tmp_path / "each.json"
    assert gpu_check.main(["--all", "--tiny", "--rows", "sd15,sdxl,zimage", "--json", str(output)]) == 0
    assert [list(report["rows"]) for report in written] == [["sd15"], ["sd15", "sdxl"], ["sd15", "sdxl", "zimage"]]
    final = json.loads(output.read_text())["rows"]
    assert final["sdxl"]["status"] == "failed" and final["sdxl"]["reason"] == "RuntimeError: out of memory"
    assert final["zimage"] == {**final["zimage"], "status": "done", "result": {"row": "zimage"}}


def test_a_row_in_its_own_process_is_stopped_at_the_budget(gpu_check):
    arguments = argparse.Namespace(tiny=True, suite_full=False, keyframes=1, suite=None, no_suite=True)
    entry = gpu_check._row_in_subprocess("sd15", arguments, timeout=0.5)
    assert entry == {"status": "timed out", "reason": "stopped at the budget after 0 s"}


@pytest.mark.slow
def test_a_row_in_its_own_process_gives_its_result(gpu_check):
    arguments = argparse.Namespace(tiny=True, suite_full=False, keyframes=1, suite=None, no_suite=True)
    entry = gpu_check._row_in_subprocess("propagation", arguments, timeout=300)
    assert entry["status"] == "done" and entry["result"]["rows"][0]["preset"] == "balanced"


@pytest.mark.slow
def test_the_shared_suite_row_runs_both_engines_when_the_suite_is_reachable(gpu_check, tmp_path):
    suite = REPO.parent / "shared" / "bench" / "propagation_suite.py"
    suite = suite if suite.is_file() else Path("/work/shared/bench/propagation_suite.py")
    if not suite.is_file():
        pytest.skip("the shared propagation suite is not on this machine")
    output = tmp_path / "suite.json"
    assert gpu_check.main(["--row", "suite", "--tiny", "--suite", str(suite), "--json", str(output)]) == 0
    result = json.loads(output.read_text())
    (case,) = result["cases"]
    assert (case["clip"], case["style"]) == ("dog", "cartoon") and result["device"] == "cpu"
    assert case["within_tolerance"] == (
        abs(case["psnr_torch"] - case["psnr_numba"]) <= 0.1 and abs(case["ssim_torch"] - case["ssim_numba"]) <= 0.002
    )
