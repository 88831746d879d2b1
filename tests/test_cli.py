"""The `rerender` CLI: subcommands, exit codes 0/1/2, one-line errors, no tracebacks for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rerender.cli import main
from rerender.video import probe_video

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_everywhere(capsys):
    for args in (
        [],
        ["config", "show"],
        ["config", "validate"],
        ["info"],
        ["env"],
        ["preprocess"],
        ["animate"],
        ["generate"],
    ):
        code, out, _ = run_cli(capsys, *args, "--help")
        assert code == 0 and "usage:" in out


def test_verbose_before_or_after_the_command(capsys, synthetic_clip):
    for args in (["-v", "info", synthetic_clip], ["info", synthetic_clip, "--verbose"]):
        code, out, _ = run_cli(capsys, *args)
        assert code == 0 and "96×64" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("rerender ")


def test_config_show_defaults_and_overrides(capsys):
    code, out, _ = run_cli(
        capsys, "config", "show", "--json", "--set", "denoising_strength=0.6", "--set", "video.resolution=256"
    )
    assert code == 0
    data = json.loads(out)
    assert data["sampling"]["denoising_strength"] == 0.6 and data["video"]["resolution"] == 256
    code, out, _ = run_cli(capsys, "config", "show", REPO / "configs" / "tiny.yaml")
    assert code == 0 and "resolution: 64" in out


def test_config_validate(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "config", "validate", REPO / "configs" / "default.yaml")
    assert code == 0 and "valid" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("keyframes:\n  keyframe_interval: 0\n")
    code, _, err = run_cli(capsys, "config", "validate", bad)
    assert code == 2 and "keyframe_interval` must be ≥ 1, got 0" in err and "Traceback" not in err
    typo = tmp_path / "typo.yaml"
    typo.write_text("video:\n  resolutoin: 256\n")
    code, _, err = run_cli(capsys, "config", "validate", typo)
    assert code == 2 and "did you mean 'resolution'" in err
    code, _, err = run_cli(capsys, "config", "validate", tmp_path / "missing.yaml")
    assert code == 2 and "not found" in err


def test_info(capsys, synthetic_clip):
    code, out, _ = run_cli(capsys, "info", synthetic_clip, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["frame_count"] == 20 and record["fps"] == "25" and record["has_audio"] is True
    assert (record["width"], record["height"]) == (96, 64)
    code, out, _ = run_cli(capsys, "info", synthetic_clip)
    assert code == 0 and "96×64" in out and "aac" in out


def test_info_describes_a_still_image(capsys, tmp_path):
    """`rerender info photo.png` describes the image (size, mode, alpha) and what a run does with it (`animate`
    makes a clip of it); it was refused ("a single image; pass the folder")."""
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGBA", (640, 360), (200, 100, 50, 128)).save(photo)
    code, out, err = run_cli(capsys, "info", photo, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["kind"] == "image" and (record["width"], record["height"]) == (640, 360)
    assert record["mode"] == "RGBA" and record["has_alpha"] is True and record["format"] == "PNG"
    assert record["processing_size"] == [512, 288]  # long side 512, multiple of 8 (the defaults)
    assert record["frame_count"] == 1 and "rerender animate" in record["run"]
    code, out, err = run_cli(capsys, "info", photo)
    assert code == 0 and "640×360" in out and "RGBA" in out and "rerender animate" in out, err
    assert "processing  512×288" in out


def test_env(capsys):
    code, out, _ = run_cli(capsys, "env", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["packages"]["torch"] and "cuda_available" in report["devices"]
    assert "huggingface_hub_cache" in report["weights"]


def test_preprocess_to_video_keeps_fps_and_audio(capsys, synthetic_clip, tmp_path):
    output = tmp_path / "pre processed.mp4"
    code, _, err = run_cli(
        capsys,
        "preprocess",
        synthetic_clip,
        "-o",
        output,
        "-q",
        "--set",
        "resolution=64",
        "--set",
        "size_multiple=16",
        "--set",
        "start_frame=4",
        "--set",
        "frame_stride=2",
    )
    assert code == 0, err
    info = probe_video(output)
    assert info.frame_count == 8 and info.fps == 12.5 and (info.width, info.height) == (64, 48) and info.has_audio


def test_preprocess_to_png_folder(capsys, synthetic_clip, tmp_path):
    code, _, _ = run_cli(capsys, "preprocess", synthetic_clip, "-o", tmp_path / "frames", "-q", "--set", "end_frame=3")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.png")) == ["0000.png", "0001.png", "0002.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "missing.mp4"], "video not found"),
        (["preprocess", "{clip}", "-o", "{tmp}/no/such/dir/out.mp4", "-q"], "output folder does not exist"),
        (["preprocess", "{clip}", "-o", "{clip}", "-q"], "is the input"),
        (
            ["preprocess", "{clip}", "-o", "{tmp}/o.mp4", "--set", "start_frame=99", "-q"],
            "`video.start_frame` must be < 20",
        ),
        (["preprocess", "{clip}", "-o", "{tmp}/o.mp4", "--set", "resolution=32", "-q"], "must be in [64, 4096]"),
        (["info", "{clip}", "--set", "crop.left=500"], "crop"),
        (["info", "{clip}", "--set", "nonsense"], "key=value"),
        (["bogus"], "invalid choice"),
        (["config"], "choose an action"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, synthetic_clip, tmp_path, args, message):
    args = [a.format(clip=synthetic_clip, tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert probe_video(synthetic_clip).frame_count == 20  # the input is untouched


def test_runtime_failure_exits_1(capsys, monkeypatch, synthetic_clip, tmp_path):
    import rerender.video

    def broken(*args, **kwargs):
        raise RuntimeError("disk exploded")

    monkeypatch.setattr(rerender.video, "write_video", broken)
    code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", tmp_path / "o.mp4", "-q")
    assert code == 1 and "disk exploded" in err and "Traceback" not in err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "rerender.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "rerender" in result.stdout


def test_python_dash_m_rerender_and_the_script_entry_point():
    import tomllib

    result = subprocess.run(
        [sys.executable, "-m", "rerender", "config", "show", "--json"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0 and json.loads(result.stdout)["model"]["renderer"] == "auto", result.stderr
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["rerender"]
    module, _, name = target.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is main


FAST_SETS = [
    "--set",
    "resolution=64",
    "--set",
    "size_multiple=16",
    "--set",
    "propagation_preset=fast",
    "--set",
    "workers=1",
    "--set",
    "flow_estimator=dis",
]


def test_translate_stages_and_resume(capsys, synthetic_clip, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output, workspace = tmp_path / "out.mp4", tmp_path / "ws"
    common = [synthetic_clip, "-p", "a cartoon", "-K", "8", "--workspace", workspace, "-q", *FAST_SETS]
    code, out, err = run_cli(capsys, "translate", *common, "-o", output, "--stage", "first")
    assert code == 0, err
    assert "classic stylizer" in err or "classic" in out  # no weights here: the fallback says so
    assert not output.exists() and (workspace / "keyframes" / "0000.png").is_file()
    code, out, _ = run_cli(capsys, "keyframes", *common, "-o", output)
    assert code == 0 and "[0, 8, 19]" in out and not output.exists()
    code, out, _ = run_cli(capsys, "translate", *common, "-o", output)
    assert code == 0 and "reused the keyframes stage" in out
    assert probe_video(output).frame_count == 20
    code, out, err = run_cli(capsys, "translate", *common, "-o", output, "--set", "denoising_strength=0.5")
    assert code == 0 and "redoing keyframes, propagation: config changed (sampling)" in caplog.text  # no --force
    assert "reused the frames stage" in out and "reused the keyframes stage" not in out
    assert f"workspace: {workspace} (" in out and " MB)" in out
    code, _, err = run_cli(capsys, "translate", *common, "-o", tmp_path / "again.mp4", "--workspace", tmp_path)
    assert code == 2 and "rerender did not make" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "translate", synthetic_clip, "-p", "x", "-K", "0", "-o", tmp_path / "k.mp4", "-q")
    assert code == 2 and "keyframe_interval" in err


def test_translate_with_a_missing_model_path_fails_clearly(capsys, synthetic_clip, tmp_path):
    code, _, err = run_cli(
        capsys,
        "translate",
        synthetic_clip,
        "-p",
        "x",
        "-o",
        tmp_path / "o.mp4",
        "-q",
        "--model",
        tmp_path / "no_such_model.safetensors",
        *FAST_SETS,
    )
    assert code == 2 and "no_such_model.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4.work").exists()  # refused before any work


def test_propagate_and_eval_commands(capsys, synthetic_clip, tmp_path):
    from rerender.stylizer import ClassicStylizer
    from rerender.video import read_frames, write_image

    keys = tmp_path / "keys"
    keys.mkdir()
    frames = list(read_frames(synthetic_clip))
    for index in (0, 19):
        write_image(ClassicStylizer()(frames[index]), keys / f"{index:04d}.png")
    output = tmp_path / "prop.mp4"
    code, out, err = run_cli(
        capsys,
        "propagate",
        synthetic_clip,
        "--keyframes",
        keys,
        "-o",
        output,
        "-q",
        "--preset",
        "fast",
        "--workers",
        "1",
        "--blend",
        "histogram",
    )
    assert code == 0, err
    assert "[0, 19]" in out and probe_video(output).frame_count == 20
    report_path = tmp_path / "report.json"
    code, out, err = run_cli(capsys, "eval", output, "--source", synthetic_clip, "--no-clip", "--json", report_path)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["frames"] == 20 and report["warp_error"] > 0 and "warp_error_excess" in report
    code, _, err = run_cli(capsys, "propagate", synthetic_clip, "--keyframes", tmp_path / "nope", "-o", output, "-q")
    assert code == 2 and f"--keyframes '{tmp_path / 'nope'}' does not exist" in err


def test_translate_with_a_local_model_folder_runs_diffusion(capsys, synthetic_clip, tmp_path, tiny_pipeline_dir):
    # The tiny pipeline folder holds its ControlNet in controlnet/, which is used when none is named.
    output = tmp_path / "sd.mp4"
    code, out, err = run_cli(
        capsys,
        "translate",
        synthetic_clip,
        "-p",
        "a cat",
        "-o",
        output,
        "-K",
        "10",
        "-q",
        "--model",
        tiny_pipeline_dir,
        *FAST_SETS,
        "--set",
        "vae=null",
        "--set",
        "num_inference_steps=2",
        "--set",
        "device=cpu",
        "--set",
        "negative_prompt=",
        "--set",
        "added_prompt=",
    )
    assert code == 0, err
    assert "keyframes (diffusion): [0, 10, 19]" in out
    assert probe_video(output).frame_count == 20


# --------------------------------------------------------------------------------------------------------
# outputs that would land on inputs, and output names that cannot be written: refused before any work
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def frame_folder(tmp_path, synthetic_clip):
    from rerender.video import read_frames, write_image

    folder = tmp_path / "input frames"
    folder.mkdir()
    for index, frame in enumerate(read_frames(synthetic_clip, end=4)):
        write_image(frame, folder / f"{index:04d}.png")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_preprocess_into_its_own_input_folder_is_refused(capsys, frame_folder):
    before = _snapshot(frame_folder)
    for output in (frame_folder, frame_folder / "sub", frame_folder / "out.mp4"):
        code, _, err = run_cli(capsys, "preprocess", frame_folder, "-o", output, "-q", "--set", "resolution=64")
        assert code == 2 and "Traceback" not in err, err
        assert "is the input" in err or "inside the input folder" in err, err
        assert "-o/--output" in err
    assert _snapshot(frame_folder) == before and sorted(p.name for p in frame_folder.iterdir()) == list(before)


def test_eval_json_onto_an_input_is_refused(capsys, synthetic_clip, tmp_path):
    source = tmp_path / "source.mp4"
    source.write_bytes(synthetic_clip.read_bytes())
    before = source.read_bytes()
    for json_path in (source, synthetic_clip):  # the source, and the evaluated output
        code, _, err = run_cli(capsys, "eval", synthetic_clip, "--source", source, "--json", json_path, "--no-clip")
        assert code == 2 and "--json" in err and "is the input" in err, err
    assert source.read_bytes() == before and probe_video(source).frame_count == 20


def test_eval_json_into_a_missing_folder_fails_before_the_evaluation(capsys, synthetic_clip, tmp_path, monkeypatch):
    import rerender.evaluation

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran before the --json path was checked")

    monkeypatch.setattr(rerender.evaluation, "evaluate_video", never)
    code, _, err = run_cli(
        capsys, "eval", synthetic_clip, "--source", synthetic_clip, "--json", tmp_path / "no" / "r.json", "--no-clip"
    )
    assert code == 2 and "output folder does not exist" in err and str(tmp_path / "no") in err
    code, _, err = run_cli(capsys, "eval", synthetic_clip, "--source", synthetic_clip, "--json", tmp_path, "--no-clip")
    assert code == 2 and "is a folder" in err


def test_eval_writes_its_json_report(capsys, synthetic_clip, tmp_path):
    report = tmp_path / "report.json"
    code, out, err = run_cli(
        capsys, "eval", synthetic_clip, "--source", synthetic_clip, "--json", report, "--no-clip", "--max-frames", "3"
    )
    assert code == 0, err
    assert json.loads(report.read_text()) == json.loads(out) and json.loads(out)["frames"] == 3


@pytest.mark.parametrize("name", ["out.webm", "out.gif", "out.avi", "out", "out.MP4.txt"])
def test_unwritable_video_suffixes_fail_before_any_work(capsys, synthetic_clip, tmp_path, name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / name
    for command in (
        ["translate", synthetic_clip, "-p", "x", "-o", output, "-q", *FAST_SETS],
        ["propagate", synthetic_clip, "--keyframes", tmp_path, "-o", output, "-q"],
        *([["preprocess", synthetic_clip, "-o", output, "-q"]] if output.suffix else []),  # no suffix = PNG folder
    ):
        code, _, err = run_cli(capsys, *command)
        assert code == 2 and "Traceback" not in err, err
        assert (f"the suffix {output.suffix!r}" if output.suffix else "no suffix") in err and ".mp4" in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == [], "work started before the output was refused"


def test_upper_case_suffixes_are_videos(capsys, synthetic_clip, tmp_path):
    output = tmp_path / "OUT.MP4"
    code, _, err = run_cli(
        capsys, "preprocess", synthetic_clip, "-o", output, "-q", "--set", "resolution=64", "--set", "end_frame=3"
    )
    assert code == 0, err
    assert probe_video(output).frame_count == 3


# --------------------------------------------------------------------------------------------------------
# messages that name the problem in CLI terms
# --------------------------------------------------------------------------------------------------------


def test_keyframes_at_names_the_option(capsys, synthetic_clip, tmp_path):
    for value in ("0,a", "1.5", ",", "-3"):
        code, _, err = run_cli(
            capsys, "translate", synthetic_clip, "-p", "x", "-o", tmp_path / "o.mp4", f"--keyframes-at={value}"
        )
        assert code == 2 and "--keyframes-at" in err and "integers ≥ 0" in err and "invalid literal" not in err, err
    code, _, err = run_cli(
        capsys, "translate", synthetic_clip, "-p", "x", "-o", tmp_path / "o.mp4", "--keyframes-at", "0,a"
    )
    assert "'a' is not an integer" in err
    assert not (tmp_path / "o.mp4.work").exists()


def test_eval_frame_options_name_the_option(capsys, synthetic_clip):
    for option, value, valid in (
        ("--frame-stride", "0", "≥ 1"),
        ("--frame-stride", "x", "≥ 1"),
        ("--start-frame", "-1", "≥ 0"),
    ):
        code, _, err = run_cli(capsys, "eval", synthetic_clip, "--source", synthetic_clip, option, value, "--no-clip")
        assert code == 2 and option in err and valid in err and repr(value) in err and "range()" not in err, err


def test_evaluate_video_checks_its_arguments(synthetic_clip):
    from rerender.errors import ConfigError
    from rerender.evaluation import evaluate_video

    with pytest.raises(ConfigError, match=r"`frame_stride` must be an integer ≥ 1, got 0"):
        evaluate_video(synthetic_clip, synthetic_clip, clip_model=None, frame_stride=0)
    with pytest.raises(ConfigError, match=r"`start_frame` must be an integer ≥ 0, got -2"):
        evaluate_video(synthetic_clip, synthetic_clip, clip_model=None, start_frame=-2)


def test_unknown_override_suggests_instead_of_listing_every_key(capsys):
    code, _, err = run_cli(capsys, "config", "show", "--set", "foo=1")
    assert code == 2 and "unknown option `foo`" in err and "no option has a similar name" in err
    assert "mask_strength" not in err and len(err) < 400  # not the ~130 option names
    code, _, err = run_cli(capsys, "config", "show", "--set", "denoising_strenth=0.5")
    assert code == 2 and "did you mean 'denoising_strength'" in err
    code, _, err = run_cli(capsys, "config", "show", "--set", "sampling.strenght=0.5")
    assert code == 2 and "did you mean 'denoising_strength'" in err


def test_translate_without_a_prompt_is_refused_unless_asked_for(capsys, caplog, synthetic_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / "o.mp4"
    for command in ("translate", "keyframes"):
        code, _, err = run_cli(capsys, command, synthetic_clip, "-o", output, "-q", *FAST_SETS)
        assert code == 2 and "no prompt" in err and "-p/--prompt" in err, err
    assert not (tmp_path / "o.mp4.work").exists()
    code, _, err = run_cli(
        capsys, "translate", synthetic_clip, "-p", "", "-o", output, "-q", "--stage", "first", *FAST_SETS
    )
    assert code == 0, err
    assert "without one" in caplog.text  # the run says it is unprompted
    caplog.clear()
    config = tmp_path / "c.yaml"
    config.write_text("prompt:\n  prompt: a watercolor\n")
    code, _, err = run_cli(
        capsys,
        "translate",
        synthetic_clip,
        "--config",
        config,
        "-o",
        tmp_path / "p.mp4",
        "-q",
        "--stage",
        "first",
        *FAST_SETS,
    )
    assert code == 0 and "without one" not in caplog.text, err


def test_messages_name_cli_flags_not_python_arguments(capsys, synthetic_clip, tmp_path, monkeypatch):
    from rerender.synthetic import write_synthetic_video

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    other = tmp_path / "other.mp4"
    write_synthetic_video(other, num_frames=12, width=96, height=64, motion="zoom", fps=25, audio=False)
    common = [
        "-p",
        "x",
        "-K",
        "8",
        "-o",
        tmp_path / "o.mp4",
        "--workspace",
        tmp_path / "ws",
        "-q",
        "--stage",
        "first",
        *FAST_SETS,
    ]
    assert run_cli(capsys, "translate", synthetic_clip, *common)[0] == 0
    code, _, err = run_cli(capsys, "translate", other, *common)  # another video into the same workspace
    assert code == 2 and "--force" in err and "force=" not in err and "(force" not in err and "`force`" not in err, err


def test_cli_message_translation():
    from rerender.cli import _cli_message

    assert _cli_message("rerun with --force (force=True) to redo them") == "rerun with --force to redo them"
    assert _cli_message("`frame_stride` must be ≥ 1; pass force=True") == "--frame-stride must be ≥ 1; pass --force"
    # config keys stay: they are what --set takes
    assert _cli_message("`video.start_frame` must be < 20") == "`video.start_frame` must be < 20"
    assert _cli_message("`denoising_strength` must be in [0, 1]") == "`denoising_strength` must be in [0, 1]"


def test_a_manifest_keyframe_index_that_is_not_an_integer(capsys, caplog, synthetic_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    workspace = tmp_path / "ws"
    common = [
        synthetic_clip,
        "-p",
        "x",
        "-K",
        "8",
        "-o",
        tmp_path / "o.mp4",
        "-q",
        "--workspace",
        workspace,
        *FAST_SETS,
    ]
    assert run_cli(capsys, "keyframes", *common)[0] == 0
    manifest = json.loads((workspace / "manifest.json").read_text())
    manifest["stages"]["keyframes"]["indices"] = [0, "8", 16.5]
    (workspace / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, "translate", *common)
    assert code == 0 and "Unknown format code" not in err, err
    assert "keyframe indices" in caplog.text and "not a list of integers" in caplog.text and "[0, 8, 19]" in out
    assert probe_video(tmp_path / "o.mp4").frame_count == 20


# --------------------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment, delay",
    [
        ("propagated", 0.0),
        pytest.param("propagated", 0.5, marks=pytest.mark.slow),
        pytest.param("frames", 0.0, marks=pytest.mark.slow),
    ],
)
def test_ctrl_c_in_a_stage_prints_one_line_and_exits_130(tmp_path, moment, delay):
    """SIGINT to the whole process group (as a terminal's Ctrl-C) once the stage has started."""
    import os
    import signal
    import time

    from rerender.synthetic import write_synthetic_video

    clip = tmp_path / "clip.mp4"
    write_synthetic_video(clip, num_frames=24, width=128, height=96, motion="mixed", fps=25, audio=False)
    workspace = tmp_path / "ws"
    command = [
        sys.executable,
        "-c",
        "import sys; from rerender.cli import main; sys.exit(main())",
        "translate",
        str(clip),
        "-p",
        "x",
        "-K",
        "6",
        "-o",
        str(tmp_path / "o.mp4"),
        "--workspace",
        str(workspace),
        "-q",
        "--set",
        "resolution=96",
        "--set",
        "size_multiple=16",
        "--set",
        "propagation_preset=fast",
        "--set",
        "workers=2",
        "--set",
        "flow_estimator=dis",
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=environment,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workspace / moment).is_dir() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)  # 0.5 s: while propagation's workers start and run
        assert process.poll() is None, f"the run ended before the {moment} stage: {process.communicate()}"
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert lines == [f"interrupted; finished work is kept in {workspace}: run the same command again to resume"], err
    if moment == "frames":  # (slow) ... and running it again finishes the job
        finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=300)
        assert finished.returncode == 0, finished.stderr
        assert probe_video(tmp_path / "o.mp4").frame_count == 24


