"""What a new user runs into (seventh round): each case a defect found by following the docs' Python examples,
the three-stage workflow with options changed between stages, the web page's callbacks with odd values, and the
videos users really have (portrait phone clips, variable rate, gaps in an image folder), with the behaviour that
should have happened."""

from __future__ import annotations

from pathlib import Path

import pytest

import rerender
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FAST = {"renderer": "classic", "resolution": 64, "size_multiple": 8, "flow_estimator": "dis", "progress": False}


def test_a_refused_stage_propagate_keeps_the_keyframes_it_refused_to_use(silent_clip, tmp_path):
    # was: `--stage propagate -K 5` after `--stage keyframes -K 4` logged "redoing keyframes", deleted every
    # rendered keyframe (hours of GPU work) and only then refused for want of keyframes
    output = tmp_path / "out.mp4"
    rerender.translate(silent_clip, "a cat", K=4, output=output, stage="keyframes", **FAST)
    keyframes = sorted(p.name for p in (tmp_path / "out.mp4.work" / "keyframes").iterdir())
    assert keyframes
    changed = r"`stage` 'propagate'.*rendered with other options \(config changed: keyframes\)"
    with pytest.raises(ConfigError, match=changed):
        rerender.translate(silent_clip, "a cat", K=5, output=output, stage="propagate", **FAST)
    assert sorted(p.name for p in (tmp_path / "out.mp4.work" / "keyframes").iterdir()) == keyframes
    result = rerender.translate(silent_clip, "a cat", K=4, output=output, stage="keyframes", **FAST)
    assert "keyframes" in result.reused and not result.redone


def _ui_session_with_keyframes(tmp_path, indices=(0, 4, 8)):
    import numpy as np

    from rerender.ui.sessions import UiSessions
    from rerender.video import write_image

    session = UiSessions(tmp_path / "ui").get("s")
    session.video = tmp_path / "v.mp4"
    (session.workspace / "keyframes").mkdir(parents=True)
    (session.workspace / "manifest.json").write_text("{}")
    for index in indices:
        write_image(np.full((16, 16, 3), index, np.uint8), session.workspace / "keyframes" / f"{index:04d}.png")
    return session


@pytest.mark.parametrize(("name", "index"), [("0008_v4.png", 8), ("0004 (1).png", 4), ("frame_8.png", 8)])
def test_a_retouched_keyframe_on_the_page_lands_by_the_documented_name_rule(name, index, tmp_path):
    # was: the page took the LAST number of the name, so "0008_v4.png" (version 4 of keyframe 8) replaced
    # keyframe 4, and "0004 (1).png" (a browser's second download) was refused as frame 1
    import numpy as np

    from rerender.ui.runs import use_retouched_keyframes
    from rerender.video import read_image, write_image

    session = _ui_session_with_keyframes(tmp_path)
    painted = tmp_path / "upload" / name
    painted.parent.mkdir()
    write_image(np.full((16, 16, 3), 200, np.uint8), painted)
    assert use_retouched_keyframes(session, [str(painted)]) == 1
    for key in (0, 4, 8):
        expected = 200 if key == index else key
        assert read_image(session.workspace / "keyframes" / f"{key:04d}.png")[0, 0, 0] == expected


def test_an_image_folder_with_gaps_in_its_numbering_is_warned_about(tmp_path, caplog):
    # was: frames 1-3, 5-6, 9-11 read as 8 consecutive frames without a word: the video jumps at 4 and 7-8
    import numpy as np

    from rerender.video import probe_video, write_image

    folder = tmp_path / "render"
    folder.mkdir()
    for number in (1, 2, 3, 5, 6, 9, 10, 11):
        write_image(np.full((8, 8, 3), number, np.uint8), folder / f"frame_{number:04d}.png")
    with caplog.at_level("WARNING"):
        info = probe_video(folder)
    assert info.frame_count == 8
    assert "skip numbers 4, 7–8 (3 missing)" in caplog.text and str(folder) in caplog.text
    complete = tmp_path / "complete"
    complete.mkdir()
    for number in (8, 9, 10, 11):  # not starting at 0 or 1 is no gap
        write_image(np.zeros((8, 8, 3), np.uint8), complete / f"{number}.png")
    caplog.clear()
    with caplog.at_level("WARNING"):
        probe_video(complete)
    assert "skip" not in caplog.text and "not named like" not in caplog.text


