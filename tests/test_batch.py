"""`rerender.batch` and `rerender batch`: job lists, bad input before any work, local and Ray runs giving the
same bytes, a failed job alone in the summary, re-runs skipping finished jobs (classic renderer: no weights)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rerender.cli import main
from rerender.errors import ConfigError, InputNotFoundError
from rerender.synthetic import write_synthetic_video
from rerender.video import read_frames
from rerender.workflow.batching import batch, format_summary, load_jobs

FAST = dict(
    resolution=64,
    size_multiple=16,
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
    keyframe_interval=4,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three 8-frame clips with different motion, and a file named like a video that is not one."""
    folder = tmp_path_factory.mktemp("batch clips")
    for number, motion in enumerate(("translation", "mixed", "zoom")):
        write_synthetic_video(
            folder / f"clip{number}.mp4",
            num_frames=8,
            width=64,
            height=48,
            motion=motion,
            audio=number == 0,
            seed=number,
        )
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def _workspace_files(output: Path) -> dict[str, bytes]:
    root = output.with_name(output.name + ".work")
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.png"))}


def test_job_list_errors_come_before_any_work(clips, tmp_path):
    listing = tmp_path / "jobs.csv"
    listing.write_text("video,prompt,denoise\nclip0.mp4,a cat,0.5\n", encoding="utf-8")
    os.symlink(clips / "clip0.mp4", tmp_path / "clip0.mp4")
    with pytest.raises(ConfigError, match=r"row|job 1.*column 'denoise'"):
        load_jobs(listing, None, tmp_path / "out")
    listing.write_text("video,denoising_strength\nclip0.mp4,0.5\nnowhere.mp4,0.6\n", encoding="utf-8")
    with pytest.raises(InputNotFoundError, match="nowhere.mp4"):
        batch(listing, "a cat", tmp_path / "out")
    listing.write_text("video,output\nclip0.mp4,same.mp4\nclip0.mp4,same.mp4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="would both write"):
        batch(listing, "a cat", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # A CSV saved by a spreadsheet (byte-order mark, CRLF) reads as any other; one with another separator says so
    listing.write_bytes("\ufeffvideo,prompt\r\nclip0.mp4,a dog\r\n".encode("utf-8"))
    assert [(job.video, job.prompt) for job in load_jobs(listing, None, tmp_path / "out")] == [
        (tmp_path / "clip0.mp4", "a dog")
    ]
    listing.write_text("video;prompt\nclip0.mp4;a dog\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no `video` column; its header reads \['video;prompt'\]"):
        load_jobs(listing, None, tmp_path / "out")
    # A YAML list: relative videos from its folder, per-row prompt and options, outputs in the output folder.
    listing = tmp_path / "jobs.yaml"
    listing.write_text(
        "- {video: clip0.mp4, prompt: a dog, keyframes.keyframe_interval: 2}\n- {video: clip0.mp4, output: b.mp4}\n",
        encoding="utf-8",
    )
    jobs = load_jobs(listing, "a cat", tmp_path / "out")
    assert [(job.video, job.prompt, job.output, dict(job.overrides)) for job in jobs] == [
        (tmp_path / "clip0.mp4", "a dog", tmp_path / "out" / "clip0.mp4", {"keyframes.keyframe_interval": 2}),
        (tmp_path / "clip0.mp4", "a cat", tmp_path / "out" / "b.mp4", {}),
    ]


def test_outputs_are_checked_before_any_job_and_the_users_files_are_never_overwritten(clips, tmp_path, capsys):
    from rerender.errors import OutputPathError

    out = tmp_path / "out"
    out.mkdir()
    (out / "clip1.mp4").write_bytes(b"my own video")  # the user's, where the batch would write clip1's output
    with pytest.raises(
        OutputPathError, match=r"job 2 \(clip1.mp4\).*'.*clip1.mp4' already exists and was not written"
    ):
        batch(
            [{"video": clips / "clip0.mp4"}, {"video": clips / "clip1.mp4"}], "a cat", out, renderer="classic", **FAST
        )
    assert (out / "clip1.mp4").read_bytes() == b"my own video" and not list(out.glob("*.work"))  # job 1 did not run
    # an output that is no video path, or another job's input, fails before job 1 runs too
    for second, pattern in (
        ({"video": clips / "clip2.mp4", "output": "two.gif"}, r"job 2 .*'.gif'"),
        ({"video": clips / "clip2.mp4", "output": clips / "clip0.mp4"}, r"job 2 .*is the input"),
    ):
        with pytest.raises(OutputPathError, match=pattern):
            batch([{"video": clips / "clip0.mp4"}, second], "a cat", tmp_path / "fresh", renderer="classic", **FAST)
        assert not list((tmp_path / "fresh").glob("*.work"))
    # the CLI names the job list's column, not -o/--output (the output folder), for two jobs with one output
    listing = tmp_path / "jobs.csv"
    listing.write_text(
        f"video,output\n{clips / 'clip0.mp4'},same.mp4\n{clips / 'clip1.mp4'},same.mp4\n", encoding="utf-8"
    )
    assert main(["batch", str(listing), "-p", "x", "-o", str(tmp_path / "o2")]) == 2
    error = capsys.readouterr().err
    assert "would both write" in error and "'output' column" in error and "-o/--output" not in error
    assert main(["batch", str(clips), "-p", "x", "-o", str(tmp_path / "o3"), "--jobs", "0"]) == 2
    assert "argument --jobs: must be an integer ≥ 1, got '0'" in capsys.readouterr().err
    # an output folder that is a file, or cannot be made: named, as a usage error (was a bare FileExistsError, exit 1)
    (tmp_path / "a-file").write_text("mine")
    assert main(["batch", str(clips), "-p", "x", "-o", str(tmp_path / "a-file")]) == 2
    assert f"-o/--output '{tmp_path / 'a-file'}' is a file" in capsys.readouterr().err
    assert main(["batch", str(clips), "-p", "x", "-o", str(tmp_path / "a-file" / "sub")]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err and (tmp_path / "a-file").read_text() == "mine"


def test_unreachable_cluster_fails_before_any_job(clips, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import ray

    assert not ray.is_initialized()
    from rerender.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError, match="127.0.0.1:9.*unreachable"):
        batch(clips, "a cat", tmp_path / "out", renderer="classic", ray="127.0.0.1:9")

    def no_cluster(
        **kwargs,
    ):  # as ray.init(address="auto") answers where no cluster runs (one may, on a shared machine)
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by "
            "setting `--address` flag or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(
        ServiceUnavailableError, match="'auto' found no running Ray cluster.*`ray start --head`.*'local'"
    ):
        batch(clips, "a cat", tmp_path / "out", renderer="classic", ray="auto")
    assert not list((tmp_path / "out").glob("*.work"))


@pytest.mark.ray
def test_batch_on_ray_equals_local_runs_and_a_bad_job_fails_alone(clips, tmp_path):
    ray = pytest.importorskip("ray")
    local = batch(clips, "a cartoon", tmp_path / "local", renderer="classic", **FAST)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
    )
    try:
        remote = batch(clips, "a cartoon", tmp_path / "ray", renderer="classic", ray="local", **FAST)
    finally:
        ray.shutdown()
    assert remote.executor == "ray(local)"
    for result in (local, remote):
        assert [(item.job.video.name, item.status) for item in result.jobs] == [
            ("broken.mp4", "failed"),
            ("clip0.mp4", "done"),
            ("clip1.mp4", "done"),
            ("clip2.mp4", "done"),
        ]
        assert "broken.mp4" in result.jobs[0].error and "VideoReadError" in result.jobs[0].error
        assert f"job 1 ({clips / 'broken.mp4'}) failed: VideoReadError" in format_summary(result)
    assert all(item.where.startswith("ray:") for item in remote.jobs[1:])
    for mine, theirs in zip(local.jobs[1:], remote.jobs[1:]):
        a, b = (np.stack(list(read_frames(item.job.output))) for item in (mine, theirs))
        assert a.shape == (8, 48, 64, 3) and np.array_equal(a, b)
        ours, others = _workspace_files(mine.job.output), _workspace_files(theirs.job.output)
        assert len(ours) > 8 * 2 and ours == others  # frames, keyframes and propagated frames, byte for byte
    # A re-run skips the finished jobs (their workspaces say so) and retries only the failed one.
    again = batch(clips, "a cartoon", tmp_path / "local", renderer="classic", **FAST)
    assert [item.status for item in again.jobs] == ["failed", "skipped", "skipped", "skipped"]
    # A changed option is not "finished": that job runs again.
    changed = batch(
        [{"video": clips / "clip1.mp4"}],
        "a cartoon",
        tmp_path / "local",
        renderer="classic",
        **{**FAST, "keyframe_interval": 3},
    )
    assert [item.status for item in changed.jobs] == ["done"]


@pytest.mark.ray
@pytest.mark.slow  # Ray's workers stay in the default run through the batch and executor tests
def test_relative_paths_on_ray_workers_with_their_own_working_folder(clips, tmp_path, monkeypatch):
    # a runtime_env working_dir (or another node) gives the workers another working folder than the driver's
    ray = pytest.importorskip("ray")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "job.py").write_text("# the user's code, shipped to the workers\n")
    os.symlink(clips / "clip0.mp4", tmp_path / "clip0.mp4")
    monkeypatch.chdir(tmp_path)
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={
            "working_dir": str(tmp_path / "code"),
            "env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
        },
    )
    try:
        result = batch([{"video": "clip0.mp4"}], "a cartoon", "styled", renderer="classic", ray="auto", **FAST)
    finally:
        ray.shutdown()
    assert [(item.status, item.error) for item in result.jobs] == [("done", None)]
    assert result.jobs[0].job.output == tmp_path / "styled" / "clip0.mp4"  # absolute: as meant where it was given
    assert len(list(read_frames(tmp_path / "styled" / "clip0.mp4"))) == 8  # written where the driver meant