def test_an_interrupt_that_surfaces_as_another_error_still_reads_as_interrupted(capsys, monkeypatch, synthetic_clip):
    """A worker killed by the same Ctrl-C can turn it into another error (a broken pool): still exit 130."""
    import signal

    import rerender.cli.commands.info

    def interrupted_then_broken(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("A process in the process pool was terminated abruptly")  # noqa: B904 (as the pool raises it)

    monkeypatch.setattr(rerender.cli.commands.info, "run", interrupted_then_broken)
    handler = signal.getsignal(signal.SIGINT)
    code, _, err = run_cli(capsys, "info", synthetic_clip)
    assert code == 130 and err == "interrupted\n"
    assert signal.getsignal(signal.SIGINT) is handler  # called as a function: the caller's handler is back


def test_preprocess_never_writes_frames_over_a_folder_of_files(capsys, synthetic_clip, tmp_path):
    folder = tmp_path / "painting"
    folder.mkdir()
    (folder / "0000.png").write_bytes(b"my painting")
    (folder / "notes.txt").write_text("notes")
    code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", folder, "-q", "--set", "end_frame=3")
    assert code == 2 and "already holds files" in err, err
    assert (folder / "0000.png").read_bytes() == b"my painting" and sorted(p.name for p in folder.iterdir()) == [
        "0000.png",
        "notes.txt",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", empty, "-q", "--set", "end_frame=3")
    assert code == 0 and sorted(p.name for p in empty.glob("*.png")) == ["0000.png", "0001.png", "0002.png"], err


def test_preprocess_reruns_into_its_own_frame_folder(capsys, synthetic_clip, tmp_path):
    """A second `preprocess -o FOLDER` replaces the frames the first wrote (fewer frames leave none of the old
    behind), as a rerun replaces its own video; a frame painted over since, or a file of the user's, is refused
    and kept, --overwrite or not."""
    folder = tmp_path / "frames"
    for end in (4, 2):
        code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", folder, "-q", "--set", f"end_frame={end}")
        assert code == 0, err
        assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:04d}.png" for i in range(end)]
    (folder / "0001.png").write_bytes(b"painted over")
    for extra in ([], ["--overwrite"]):
        code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", folder, "-q", *extra)
        assert code == 2 and "0001.png" in err and "already holds files" in err, err
    assert (folder / "0001.png").read_bytes() == b"painted over" and (folder / "0000.png").is_file()


def test_a_binary_file_as_config_and_a_zero_fps_are_named(capsys, synthetic_clip):
    code, _, err = run_cli(capsys, "translate", synthetic_clip, "-p", "x", "--config", synthetic_clip)
    assert code == 2 and "is not a config file" in err and "codec can't decode" not in err, err
    code, _, err = run_cli(capsys, "info", synthetic_clip, "--fps", "0")
    assert code == 2 and "--fps" in err and "> 0" in err, err


def test_runtime_failures_print_one_line_named_only_when_unexpected(capsys):
    from rerender.cli import _report
    from rerender.workflow.workspace import WorkspaceBusyError

    assert _report(WorkspaceBusyError("the workspace 'w' is in use by another run (pid 7)"), verbose=False) == 1
    ours = capsys.readouterr().err
    assert ours.startswith("error: the workspace 'w' is in use") and "WorkspaceBusyError" not in ours
    assert _report(RuntimeError("boom"), verbose=False) == 1
    assert capsys.readouterr().err.startswith("error: RuntimeError: boom")


def test_ui_without_its_extra_names_the_install_command(monkeypatch, capsys):
    import importlib.util

    from rerender.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name, *a)
    )
    assert main(["ui"]) == 2
    assert 'pip install "rerender[ui]"' in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# one source of truth: choices and defaults from the config
