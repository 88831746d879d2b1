"""What a developer who embeds rerender in their own program (a web service, a notebook, a batch script) runs into
through the Python API (tenth round): arguments of the wrong type, config dataclasses built by hand, `pathlib.Path`
values, a pipeline shared by two threads; each case a defect found by doing so, with the behaviour that should have
happened."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import rerender
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs/tiny.yaml")


def _classic(clip, out, **extra):
    options = {"config": TINY, "renderer": "classic", "progress": False}
    return rerender.translate(clip, "a cartoon", output=out, **{**options, **extra})


@pytest.mark.parametrize("entry", ["translate", "animate", "generate", "propagate_keyframes"])
def test_an_output_that_is_no_path_is_a_config_error_naming_output(silent_clip, tmp_path, entry):
    # was: TypeError("expected str, bytes or os.PathLike object, not int") from pathlib, deep in the preflight
    from PIL import Image

    still = tmp_path / "still.png"
    Image.new("RGB", (64, 48)).save(still)
    calls = {
        "translate": lambda: _classic(silent_clip, 5),
        "animate": lambda: rerender.animate(
            still, "x", seconds=0.2, output=5, config=TINY, renderer="classic", progress=False
        ),
        "generate": lambda: rerender.generate("x", frames=2, output=5, progress=False),
        "propagate_keyframes": lambda: rerender.propagate_keyframes(silent_clip, tmp_path, 5, progress=False),
    }
    with pytest.raises(ConfigError, match=r"`output` must be a path \(a str or os.PathLike\), got 5"):
        calls[entry]()
    assert list(tmp_path.iterdir()) == [still]


@pytest.mark.parametrize("entry", ["translate", "animate", "propagate_keyframes"])
def test_a_workspace_that_is_no_path_is_a_config_error_naming_workspace(silent_clip, tmp_path, entry):
    # was: pathlib's TypeError("expected str, bytes or os.PathLike object, not int")
    from PIL import Image

    still, keys = tmp_path / "still.png", tmp_path / "keys"
    Image.new("RGB", (64, 48)).save(still)
    keys.mkdir()
    out = tmp_path / "out.mp4"
    calls = {
        "translate": lambda: _classic(silent_clip, out, workspace=5),
        "animate": lambda: rerender.animate(
            still, "x", seconds=0.2, output=out, workspace=5, config=TINY, renderer="classic", progress=False
        ),
        "propagate_keyframes": lambda: rerender.propagate_keyframes(
            silent_clip, keys, out, workspace=5, progress=False
        ),
    }
    with pytest.raises(ConfigError, match=r"`workspace` must be a path \(a str or os.PathLike\), got 5"):
        calls[entry]()
    assert sorted(tmp_path.iterdir()) == [keys, still]


@pytest.mark.parametrize("flag", ["force", "overwrite", "comparison", "delete_workspace", "progress"])
def test_a_flag_given_as_a_string_is_refused_not_read_as_true(silent_clip, tmp_path, flag):
    # was: force="no" (a truthy string) redid every stage, progress="no" drew the bars, comparison="no" wrote a
    # comparison video: whatever the string said
    with pytest.raises(ConfigError, match=rf"`{flag}` must be True or False, got 'no'"):
        _classic(silent_clip, tmp_path / "out.mp4", **{flag: "no"})
    assert list(tmp_path.iterdir()) == []
    import numpy as np

    from rerender.workflow.context import check_flags

    check_flags(**{flag: np.True_})  # a flag read from an array is a flag (numpy's bool: np.bool_, np.bool)


@pytest.mark.parametrize("flag", ["force", "overwrite", "progress"])
def test_propagate_keyframes_animate_and_generate_refuse_a_flag_given_as_a_string(silent_clip, tmp_path, flag):
    with pytest.raises(ConfigError, match=rf"`{flag}` must be True or False, got 'no'"):
        rerender.propagate_keyframes(
            silent_clip, silent_clip.parent, tmp_path / "o.mp4", **{"progress": False, flag: "no"}
        )
    with pytest.raises(ConfigError, match=rf"`{flag}` must be True or False, got 'no'"):
        rerender.animate(tmp_path / "missing.png", "x", output=tmp_path / "out.mp4", **{"progress": False, flag: "no"})
    if flag != "force":  # generate has no workspace to start over
        with pytest.raises(ConfigError, match=rf"`{flag}` must be True or False, got 'no'"):
            rerender.generate("x", frames=2, output=tmp_path / "out.mp4", **{"progress": False, flag: "no"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("estimator", ["dis", 5])
def test_an_optical_flow_that_is_no_estimator_is_refused_before_any_frame_is_decoded(silent_clip, tmp_path, estimator):
    # was: accepted; the frames and the keyframes were made, then propagation failed with
    # "AttributeError: 'int' object has no attribute 'name'" (and a name such as "dis" likewise)
    message = r"`optical_flow` must be a flow estimator object \(rerender.load_flow_estimator"
    with pytest.raises(ConfigError, match=message):
        _classic(silent_clip, tmp_path / "out.mp4", optical_flow=estimator)
    with pytest.raises(ConfigError, match=message):
        rerender.propagate_keyframes(
            silent_clip, silent_clip.parent, tmp_path / "o.mp4", optical_flow=estimator, progress=False
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", ["translate", "generate"])
def test_a_prompt_translator_that_cannot_be_called_is_refused(silent_clip, tmp_path, entry):
    # was: accepted without a word while the prompt was English (and a TypeError "'str' object is not callable" once
    # a prompt in another language reached it)
    calls = {
        "translate": lambda: _classic(silent_clip, tmp_path / "out.mp4", prompt_translator="opus-mt"),
        "generate": lambda: rerender.generate("x", frames=2, output=tmp_path / "o.mp4", prompt_translator="opus-mt"),
    }
    with pytest.raises(
        ConfigError, match=r"`prompt_translator` must be a function prompt_translator\(text, language\)"
    ):
        calls[entry]()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        (
            "sampling",
            "num_inference_steps",
            "4",
            "`sampling.num_inference_steps` must be a number in [1, 1000], got '4'",
        ),
        ("output", "fps", "25", "`output.fps` must be a number"),
        ("propagation", "workers", "2", "`propagation.workers` must be a number"),
        ("model", "device", 0, "`model.device` must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got 0"),
        ("constraints", "pixel_fusion_period", "ab", "`constraints.pixel_fusion_period` must be a pair (start, end)"),
    ],
)
def test_a_config_section_built_in_python_with_a_wrong_type_is_a_config_error(section, field, value, message):
    # was: TypeError("'<' not supported between instances of 'str' and 'int'") from the range check (and "expected
    # string or bytes-like object" for the device) when the dataclass was built or `dataclasses.replace`d
    from rerender.config import RerenderConfig

    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(getattr(RerenderConfig(), section), **{field: value})
    assert message in str(raised.value)


def test_a_path_object_is_taken_wherever_an_option_names_a_file_or_folder(tmp_path):
    # was: base_model=Path("models/my-sd15") (the natural spelling in Python, where every argument takes a Path)
    # was refused with "`model.base_model` must be a string, got PosixPath(...)"
    from rerender.config import RerenderConfig

    model, style, maps = tmp_path / "my model", tmp_path / "style.png", tmp_path / "edges"
    config = rerender.apply_overrides(
        RerenderConfig(),
        {"base_model": model, "style_image": style, "control": [{"type": "canny", "maps": maps}]},
    )
    assert config.model.base_model == str(model) and config.prompt.style_image == str(style)
    assert config.control[0].maps == str(maps)


@pytest.mark.parametrize("noise_steps", [5, (1,), ("1", "3"), (1.5, 3)])
def test_generate_refuses_noise_steps_that_are_no_pair_of_integers(tmp_path, noise_steps):
    # was: TypeError("'int' object is not subscriptable") for noise_steps=5
    with pytest.raises(ConfigError, match=r"`noise_steps` must be a pair of integers \(i1, i0\)"):
        rerender.generate("x", frames=2, output=tmp_path / "o.mp4", noise_steps=noise_steps, num_inference_steps=4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # three renders (about 2 s on 2 busy cores)
def test_one_pipeline_shared_by_two_threads_renders_each_run_as_if_it_ran_alone(tiny_pipeline_dir, tmp_path):
    # was: a web service that loads one pipeline and translates two requests at once in two threads got the first
    # request's keyframe rendered with the second's cross-frame attention processors (installed on the shared UNet
    # while the first rendered): other pixels than the same request alone, and no word about it
    import threading

    import numpy as np

    from rerender.config import load_config
    from rerender.diffusion import RerenderPipeline
    from rerender.workflow.renderers import DiffusionRenderer

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    config = rerender.apply_overrides(
        load_config(TINY),
        {"num_inference_steps": 2, "seed": 0, "pixel_fusion_period": None, "shape_fusion_period": None},
    )
    frames = [np.full((48, 64, 3), value, np.uint8) for value in (40, 200)]
    cat_stepped, dog_started = threading.Event(), threading.Event()

    def render(prompt: str, folder: Path) -> list[np.ndarray]:
        def on_progress(done: int, total: int) -> None:  # the two runs interleave step by step where they can
            if prompt == "a cat" and done == 1:
                cat_stepped.set()
                dog_started.wait(timeout=0.3)
            elif prompt == "a dog" and done == 1:
                dog_started.set()
                cat_stepped.wait(timeout=0.3)

        folder.mkdir()
        renderer = DiffusionRenderer(pipeline, rerender.apply_overrides(config, {"prompt": prompt}))
        return list(renderer.render(frames, [0, 1], [], folder, on_progress))

    alone = render("a cat", tmp_path / "alone")
    together: dict[str, list[np.ndarray]] = {}
    cat = threading.Thread(target=lambda: together.update(cat=render("a cat", tmp_path / "cat")))
    cat.start()
    cat_stepped.wait(timeout=5)
    together["dog"] = render("a dog", tmp_path / "dog")
    cat.join()
    assert all(np.array_equal(a, b) for a, b in zip(alone, together["cat"], strict=True))
    installed = [type(processor).__name__ for processor in pipeline.unet.attn_processors.values()]
    assert not [name for name in installed if "CrossFrame" in name]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("loras", [{"path": "style.safetensors"}], "`loras` (the pipeline has no LoRA loaded)"),
        ("model.dtype", "float16", "`model.dtype` 'float16' (the pipeline is in float32)"),
    ],
)
def test_a_model_option_the_given_pipeline_does_not_have_is_refused(
    silent_clip, tmp_path, tiny_pipeline_dir, option, value, message
):
    # was: translate(video, prompt, pipeline=pipe, loras=[{"path": "style.safetensors"}]) rendered without the
    # LoRA (and dtype="float16" in float32), without a word: the caller believed it applied
    from rerender.diffusion import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    run = {"output": tmp_path / "o.mp4", "config": TINY, "pipeline": pipeline, "progress": False}
    with pytest.raises(ConfigError) as raised:
        rerender.translate(silent_clip, "x", **run, **{option: value})
    assert f"{message}: options of the model that is loaded, but `pipeline` is given" in str(raised.value)
    assert list(tmp_path.iterdir()) == []
    if option == "model.dtype":  # the settings the pipeline was loaded with pass (one dict for both calls)
        rerender.translate(silent_clip, "x", **{**run, "output": None, "stage": "first"}, dtype="float32", vae=None)


def test_propagate_keyframes_with_the_config_translate_used_does_not_warn_about_model_device(
    silent_clip, tmp_path, caplog
):
    # was: every propagate_keyframes(..., config=<the run's config>) whose file sets model.device (configs/tiny.yaml:
    # cpu; a GPU box's: cuda) warned "`model.device` 'cpu' is where the diffusion model runs, and propagation loads
    # none", a warning meant for a `device=` the caller passed to this call
    import logging

    from rerender.errors import InputNotFoundError

    (tmp_path / "keys").mkdir()
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(InputNotFoundError, match="no keyframes"):
        rerender.propagate_keyframes(silent_clip, tmp_path / "keys", tmp_path / "out.mp4", config=TINY, progress=False)
    assert "model.device" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(InputNotFoundError, match="no keyframes"):
        rerender.propagate_keyframes(
            silent_clip, tmp_path / "keys", tmp_path / "out.mp4", config=TINY, progress=False, device="cuda"
        )
    assert "`model.device` 'cuda' is where the diffusion model runs" in caplog.text


def test_a_workspace_of_another_video_names_force_as_the_python_caller_spells_it(
    silent_clip, synthetic_clip, tmp_path
):
    # was: "... use another workspace, or --force to start it over for this video": a CLI flag, said to a Python
    # caller of `translate`, whose argument is force=True
    from rerender.workflow.workspace import WorkspaceMismatchError

    workspace = tmp_path / "work"
    _classic(silent_clip, None, workspace=workspace, stage="first")
    with pytest.raises(WorkspaceMismatchError, match=r"or `force=True` \(CLI: --force\) to start it over"):
        _classic(synthetic_clip, None, workspace=workspace, stage="first")


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("callback", 5, "`callback` must be a function callback(job_result) or None, got 5"),
        ("ray", 5, "`ray` must be None, 'local', 'auto' or a cluster address 'host:port', got 5"),
        ("output_dir", 5, "`output_dir` must be a path (a str or os.PathLike), got 5"),
        ("parallel", True, "`parallel` must be a whole number ≥ 1, got True"),
    ],
)
def test_batch_refuses_an_argument_of_the_wrong_type_before_any_job_runs(
    silent_clip, tmp_path, argument, value, message
):
    # was: callback=5 ran the first job, then stopped the batch with "TypeError: 'int' object is not callable";
    # ray=5 "AttributeError: 'int' object has no attribute 'split'"; output_dir=5 pathlib's TypeError; parallel=True
    # ran as parallel=1
    options = {"output_dir": tmp_path / "out", "config": TINY, "renderer": "classic", argument: value}
    with pytest.raises(ConfigError) as raised:
        rerender.batch([{"video": silent_clip}], "x", **options)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_batch_takes_a_list_of_video_paths_as_its_jobs(silent_clip, tmp_path):
    # was: batch([Path("a.mp4"), ...]) failed with "TypeError: argument of type 'PosixPath' is not iterable" and
    # batch(["a.mp4", ...]) with "job 1: no `video`; every row needs one" (a string was read as a row of columns)
    import shutil

    from rerender.workflow.batching import load_jobs

    other = Path(shutil.copy(silent_clip, tmp_path / "other.mp4"))
    jobs = load_jobs([silent_clip, str(other)], "x", tmp_path / "out")
    assert [job.video for job in jobs] == [silent_clip, other] and [job.prompt for job in jobs] == ["x", "x"]
    assert [job.output for job in jobs] == [tmp_path / "out" / "silent.mp4", tmp_path / "out" / "other.mp4"]


def test_the_config_functions_refuse_arguments_of_the_wrong_kind_naming_them(tmp_path):
    # was: apply_overrides(None, {"seed": 1}) said "unknown option `seed`; did you mean 'seed'?"; a list of pairs
    # raised AttributeError "'list' object has no attribute 'items'"; save_config({"a": 1}, path) wrote a file that
    # load_config refuses; load_config(5) raised pathlib's TypeError
    from rerender.config import RerenderConfig

    with pytest.raises(ConfigError, match=r"`config` must be a RerenderConfig, got None"):
        rerender.apply_overrides(None, {"seed": 1})
    with pytest.raises(
        ConfigError, match=r"`overrides` must be a mapping of option names to values, got \[\('seed', 1\)\]"
    ):
        rerender.apply_overrides(RerenderConfig(), [("seed", 1)])
    with pytest.raises(ConfigError, match=r"`config` must be a RerenderConfig, got \{'a': 1\}"):
        rerender.save_config({"a": 1}, tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"`path` must be a path \(a str or os.PathLike\), got 5"):
        rerender.load_config(5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "1"}, "`start` must be an integer, got '1'"),
        ({"resolution": "64"}, "`resolution` must be an integer ≥ 1 or None, got '64'"),
        ({"resolution": 32, "size_multiple": 0}, "`size_multiple` must be an integer ≥ 1, got 0"),
        ({"resolution": 32, "resize_side": "wide"}, "`resize_side` must be 'long' or 'short', got 'wide'"),
        ({"info": 5}, "`info` must be a VideoInfo (probe_video's) or None, got 5"),
    ],
)
def test_read_frames_refuses_options_of_the_wrong_kind_with_a_config_error(silent_clip, options, message):
    # was: TypeError "'<' not supported between instances of 'str' and 'int'" for start="1" (and for
    # resolution="64" an operand TypeError), a plain ValueError (no RerenderError) for resize_side, AttributeError
    # for info=5
    with pytest.raises(ConfigError) as raised:
        next(rerender.read_frames(silent_clip, **options))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("frames", "options", "error", "message"),
    [
        ("gray", {}, "FlowInputError", "`frame` must be an (H, W, 3) RGB array, got shape (48, 64)"),
        ("float", {}, "FlowInputError", "`frame` must have dtype uint8 (0–255), got float32"),
        ("mixed", {}, "FlowInputError", "every frame must be 64×48, got 32×32 at frame 1"),
        ("none", {}, "ConfigError", "no frames were written to"),
        ("rgb", {"fps": 0}, "ConfigError", "`fps` must be a number > 0, got 0"),
        ("rgb", {"crf": "18"}, "ConfigError", "`crf` must be an integer in [0, 51], got '18'"),
        ("rgb", {"timestamps": [0.0]}, "ConfigError", "`timestamps` holds 1 times but more frames were given"),
    ],
)
def test_write_video_raises_rerender_errors_for_bad_frames_and_options(tmp_path, frames, options, error, message):
    # was: plain ValueErrors (no RerenderError: `except rerender.RerenderError` let them through) and, for a crf
    # given as a string, TypeError "'<=' not supported between instances of 'int' and 'str'"
    import numpy as np

    from rerender import errors

    rgb = np.zeros((48, 64, 3), np.uint8)
    given = {
        "gray": [rgb[..., 0]],
        "float": [rgb.astype(np.float32)],
        "mixed": [rgb, np.zeros((32, 32, 3), np.uint8)],
        "none": [],
        "rgb": [rgb, rgb],
    }[frames]
    with pytest.raises(getattr(errors, error)) as raised:
        rerender.write_video(given, tmp_path / "out.mp4", **{"fps": 25, **options})
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_load_pipeline_takes_a_model_folder_as_from_pretrained_does(tiny_pipeline_dir):
    # was: rerender.load_pipeline("models/my-sd15") (as diffusers' from_pretrained is called) raised
    # "AttributeError: 'str' object has no attribute 'family'"
    pipeline = rerender.load_pipeline(tiny_pipeline_dir, (), device="cpu")
    assert pipeline.family == "sd15" and pipeline.controlnets == []


@pytest.mark.parametrize(
    ("model", "controls", "message"),
    [
        ("config", (), "`model` must be a ModelConfig (config.model, with config.control as `controls`)"),
        (
            "model",
            [{"type": "canny"}],
            "`controls` must be ControlConfig objects (config.control), got [{'type': 'canny'}]",
        ),
    ],
)
def test_load_pipeline_refuses_a_whole_config_or_controls_as_dicts(model, controls, message):
    # was: AttributeError "'RerenderConfig' object has no attribute 'family'" and "'dict' object has no attribute
    # 'model'"
    from rerender.config import ModelConfig, RerenderConfig

    given = RerenderConfig() if model == "config" else ModelConfig()
    with pytest.raises(ConfigError) as raised:
        rerender.load_pipeline(given, controls)
    assert message in str(raised.value)


def test_a_rerun_with_delete_workspace_replaces_its_own_comparison_video(silent_clip, tmp_path):
    # was: translate(..., comparison=True, delete_workspace=True) twice (a service re-running a request): the
    # second call was refused, "'…_comparison.mp4' exists and was not written by rerender for this workspace",
    # though rerender wrote it (and tagged it so); only the deleted workspace's record was trusted
    from rerender.video import probe_video

    run = {"comparison": True, "delete_workspace": True, "end_frame": 3}
    first = _classic(silent_clip, tmp_path / "out.mp4", **run)
    again = _classic(silent_clip, tmp_path / "out.mp4", **run)
    assert again.previews["comparison"] == first.previews["comparison"] == tmp_path / "out_comparison.mp4"
    assert probe_video(again.previews["comparison"]).frame_count == again.frame_count == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4", "out_comparison.mp4"]


def test_animate_stops_at_its_cancel_event_as_translate_does(tmp_path):
    # was: animate had no `cancel` (cancel=event was read as an unknown config option), so the web page's Stop
    # in the "Still image" mode could not stop a run: the page waited for it to finish
    import threading

    from PIL import Image

    from rerender.errors import CancelledError

    still = tmp_path / "still.png"
    Image.new("RGB", (64, 48), (200, 80, 40)).save(still)
    cancel = threading.Event()

    def stop_in_propagation(stage: str, done: int, total: int) -> None:
        if stage == "propagation":
            cancel.set()

    run = {"seconds": 0.4, "fps": 10, "config": TINY, "renderer": "classic", "progress": False}
    with pytest.raises(CancelledError, match="cancelled during the propagation stage"):
        rerender.animate(still, "x", output=tmp_path / "out.mp4", callback=stop_in_propagation, cancel=cancel, **run)
    assert not (tmp_path / "out.mp4").exists()
    cancel.clear()
    resumed = rerender.animate(still, "x", output=tmp_path / "out.mp4", cancel=cancel, **run)
    assert "keyframes" in resumed.translation.reused and resumed.output.is_file()


def test_one_option_given_twice_with_two_values_is_refused_not_decided_by_order(silent_clip, tmp_path):
    # was: translate(video, prompt, K=4, keyframe_interval=8) ran with K=4 and apply_overrides(config, {"seed": 1,
    # "sampling.seed": 2}) with seed 2: whichever came last, without a word
    from rerender.config import RerenderConfig

    with pytest.raises(ConfigError, match=r"`K` 4 and `keyframe_interval` 8 both set keyframes.keyframe_interval"):
        _classic(silent_clip, tmp_path / "out.mp4", K=4, keyframe_interval=8)
    with pytest.raises(ConfigError, match=r"`seed` 1 and `sampling.seed` 2 both set sampling.seed; give one"):
        rerender.apply_overrides(RerenderConfig(), {"seed": 1, "sampling.seed": 2})
    assert rerender.apply_overrides(RerenderConfig(), {"seed": 1, "sampling.seed": 1}).sampling.seed == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [-1, 0, float("nan"), "abc", True])
def test_probe_video_refuses_an_image_sequence_fps_that_is_no_positive_number(tmp_path, fps):
    # was: -1 gave a folder of frames -1 fps and a negative duration, 0 silently 25 fps, True 1 fps, NaN and 'abc'
    # plain ValueErrors from Fraction
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "0000.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "0001.png")
    with pytest.raises(ConfigError, match=r"`image_sequence_fps` must be a number > 0 or None \(25\), got"):
        rerender.probe_video(tmp_path, image_sequence_fps=fps)
    assert rerender.probe_video(tmp_path, image_sequence_fps=12.5).fps == 12.5