def test_an_image_left_beside_the_frames_of_a_folder_is_warned_about(tmp_path, caplog):
    # was: a cover picture among frame_0001.png … frame_0004.png was read, without a word, as the first frame
    import numpy as np

    from rerender.video import probe_video, write_image

    folder = tmp_path / "render"
    folder.mkdir()
    for number in range(1, 5):
        write_image(np.zeros((8, 8, 3), np.uint8), folder / f"frame_{number:04d}.png")
    write_image(np.zeros((8, 8, 3), np.uint8), folder / "cover.jpg")
    with caplog.at_level("WARNING"):
        assert probe_video(folder).frame_count == 5
    assert "holds 1 image not named like its other frames ('cover.jpg')" in caplog.text


def test_output_none_is_refused_without_suggesting_a_stage_the_function_does_not_take(tmp_path):
    # was: animate/generate/propagate_keyframes(output=None) suggested "or stage='keyframes'", an argument none of
    # them has
    import numpy as np

    from rerender.video import write_image

    write_image(np.zeros((64, 64, 3), np.uint8), tmp_path / "still.png")
    calls = {
        "propagate_keyframes": lambda: rerender.propagate_keyframes(tmp_path / "v.mp4", tmp_path, None),
        "animate": lambda: rerender.animate(tmp_path / "still.png", "a cat", output=None, renderer="classic"),
        "generate": lambda: rerender.generate("a cat", output=None),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=r"^`output` is None, but this writes a video; pass output=") as caught:
            call()
        assert "stage" not in str(caught.value), name
    with pytest.raises(ConfigError, match="or stage='keyframes'"):  # translate has stages
        rerender.translate(tmp_path / "v.mp4", "a cat", output=None)


@pytest.mark.parametrize("field", ["seconds", "fps"])
def test_a_cleared_number_box_on_the_still_tab_is_named_not_a_type_error(field, tmp_path):
    # was: "TypeError: float() argument must be a string or a real number, not 'NoneType' (details are in the
    # server log)" for an emptied "Seconds" or "Frame rate" box
    import queue

    import numpy as np

    from rerender.ui.runs import RunRequest, StillRequest, run_animate
    from rerender.ui.sessions import UiSessions
    from rerender.video import write_image

    write_image(np.zeros((64, 64, 3), np.uint8), tmp_path / "still.png")
    sessions = UiSessions(tmp_path / "ui")
    request = RunRequest("all", "classic", {"prompt.prompt": "a cat"})
    still = StillRequest(str(tmp_path / "still.png"), **{"seconds": 1.0, "fps": 10.0, field: None})
    with pytest.raises(ConfigError, match=rf"`{field}` must be a number in .*got None"):
        run_animate(sessions, sessions.get("s"), request, still, queue.Queue())


def test_a_cleared_frame_rate_box_on_the_text_tab_is_named_not_a_type_error(tmp_path):
    from rerender.ui.runs import RunRequest, TextRequest, run_generate
    from rerender.ui.sessions import UiSessions

    sessions = UiSessions(tmp_path / "ui")
    request = RunRequest("all", "diffusion", {"prompt.prompt": "a cat"})
    with pytest.raises(ConfigError, match=r"`fps` must be in \(0, 240\], got None"):
        run_generate(sessions, sessions.get("s"), request, TextRequest(frames=2, size=(64, 64), fps=None))


@pytest.mark.parametrize("typed", ["0 4 8", "0; 4; 8", "[0, 4, 8]", "(0, 4, 8)", " 0,4,8 "])
def test_a_list_typed_in_a_page_box_with_spaces_or_brackets_is_read(typed):
    # was: "`keyframes.keyframe_indices[0]` must be an integer, got '0 4 8'" (and the same for "(0.8, 1)")
    from rerender.ui.runs import RunRequest, build_config

    config = build_config(RunRequest("all", "classic", {"keyframes.keyframe_indices": typed}))
    assert config.keyframes.keyframe_indices == (0, 4, 8)