# --------------------------------------------------------------------------------------------------------


def test_propagate_takes_reconstruction_the_default_blend(tmp_path):
    from rerender.cli import build_parser
    from rerender.cli.options import load_config
    from rerender.config import BlendMode, choices

    parser = build_parser()
    args = parser.parse_args(
        ["propagate", "v.mp4", "--keyframes", str(tmp_path), "-o", "o.mp4", "--blend", "reconstruction"]
    )
    assert load_config(args).propagation.blend_mode == "reconstruction"
    blend = next(
        action
        for action in parser._subparsers._group_actions[0].choices["propagate"]._actions
        if "--blend" in action.option_strings
    )
    assert tuple(blend.choices) == choices(BlendMode) and "agreement)" not in blend.help  # no stale default named
    assert "not given: the preset's" in blend.help


def test_config_show_prints_the_renderer_a_run_uses(capsys, monkeypatch, synthetic_clip, tmp_path):
    import rerender.workflow.translation

    used = []

    def record(*args, config, **kwargs):
        used.append(config)
        raise RuntimeError("recorded")

    monkeypatch.setattr(rerender.workflow.translation, "translate", record)
    own = tmp_path / "classic.yaml"
    own.write_text("model:\n  renderer: classic\n")
    cases = ((None, [], "auto"), (own, [], "classic"), (own, ["--set", "renderer=diffusion"], "diffusion"))
    for file, sets, renderer in cases:
        code, out, _ = run_cli(capsys, "config", "show", "--json", *([file] if file else []), *sets)
        shown = json.loads(out)
        assert code == 0 and shown["model"]["renderer"] == renderer
        run_cli(capsys, "translate", synthetic_clip, "-p", "x", *(["--config", file] if file else []), *sets)
        from rerender.cli.options import model_defaults
        from rerender.config import config_to_dict

        # exactly what the run used, with the model's own defaults (steps, guidance, FreeU's factors) as it sets them
        assert config_to_dict(model_defaults(used.pop())) == shown


