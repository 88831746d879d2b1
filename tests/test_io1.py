"""One rule for what rerender writes and may overwrite, and one source for each of a few shared things (io1)."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.errors import ConfigError, OutputPathError
from tests.test_leftovers8 import FAST, _their_video  # a file of the user's: a video another tool wrote


def _our_video(path):
    from rerender.video import write_video

    return write_video([np.full((16, 16, 3), value, np.uint8) for value in (0, 255)], path, fps=10)


# ---- 1. one call checks an output: the path and the tag rule ------------------------------------------------


def test_check_output_path_with_overwrite_applies_the_tag_rule(tmp_path):
    from rerender.video import check_output_path

    theirs, ours = _their_video(tmp_path / "theirs.mp4"), _our_video(tmp_path / "ours.mp4")
    before = theirs.read_bytes()
    with pytest.raises(OutputPathError) as raised:
        check_output_path(theirs, name="-o/--output", overwrite=False, remedy="add --overwrite to replace it")
    assert str(raised.value) == (
        f"-o/--output {str(theirs)!r} already exists and was not written by rerender; add --overwrite to replace it"
    )
    assert theirs.read_bytes() == before
    assert check_output_path(theirs, overwrite=True) == theirs  # the user said so
    assert check_output_path(ours, overwrite=False) == ours  # an earlier run's: a rerun replaces it
    assert check_output_path(tmp_path / "new.mp4", overwrite=False) == tmp_path / "new.mp4"
    assert check_output_path(theirs) == theirs  # overwrite=None: a writer whose caller checked already
    with pytest.raises(ConfigError, match="`overwrite` must be True or False, got 'yes'"):
        check_output_path(tmp_path / "new.mp4", overwrite="yes")
    with pytest.raises(OutputPathError, match="is the input"):  # the path checks still come first
        check_output_path(theirs, [theirs], overwrite=True)


# ---- 2. the comparison video, animate's clip and the demo clips follow the same rule ------------------------


def test_comparison_video_follows_the_tag_rule(silent_clip, tmp_path):
    from rerender import translate
    from rerender.video import probe_video, written_by_rerender
    from rerender.workflow.preflight import check_workspace_paths

    output, side_by_side = tmp_path / "o.mp4", tmp_path / "o_comparison.mp4"
    run = dict(output=output, comparison=True, renderer="classic", progress=False, end_frame=2, **FAST)
    _their_video(side_by_side)
    before = side_by_side.read_bytes()
    with pytest.raises(OutputPathError) as raised:
        translate(silent_clip, "x", **run)
    assert "comparison output" in str(raised.value) and "overwrite=True" in str(raised.value)
    assert side_by_side.read_bytes() == before and not output.exists() and not (tmp_path / "o.mp4.work").exists()
    # was: refused even with overwrite=True (the comparison had a rule of its own, a digest in the workspace)
    check_workspace_paths(tmp_path / "w", output, [silent_clip], comparison=True, overwrite=True)
    # was: our own comparison whose workspace is gone (delete_workspace, another workspace) was refused as the user's
    _our_video(side_by_side)
    translate(silent_clip, "x", **run)
    assert written_by_rerender(side_by_side) and probe_video(side_by_side).frame_count == 2


def test_a_users_file_at_the_clip_path_is_left_byte_identical(tmp_path):
    import rerender
    from rerender.video import write_image

    still = write_image(np.full((32, 48, 3), 128, np.uint8), tmp_path / "still.png")
    options = dict(seconds=0.2, fps=10, renderer="classic", progress=False, resolution=64, K=1)
    # was: written over when `<output>.clip/` was there (an earlier run's frames), or when `clip_output` was a path
    (tmp_path / "out.mp4.clip").mkdir()
    auto, chosen = _their_video(tmp_path / "out_clip.mp4"), _their_video(tmp_path / "chosen.mp4")
    before = auto.read_bytes()
    for clip_output, name in (("auto", "clip video"), (chosen, "`clip_output`")):
        with pytest.raises(OutputPathError) as raised:
            rerender.animate(still, "ink", output=tmp_path / "out.mp4", clip_output=clip_output, **options)
        assert f"{name} {str(tmp_path / ('out_clip.mp4' if clip_output == 'auto' else 'chosen.mp4'))!r}" in str(
            raised.value
        )
        assert "overwrite=True" in str(raised.value)
    assert auto.read_bytes() == before and chosen.read_bytes() == before and not (tmp_path / "out.mp4").exists()
    assert list((tmp_path / "out.mp4.clip").iterdir()) == []  # refused before the clip was made


def test_demo_clips_are_tagged_written_atomically_and_never_replace_a_users_file(tmp_path):
    from rerender.synthetic import write_synthetic_video
    from rerender.video import probe_video, written_by_rerender

    path = tmp_path / "demo.mp4"
    write_synthetic_video(path, num_frames=2, width=32, height=32, audio=False)
    assert written_by_rerender(path) and probe_video(path).frame_count == 2
    write_synthetic_video(path, num_frames=3, width=32, height=32, audio=False)  # ours: replaced
    assert probe_video(path).frame_count == 3
    theirs = _their_video(tmp_path / "theirs.mp4")
    before = theirs.read_bytes()
    with pytest.raises(OutputPathError, match="theirs.mp4' already exists and was not written by rerender"):
        write_synthetic_video(theirs, num_frames=2, width=32, height=32, audio=False)
    assert theirs.read_bytes() == before
    write_synthetic_video(theirs, num_frames=2, width=32, height=32, audio=False, overwrite=True)
    assert written_by_rerender(theirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4", "theirs.mp4"]  # no temporary left behind


# ---- 3. a changed input restarts its workspace when the caller says so (animate's regenerated clip) ----------


def test_workspace_open_restarts_a_changed_input_only_when_asked(tmp_path):
    from rerender.config import RerenderConfig
    from rerender.workflow.workspace import Workspace, WorkspaceMismatchError

    clip, other, config = tmp_path / "out.mp4.clip", tmp_path / "other.clip", RerenderConfig()
    for folder in (clip, other):
        folder.mkdir()
        (folder / "00000.png").write_bytes(b"frame one")
    with Workspace.open(tmp_path / "ws", clip, config) as space:
        space.begin("frames", config)
        space.frames_dir.mkdir(exist_ok=True)
        space.track(space.frame_path(0)).write_bytes(b"ours")
        space.finish("frames")
    (clip / "00000.png").write_bytes(b"frame two, another move")  # the same clip folder, made again
    with pytest.raises(WorkspaceMismatchError, match="another video"):  # the default: refused, as before
        Workspace.open(tmp_path / "ws", clip, config)
    with pytest.raises(WorkspaceMismatchError, match="another video"):  # another input is refused either way
        Workspace.open(tmp_path / "ws", other, config, on_change="restart")
    with Workspace.open(tmp_path / "ws", clip, config, on_change="restart") as space:
        assert space.manifest["stages"] == {} and space.redone == ["everything: out.mp4.clip changed"]
        assert not space.frame_path(0).exists()
    with Workspace.open(tmp_path / "ws", clip, config, on_change="restart") as space:  # unchanged now: kept
        assert space.redone == []


def test_translate_refuses_an_unknown_on_change_before_any_work(silent_clip, tmp_path):
    from rerender import translate

    with pytest.raises(ConfigError, match="`on_change` must be one of 'refuse', 'restart', got 'again'"):
        translate(silent_clip, "x", output=tmp_path / "o.mp4", on_change="again", renderer="classic")
    assert list(tmp_path.iterdir()) == []


# ---- 5. the web page starts from the CLI's default config, not a copy of it -------------------------------------


def test_the_page_starts_from_the_clis_default_config(monkeypatch):
    from rerender.cli import options
    from rerender.ui import build_app

    monkeypatch.setattr(options, "CLI_DEFAULTS", {**options.CLI_DEFAULTS, "video.resolution": 384})
    options.default_config.cache_clear()
    try:
        page = build_app().rerender_page
        assert page.settings["video.resolution"].value == 384 == options.default_config().video.resolution
        assert page.renderer.value == options.default_config().model.renderer == "auto"
    finally:
        options.default_config.cache_clear()


# ---- 6. "~" in a config option given by a CLI flag is expanded in one place: the config's PATH_OPTIONS ----------


def test_home_in_config_options_given_by_flags_is_expanded_by_the_config(monkeypatch, tmp_path):
    import argparse

    from rerender.cli.options import PATH_ARGUMENTS, expand_home, load_config, model_parent, prompt_parent
    from rerender.config.convert import PATH_OPTIONS

    monkeypatch.setenv("HOME", str(tmp_path))
    assert not [name for name in PATH_ARGUMENTS if "." in name]  # config options are the config's to expand
    flags = {
        "--model": "model.base_model",
        "--style-image": "prompt.style_image",
        "--audio-prompt": "prompt.audio_prompt",
        "--translation-model": "prompt.translation_model",
    }
    parser = argparse.ArgumentParser(parents=[model_parent(), prompt_parent()])  # translate's, without the rest
    parser.add_argument("video")
    parser.add_argument("-o", "--output")
    argv = ["~/clip.mp4", "-o", "~/out.mp4"]
    for flag, path in flags.items():
        assert path in PATH_OPTIONS
        argv += [flag, f"~/{path}"]
    args = expand_home(parser.parse_args(argv))
    assert (args.video, args.output) == (f"{tmp_path}/clip.mp4", f"{tmp_path}/out.mp4")
    config = load_config(args)
    for path in flags.values():
        section, name = path.split(".")
        assert getattr(getattr(config, section), name) == f"{tmp_path}/{path}", path


# ---- 7. progress arguments are checked once, by the entry point -----------------------------------------------


def test_progress_trusts_the_check_of_its_entry_point(monkeypatch, silent_clip, tmp_path):
    from rerender import translate
    from rerender.workflow import context, translation

    checked = []
    real = context.check_progress_arguments

    def spy(callback, cancel):
        checked.append((callback, cancel))
        real(callback, cancel)

    monkeypatch.setattr(context, "check_progress_arguments", spy)
    monkeypatch.setattr(translation, "check_progress_arguments", spy)
    seen = []
    translate(
        silent_clip,
        "x",
        output=tmp_path / "o.mp4",
        renderer="classic",
        progress=False,
        callback=lambda *event: seen.append(event),
        end_frame=2,
        **FAST,
    )
    assert len(checked) == 1 and seen  # translate's own check; its Progress did not repeat it
    with pytest.raises(ConfigError, match="`callback` must take three arguments"):  # and the entry point still checks
        translate(silent_clip, "x", output=tmp_path / "p.mp4", callback=lambda stage: None, progress=False)


def test_the_cli_names_its_own_way_to_leave_the_clip_out(tmp_path, capsys):
    """`rerender animate` has no clip path option: its refusal names --no-clip and --overwrite, not `clip_output`."""
    from rerender.video import write_image
    from tests.test_cli import run_cli

    still = write_image(np.full((32, 48, 3), 128, np.uint8), tmp_path / "still.png")
    before = _their_video(tmp_path / "out_clip.mp4").read_bytes()
    code, _, err = run_cli(
        capsys, "animate", still, "-p", "ink", "-o", tmp_path / "out.mp4", "--seconds", "0.2", "--fps", "10", "-q"
    )
    assert code == 2 and "--no-clip" in err and "--overwrite" in err and "clip_output" not in err, err
    assert (tmp_path / "out_clip.mp4").read_bytes() == before