@pytest.mark.parametrize("typed", ["(0.8, 1)", "0.8 1", "[0.8; 1]"])
def test_a_period_typed_in_a_page_box_with_spaces_or_brackets_is_read(typed):
    from rerender.ui.runs import RunRequest, build_config

    config = build_config(RunRequest("all", "classic", {"constraints.adain_period": typed}))
    assert config.constraints.adain_period == (0.8, 1.0)


def _defined_names(module: Path) -> dict[str, set[str]]:
    """The names a module defines at top level (functions, classes, assignments, imports, `import *`, the string
    keys of a lazy-import table) → for a class, the names in its body."""
    import ast

    names: dict[str, set[str]] = {}
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.names[0].name == "*":
            names.update(_defined_names(REPO.joinpath(*node.module.split(".")).with_suffix(".py")))
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {
                getattr(item, "name", None) or getattr(getattr(item, "target", None), "id", "") for item in node.body
            }
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update({(alias.asname or alias.name).split(".")[0]: set() for alias in node.names})
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update({target.id: set() for target in targets if isinstance(target, ast.Name)})
            if isinstance(node.value, ast.Dict):  # `_LAZY = {"translate": "rerender.workflow.translation", …}`
                names.update({key.value: set() for key in node.value.keys if isinstance(key, ast.Constant)})
    return names


def _resolves(dotted: str) -> bool:
    """Whether a dotted `rerender.…` name exists, read from the sources (importing them all would take seconds)."""
    parts = dotted.split(".")
    folder = REPO / parts[0]
    for position, part in enumerate(parts[1:], start=1):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        module = folder / f"{part}.py"
        if module.is_file():
            rest, source = parts[position + 1 :], module
        else:
            rest, source = parts[position:], folder / "__init__.py"
        if not rest:
            return True
        defined = _defined_names(source)
        return rest[0] in defined and (len(rest) == 1 or rest[1] in defined[rest[0]] or not defined[rest[0]])
    return True


def test_every_dotted_rerender_name_in_the_docs_and_examples_exists():
    # was: the scaling-out guide's `rerender.format_summary(result)`, a name the package does not have
    import re

    pages = [*(REPO / "docs").rglob("*.md"), *(REPO / "examples").glob("*.py")]
    names = {
        match.group(1)
        for page in pages
        for match in re.finditer(r"\b(rerender(?:\.[A-Za-z_]\w*)+)", page.read_text(encoding="utf-8"))
        if not re.search(r"\.(md|py|ya?ml|mp4|png)$", match.group(1))  # file names such as rerender.md
    }
    assert len(names) > 50
    assert [name for name in sorted(names) if not _resolves(name)] == []


def test_the_page_s_keyframe_renderer_is_auto_by_default_as_documented(monkeypatch):
    # was: "diffusion" for `rerender ui` and `build_app()` (the docs: "*auto* by default"), so a newcomer without
    # weights got "diffusion weights missing" on the first press; `rerender ui --set seed=1` gave "auto"
    import rerender.ui
    from rerender.cli import main

    app = rerender.ui.build_app()
    assert app.rerender_page.renderer.value == "auto"
    started = {}

    def fake_launch(*args, defaults=None, **kwargs):
        started["renderer"] = defaults.model.renderer
        raise KeyboardInterrupt  # stop where serving would begin

    monkeypatch.setattr(rerender.ui, "launch", fake_launch)
    main(["ui"])
    assert started == {"renderer": "auto"}