def test_model_and_quiet_are_declared_once():
    source = "\n".join(path.read_text() for path in (REPO / "rerender" / "cli").rglob("*.py"))
    for flag in ('"--model"', '"-q"', '"-K"', '"--config"', '"--renderer"', '"--prompt-language"', '"--lora"'):
        assert source.count(flag) == 1, flag


def test_prompt_language_choice_names_the_config_field(capsys, synthetic_clip, tmp_path):
    code, _, err = run_cli(capsys, "translate", synthetic_clip, "-p", "x", "--prompt-language", "xx")
    assert code == 2 and "--prompt-language" in err and "`prompt.prompt_language`" in err and "'xx'" in err, err


def test_download_precision_takes_the_dtype_names_and_the_short_ones():
    from rerender.cli import build_parser
    from rerender.cli.options import load_config

    parser = build_parser()
    spellings = (("fp16", "float16"), ("float16", "float16"), ("fp32", "float32"), ("bfloat16", "bfloat16"))
    for spelling, dtype in spellings:
        assert load_config(parser.parse_args(["download", "--precision", spelling])).model.dtype == dtype
    assert load_config(parser.parse_args(["download", "--vae", "model"])).model.vae is None


# --------------------------------------------------------------------------------------------------------
# exit codes: 2 for usage errors only
# --------------------------------------------------------------------------------------------------------