def test_cli_batch_prints_the_summary_and_exits_1_when_a_job_failed(clips, tmp_path, capsys):
    listing = tmp_path / "jobs.csv"
    listing.write_text(
        f"video,output,keyframe_interval\n{clips / 'clip2.mp4'},two.mp4,4\n{clips / 'broken.mp4'},,\n",
        encoding="utf-8",
    )
    settings = [
        item for key, value in FAST.items() if key != "keyframe_interval" for item in ("--set", f"{key}={value}")
    ]
    code = main(
        [
            "batch",
            str(listing),
            "-p",
            "a cartoon",
            "-o",
            str(tmp_path / "out"),
            "--renderer",
            "classic",
            "--jobs",
            "2",
            "-q",
            *settings,
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert (tmp_path / "out" / "two.mp4").is_file() and not (tmp_path / "out" / "broken.mp4").exists()
    assert "2 jobs" in printed and "threads(2)" in printed and "1 done, 0 skipped, 1 failed" in printed
    assert "broken.mp4) failed: VideoReadError" in printed
    assert main(["batch", str(tmp_path / "nothing"), "-p", "x", "-o", str(tmp_path / "out")]) == 2
    # a job with no prompt (no -p, no `prompt` column, none in the config) is refused before any job, as in translate
    listing.write_text(f"video,prompt\n{clips / 'clip0.mp4'},a dog\n{clips / 'clip1.mp4'},\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["batch", str(listing), "-o", str(tmp_path / "unprompted"), "--renderer", "classic"]) == 2
    assert "no prompt for clip1.mp4" in capsys.readouterr().err and not (tmp_path / "unprompted").exists()


@pytest.mark.slow
def test_the_single_video_path_never_imports_ray(synthetic_clip, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, rerender\n"
        f"rerender.translate({str(synthetic_clip)!r}, 'a cartoon', output={str(tmp_path / 'o.mp4')!r}, renderer='classic', "
        "progress=False, resolution=64, size_multiple=16, propagation_preset='fast', workers=1, flow_estimator='dis', "
        "keyframe_interval=10)\n"
        "from rerender.cli import build_parser; build_parser()\n"
        "import rerender.workflow.batching, rerender.workflow.executors\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_csv_text_columns_stay_text_and_options_are_read_by_their_type(tmp_path):
    # before: every cell went through yaml.safe_load: "…style: watercolor" became a dict, "a car #1 in red" became
    # "a car" (a YAML comment), "no" became False
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"not decoded")  # not empty: an empty video is refused with the list
    (tmp_path / "jobs.csv").write_text(
        "video,prompt,output,denoising_strength,keyframe_interval,last_frame_keyframe,negative_prompt\n"
        'a.mp4,"a painting, style: watercolor",a out.mp4,0.7,8,no,blurry: low quality\n'
        "b.mp4,a car #1 in red,,,,yes,\n"
        "c.mp4,no,,1,,,\n",
        encoding="utf-8",
    )
    jobs = load_jobs(tmp_path / "jobs.csv", None, tmp_path / "out")
    assert [job.prompt for job in jobs] == ["a painting, style: watercolor", "a car #1 in red", "no"]
    assert jobs[0].output == tmp_path / "out" / "a out.mp4"
    assert dict(jobs[0].overrides) == {
        "denoising_strength": 0.7,
        "keyframe_interval": 8,
        "last_frame_keyframe": False,
        "negative_prompt": "blurry: low quality",
    }
    assert dict(jobs[1].overrides) == {"last_frame_keyframe": True}
    assert (
        dict(jobs[2].overrides) == {"denoising_strength": 1.0}
        and type(jobs[2].overrides["denoising_strength"]) is float
    )


@pytest.mark.parametrize(
    "column, cell, message",
    [
        ("denoising_strength", "strong", r"row 2, column 'denoising_strength': `denoising_strength` must be a number"),
        ("keyframe_interval", "8.5", r"row 2, column 'keyframe_interval': `keyframe_interval` must be an integer"),
        ("last_frame_keyframe", "maybe", r"row 2, column 'last_frame_keyframe': `last_frame_keyframe` must be true"),
    ],
)
def test_a_csv_cell_that_is_not_of_its_options_type_names_the_row_and_column(tmp_path, column, cell, message):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"not decoded")
    (tmp_path / "jobs.csv").write_text(f"video,{column}\na.mp4,\nb.mp4,{cell}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_jobs(tmp_path / "jobs.csv", "x", tmp_path / "out")