def test_a_photo_given_as_the_video_points_to_animate_and_on_the_page_to_the_still_tab(tmp_path):
    # was: "is a single image; pass the folder that holds the frames", also on the web page, where no folder can
    # be uploaded; a newcomer with one photo wants `rerender animate` / the "Still image" tab
    from types import SimpleNamespace

    import numpy as np

    from rerender.config import RerenderConfig
    from rerender.errors import VideoReadError
    from rerender.ui.runs import PageHandlers
    from rerender.ui.sessions import UiSessions
    from rerender.video import probe_video, write_image

    photo = tmp_path / "holiday photo.jpg"
    write_image(np.zeros((32, 48, 3), np.uint8), photo)
    with pytest.raises(VideoReadError, match="single image, not a video: `rerender animate`"):
        probe_video(photo)
    page = SimpleNamespace(summary="summary", status="status")
    handlers = PageHandlers(page, UiSessions(tmp_path / "ui"), RerenderConfig(), None)
    shown = handlers.on_video(str(photo), SimpleNamespace(session_hash="s"))
    assert "'holiday photo.jpg' is a still image: the “Still image” tab" in shown["status"]
    assert str(tmp_path) not in shown["status"]


def test_a_preset_s_end_frame_past_a_short_clip_says_how_to_read_to_the_end(silent_clip, tmp_path):
    # was: "`video.end_frame` must be ≤ 12 (frames in silent.mp4), got 102" for the configuration guide's own
    # example (configs/real2sculpture.yaml on your clip, then; its framing is now the sample clip's command line),
    # with no word on how to read the whole clip
    with pytest.raises(ConfigError, match=r"got 102; end_frame null reads to the last frame"):
        rerender.translate(silent_clip, "a sculpture", output=tmp_path / "o.mp4", end_frame=102, **FAST)


def test_the_page_names_its_buttons_where_the_library_names_a_stage(silent_clip, tmp_path):
    # was: "`stage` 'propagate' propagates finished keyframes, …; render them first with `stage` 'keyframes', or run
    # `stage` 'all'" on a page whose buttons are "Propagate", "Keyframes" and "Run all"
    import queue

    from rerender.ui.runs import RunRequest, run_stage
    from rerender.ui.sessions import UiSessions
    from rerender.ui.summaries import friendly_error

    sessions = UiSessions(tmp_path / "ui")
    session = sessions.get("s")
    sessions.take_upload(session, silent_clip, "my clip.mp4")
    with session.run():  # the upload becomes the input
        settings = {"prompt.prompt": "a cat", "video.resolution": 64, "flow.flow_estimator": "dis"}
        with pytest.raises(ConfigError) as caught:
            run_stage(sessions, session, RunRequest("propagate", "classic", settings), queue.Queue())
    shown = friendly_error(caught.value, session.names())
    assert (
        shown.startswith("“Propagate” propagates finished keyframes") and "with “Keyframes”, or run “Run all”" in shown
    )
    assert "`stage`" not in shown


def test_keyframe_indices_given_in_python_are_the_keyframes_as_with_keyframes_at(silent_clip, caplog, tmp_path):
    # was: translate(..., keyframe_indices=[0, 5, 9]) kept keyframe_mode 'uniform' and silently rendered keyframes
    # 0, 10, 11 instead (the CLI's --keyframes-at sets the mode); a list the mode ignores is now warned about
    run = {"output": None, "stage": "keyframes", "workspace": tmp_path / "ws", **FAST}
    result = rerender.translate(silent_clip, "a cat", keyframe_indices=[0, 5, 9], **run)
    assert result.keyframe_indices == [0, 5, 9]
    config = rerender.apply_overrides(rerender.RerenderConfig(), {"keyframe_indices": [0, 5]})
    with caplog.at_level("WARNING"):
        rerender.translate(silent_clip, "a cat", config=config, **run)
    assert "`keyframes.keyframe_indices` [0, 5] is ignored: `keyframes.keyframe_mode` is 'uniform'" in caplog.text