def test_download_with_the_hub_unreachable_is_a_runtime_failure(capsys, monkeypatch):
    import rerender.weights

    monkeypatch.setattr(rerender.weights, "hub_offline", lambda: False)
    monkeypatch.setattr(rerender.weights, "hub_reachable", lambda *a, **k: False)
    code, _, err = run_cli(capsys, "download", "--no-flow", "-q")
    assert code == 1 and "cannot be reached" in err and "Traceback" not in err, err


def test_download_failures_split_into_usage_and_runtime():
    from huggingface_hub.errors import LocalEntryNotFoundError

    from rerender.weights import _names_a_missing_thing

    assert not _names_a_missing_thing(LocalEntryNotFoundError("connection lost"))  # network: exit 1
    assert not _names_a_missing_thing(ConnectionError("reset by peer"))
    assert _names_a_missing_thing(FileNotFoundError("the repository has no 'x.safetensors'"))  # the config's: exit 2


def test_batch_with_an_unreachable_cluster_is_a_runtime_failure(capsys, synthetic_clip, tmp_path):
    pytest.importorskip("ray")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").symlink_to(synthetic_clip)
    code, _, err = run_cli(
        capsys,
        "batch",
        tmp_path / "clips",
        "-p",
        "x",
        "-o",
        tmp_path / "out",
        "--ray",
        "127.0.0.1:9",
        "--renderer",
        "classic",
    )
    assert code == 1 and "unreachable" in err and "Traceback" not in err, err


def test_output_messages_name_the_flag_as_typed(capsys, synthetic_clip, tmp_path):
    commands = (["translate", synthetic_clip, "-p", "x", "-q"], ["propagate", synthetic_clip, "--keyframes", tmp_path])
    for command in commands:
        code, _, err = run_cli(capsys, *command, "-o", tmp_path / "o.webm")
        assert code == 2 and err.startswith(f"error: -o/--output '{tmp_path / 'o.webm'}' has the suffix '.webm'"), err
    (tmp_path / "keys").mkdir()
    code, _, err = run_cli(
        capsys,
        "propagate",
        synthetic_clip,
        "--keyframes",
        tmp_path / "keys",
        "-o",
        tmp_path / "o.mp4",
        "--keep-intermediates",
        tmp_path / "no" / "dir",
    )
    assert code == 2 and "--keep-intermediates: output folder does not exist" in err, err


def test_a_config_file_merges_over_the_cli_defaults_section_by_section(tmp_path):
    from rerender.cli.options import default_config
    from rerender.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model:\n  dtype: float32\nvideo:\n  crop:\n    left: 2\n")
    config = load_config(path, defaults=default_config())
    assert config.model.renderer == "auto" and config.model.dtype == "float32"  # the file's and the CLI's
    assert config.video.crop.left == 2 and config.video.crop.top == 0 and config.video.resolution == 512
    assert load_config(path).model.renderer == "diffusion"  # the library's own default is unchanged