def test_an_input_that_is_no_path_is_named_not_a_type_error(tmp_path):
    # was: "TypeError: expected str, bytes or os.PathLike object, not NoneType" (or "not list", "'NoneType' object
    # is not iterable") from translate(None, ...), translate(["a.mp4"], ...), propagate_keyframes, animate, batch,
    # probe_video and read_frames
    calls = {
        "video": lambda: rerender.translate(None, "a cat", output=tmp_path / "o.mp4"),
        "video ": lambda: rerender.translate(["a.mp4"], "a cat", output=tmp_path / "o.mp4"),
        "keyframes": lambda: rerender.propagate_keyframes(tmp_path / "v.mp4", None, tmp_path / "o.mp4"),
        "image": lambda: rerender.animate(None, "a cat", output=tmp_path / "o.mp4", renderer="classic"),
        "jobs": lambda: rerender.batch(None, "a cat", tmp_path / "out", renderer="classic"),
        "path": lambda: rerender.probe_video(None),
        "path ": lambda: rerender.read_frames(3),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=rf"^`{name.strip()}` must be a"):
            call()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"callback": 5}, r"`callback` must be a function callback\(stage, done, total\)"),
        ({"callback": lambda stage, done: None}, r"`callback` must take three arguments \(stage, done, total\)"),
        ({"cancel": True}, r"`cancel` must be a threading.Event"),
    ],
)
def test_a_callback_or_cancel_that_cannot_work_is_refused_before_the_frames_are_decoded(
    arguments, message, silent_clip, tmp_path
):
    # was: "TypeError: 'int' object is not callable", "<lambda>() takes 2 positional arguments but 3 were given" or
    # "AttributeError: 'bool' object has no attribute 'is_set'" once the frames were decoded
    with pytest.raises(ConfigError, match=message):
        rerender.translate(silent_clip, "a cat", output=tmp_path / "o.mp4", **arguments, **FAST)
    assert not (tmp_path / "o.mp4.work").exists()
    with pytest.raises(ConfigError, match=message):
        rerender.propagate_keyframes(silent_clip, tmp_path, tmp_path / "o.mp4", **arguments)


def test_a_keyframe_added_then_removed_again_propagates_the_frames_it_touched_again(silent_clip, tmp_path):
    # was: keys 0, 8, 11, then 0, 4, 8, 11 (frames 1-7 propagated again from key 4), then 0, 8, 11 again: the
    # ledger still held interval 0-8 as done, so frames 1-7 kept key 4's look in the video
    import numpy as np

    from rerender.video import read_frames, write_image

    frames = list(read_frames(silent_clip))
    keys = tmp_path / "keys"
    keys.mkdir()
    for index in (0, 8, 11):
        write_image(255 - frames[index], keys / f"{index:04d}.png")
    run = {"workspace": tmp_path / "ws", "progress": False, "propagation_preset": "fast", "flow_estimator": "dis"}
    rerender.propagate_keyframes(silent_clip, keys, tmp_path / "a.mp4", **run)
    write_image(np.full_like(frames[4], 255), keys / "0004.png")  # a white keyframe at 4, then taken away
    rerender.propagate_keyframes(silent_clip, keys, tmp_path / "b.mp4", **run)
    (keys / "0004.png").unlink()
    rerender.propagate_keyframes(silent_clip, keys, tmp_path / "c.mp4", **run)
    first, last = list(read_frames(tmp_path / "a.mp4")), list(read_frames(tmp_path / "c.mp4"))
    assert all(np.array_equal(a, c) for a, c in zip(first, last))


@pytest.mark.parametrize(
    "changed",
    [{"cpu_offload": True}, {"device": "cpu"}, {"reference_storage": "host"}, {"renderer": "auto"}],
)
def test_resuming_with_an_option_that_only_says_how_to_run_keeps_the_finished_keyframes(
    changed, silent_clip, tmp_path
):
    # was: rerunning after running out of GPU memory with `--set cpu_offload=true` (or on another device, or with
    # the references on the host, or renderer auto that runs the same renderer) logged "redoing keyframes:
    # config changed (model)" and rendered every finished keyframe again
    run = {"output": None, "stage": "keyframes", "workspace": tmp_path / "ws", "K": 4, **FAST}
    rerender.translate(silent_clip, "a cat", **run)
    result = rerender.translate(silent_clip, "a cat", **{**run, **changed})
    assert "keyframes" in result.reused and not result.redone
    result = rerender.translate(silent_clip, "a cat", **{**run, "dtype": "float16"})  # this one changes pixels
    assert result.redone == ["redoing keyframes: config changed (model)"]