def test_input_options_set_their_config_fields():
    from rerender.cli import build_parser
    from rerender.cli.options import load_config

    args = build_parser().parse_args(
        ["translate", "clip.mp4", "-p", "x", "--background", "black", "--no-deinterlace", "--audio-track", "none"]
    )
    config = load_config(args)
    assert (
        config.video.background == "black" and config.video.deinterlace is False and config.output.keep_audio is False
    )
    config = load_config(
        build_parser().parse_args(["propagate", "clip.mp4", "--keyframes", "k", "-o", "o.mp4", "--audio-track", "1"])
    )
    assert config.output.audio_track == 1 and config.output.keep_audio and config.video.deinterlace
    from rerender.cli.base import UsageError

    with pytest.raises(UsageError, match="--audio-track: must be a track number ≥ 0 or 'none', got '-1'"):
        build_parser().parse_args(["translate", "clip.mp4", "--audio-track", "-1"])


def _cli_flags() -> set[str]:
    """Every option string of every `rerender` command."""
    import argparse

    from rerender.cli import build_parser

    flags: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            flags.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    walk(command)

    walk(build_parser())
    return flags


def test_every_flag_a_message_the_readme_or_a_guide_names_exists():
    """A message or page that tells the user to type `--audio-track 1` is wrong if no command takes it (paragraphs
    about a script, such as a benchmark's, name that script's flags; Ray's and `hf download`'s are theirs)."""
    import re

    others = {"--head", "--address", "--include", "--exclude", "--local-dir"}
    flags = _cli_flags() | others
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "docs").glob("*/*.md")]
    texts = [(path, path.read_text()) for path in [*(REPO / "rerender").rglob("*.py"), *pages]]
    missing = set()
    for path, text in texts:
        for paragraph in text.split("\n\n"):
            if path.suffix == ".md" and re.search(r"[\w/]+\.py\b|\bruff\b|\bpytest\b|\bmkdocs\b", paragraph):
                continue  # a script's or a tool's own flags
            missing |= {
                (path.name, flag)
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", paragraph)
                if flag not in flags
            }
    assert not missing


@pytest.mark.parametrize(
    "args, flag, python_name",
    [
        (["animate", "{still}", "-p", "x", "-o", "{tmp}/a.mp4", "--amount", "-1"], "--amount", "`amount`"),
        (["animate", "{still}", "-p", "x", "-o", "{tmp}/a.mp4", "--seconds", "0"], "--seconds", "`seconds`"),
        (["animate", "{still}", "-p", "x", "-o", "{tmp}/a.mp4", "--fps", "-3"], "--fps", "`fps`"),
        (
            ["animate", "{still}", "-p", "x", "-o", "{tmp}/a.mp4", "--motion", "orbit", "--depth", "{tmp}/no.png"],
            "--depth",
            "`depth`",
        ),
        (["generate", "-p", "x", "-o", "{tmp}/g.mp4", "--frames", "0"], "--frames", "`frames`"),
        (["generate", "-p", "x", "-o", "{tmp}/g.mp4", "--width", "65"], "--width/--height", "`size`"),
        (["generate", "-p", "x", "-o", "{tmp}/g.mp4", "--fps", "0"], "--fps", "`fps`"),
    ],
)
def test_animate_and_generate_errors_name_the_flag_as_typed(capsys, tmp_path, args, flag, python_name):
    from PIL import Image

    still = tmp_path / "still.png"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(still)
    code, _, err = run_cli(capsys, *[arg.format(still=still, tmp=tmp_path) for arg in args], "-q")
    assert code == 2 and flag in err and python_name not in err and "Traceback" not in err, err


def test_a_config_option_given_by_its_flag_is_named_by_that_flag(capsys, synthetic_clip, tmp_path):
    common = ["-p", "x", "-o", tmp_path / "o.mp4", "-q"]
    code, _, err = run_cli(capsys, "translate", synthetic_clip, *common, "--model", tmp_path / "no-model")
    assert code == 2 and err.startswith("error: --model ") and "`model.base_model`" not in err, err
    code, _, err = run_cli(capsys, "translate", synthetic_clip, *common, "--keyframes-at", "0,50")
    assert code == 2 and err.startswith("error: --keyframes-at must lie in [0, 19]"), err
    code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", tmp_path / "p.mp4", "-q", "--audio-track", "3")
    assert code == 2 and err.startswith("error: --audio-track must be one of the source's audio tracks"), err
    # given with --set, the message keeps the config key the user typed
    code, _, err = run_cli(
        capsys, "translate", synthetic_clip, *common, "--set", f"base_model={tmp_path / 'no-model'}"
    )
    assert code == 2 and "`model.base_model`" in err and "--model" not in err.split("does not exist")[0], err