def test_eval_of_an_output_made_from_every_other_frame_says_how_to_pair_the_frames(silent_clip, tmp_path):
    # was: "frame counts differ (output 6, source 12); compared the first 6": output frame i (source frame 2i)
    # was compared with source frame i, and the figures were silently wrong
    from rerender.evaluation import evaluate_video
    from rerender.video import read_frames, write_video

    output = tmp_path / "every other.mp4"
    write_video(read_frames(silent_clip, stride=2), output, fps=12.5)
    report = evaluate_video(output, silent_clip, clip_model=None, progress=False)
    assert "pass frame_stride 2 (--frame-stride 2)" in report["note"]
    paired = evaluate_video(output, silent_clip, clip_model=None, progress=False, frame_stride=2)
    assert "note" not in paired and paired["warp_error_excess"] < report["warp_error_excess"]


def test_a_web_page_port_in_use_or_out_of_range_is_named_as_port(capsys):
    # was: Gradio's "Cannot find empty port in range: 7861-7861. You can specify a different port by setting the
    # GRADIO_SERVER_PORT environment variable or passing the `server_port` parameter to `launch()`" (exit 1), and
    # "OverflowError: bind(): port must be 0-65535" for a negative port
    import socket

    from rerender.cli import main
    from rerender.ui import launch

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^`port` {port} cannot be used on 127.0.0.1"):
            launch(port=port)
        assert main(["ui", "--port", str(port)]) == 2
        assert f"--port {port} cannot be used" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"`port` must be a TCP port in \[0, 65535\]"):
        launch(port=-5)


def test_force_with_stage_propagate_is_refused_before_it_deletes_the_keyframes(silent_clip, tmp_path, capsys):
    # was: `--stage propagate --force` started the workspace over (deleting every keyframe), then refused for want
    # of keyframes
    from rerender.cli import main

    run = {"output": tmp_path / "o.mp4", "workspace": tmp_path / "ws", "K": 4, **FAST}
    rerender.translate(silent_clip, "a cat", stage="keyframes", **run)
    keyframes = sorted((tmp_path / "ws" / "keyframes").iterdir())
    with pytest.raises(ConfigError, match=r"^`force=True` starts the workspace over, deleting the keyframes"):
        rerender.translate(silent_clip, "a cat", stage="propagate", force=True, **run)
    assert sorted((tmp_path / "ws" / "keyframes").iterdir()) == keyframes
    command = ["translate", str(silent_clip), "-p", "a cat", "-o", str(tmp_path / "o.mp4"), "--stage", "propagate"]
    assert main([*command, "--force", "--workspace", str(tmp_path / "ws"), "-q"]) == 2
    assert "--force starts the workspace over" in capsys.readouterr().err


def test_a_key_outside_the_frames_with_first_number_1_does_not_advise_first_number_1(silent_clip, tmp_path, capsys):
    # was: "... (frames counted from 1; ... FFmpeg's %04d.png from 1: for those, set --first-number to 1)" to a user
    # who had just set --first-number 1 for a key named 0000.png
    import numpy as np

    from rerender.cli import main
    from rerender.video import write_image

    keys = tmp_path / "keys"
    keys.mkdir()
    write_image(np.zeros((48, 64, 3), np.uint8), keys / "0000.png")
    command = ["propagate", str(silent_clip), "--keyframes", str(keys), "-o", str(tmp_path / "o.mp4"), "-q"]
    assert main([*command, "--first-number", "1"]) == 2
    err = capsys.readouterr().err
    assert "for keys numbered from 0, set --first-number to 0" in err and "to 1" not in err
    write_image(np.zeros((48, 64, 3), np.uint8), keys / "0012.png")
    (keys / "0000.png").unlink()
    assert main(command) == 2
    assert "for keys numbered from 1, set --first-number to 1" in capsys.readouterr().err
