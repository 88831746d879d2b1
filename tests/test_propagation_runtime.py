"""How propagation runs: threads in the calling process, streaming, per-frame progress, per-interval resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest

import rerender.workflow.stages
from rerender.propagation import PropagationOptions, propagate_video, propagate_video_iter
from rerender.video import read_image
from rerender.workflow.stages import key_intervals
from rerender.workflow.translation import ClassicRenderer, translate

REPO = Path(__file__).resolve().parents[1]
FAST = dict(resolution=64, size_multiple=16, propagation_preset="fast", flow_estimator="dis", dis_preset="fast")


def stylise(frame: np.ndarray) -> np.ndarray:
    return ((255 - frame[..., ::-1]) // 40 * 40 + 20).astype(np.uint8)


def exact_flow(shift: tuple[int, int]):
    """Flow of a window sliding by ``shift`` (x, y) pixels per frame, both directions."""

    def flow(source, target):
        forward = np.broadcast_to(np.array([-shift[0], -shift[1]], np.float32), source.shape[:2] + (2,))
        return forward.copy(), -forward

    return flow


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """25 frames of a window sliding 1 px/frame right over a smooth random texture."""
    rng = np.random.default_rng(1)
    world = cv2.GaussianBlur(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(world[8:40, 4 + t : 4 + t + 40]) for t in range(25)]


KEYS = (3, 9, 14, 20)  # frames before the first key and after the last one too


def keys_of(clip):
    return {index: stylise(clip[index]) for index in KEYS}


def test_any_worker_count_gives_the_frames_of_one_worker(clip):
    options = PropagationOptions.preset("fast", seed=3)
    reference = propagate_video(
        clip, keys_of(clip), flow=exact_flow((1, 0)), options=options, progress=False, workers=1
    )
    for workers in (2, 3, 5):
        output = propagate_video(
            clip, keys_of(clip), flow=exact_flow((1, 0)), options=options, progress=False, workers=workers
        )
        for index, (one, other) in enumerate(zip(reference, output)):
            np.testing.assert_array_equal(one, other, err_msg=f"frame {index}, workers={workers}")
    # the frames really were propagated: close to the per-frame style, keys exactly as given
    assert all(np.array_equal(reference[index], stylise(clip[index])) for index in KEYS)
    assert np.mean(np.abs(reference[6].astype(int) - stylise(clip[6]).astype(int))) < 20


@pytest.mark.parametrize("workers", [1, 2])
def test_callback_advances_per_frame_and_reaches_total_without_a_bar(clip, workers):
    calls = []
    propagate_video(
        clip,
        keys_of(clip),
        flow=exact_flow((1, 0)),
        options=PropagationOptions.preset("fast"),
        progress=False,
        workers=workers,
        callback=lambda *args: calls.append(args),
    )
    total = len(clip) - len(KEYS)
    assert calls == [("propagation", done, total) for done in range(1, total + 1)]


class TrackedFrames:
    """A lazy frame sequence that hands out fresh arrays and tracks which of them are still alive."""

    def __init__(self, frames):
        self.frames, self.alive = frames, weakref.WeakValueDictionary()
        self.served = 0

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, index):
        frame = self.frames[index].copy()
        self.alive[self.served] = frame
        self.served += 1
        return frame


def test_streaming_holds_at_most_one_interval(clip):
    frames = TrackedFrames(clip * 2)  # 50 frames, keys every 6: 9 intervals
    key_indices = list(range(0, 50, 6)) + [49]
    keys = {index: stylise(frames.frames[index]) for index in key_indices}
    longest = max(end - start + 1 for start, end in key_intervals(key_indices, 50))
    outputs = weakref.WeakValueDictionary()
    seen = []
    for index, image in propagate_video_iter(
        frames, keys, flow=exact_flow((0, 0)), options=PropagationOptions.preset("fast"), progress=False, workers=2
    ):
        seen.append(index)
        outputs[index] = image
        del image  # arrays hold no reference cycles: freed at once, no gc needed
        assert len(frames.alive) <= longest, f"{len(frames.alive)} source frames held at frame {index}"
        assert len(outputs) <= longest, f"{len(outputs)} output frames held at frame {index}"
    assert seen == list(range(50)) and frames.served >= 50


def test_snippet_without_main_guard_runs_from_stdin(silent_clip, tmp_path):
    """The README's kind of snippet, piped to `python -`: no spawn pool, so no `__main__` guard needed."""
    snippet = textwrap.dedent(f"""
        import rerender
        from rerender.workflow.renderers import ClassicRenderer
        result = rerender.translate({str(silent_clip)!r}, "a cartoon", K=5, output={str(tmp_path / "out.mp4")!r},
                                    renderer=ClassicRenderer("a cartoon"), progress=False, workers=2,
                                    resolution=64, size_multiple=16, propagation_preset="fast", flow_estimator="dis")
        print("frames", result.frame_count)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-"], input=snippet, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["frames", "12"]
    assert (tmp_path / "out.mp4").is_file()


def test_interrupted_propagation_keeps_finished_intervals(synthetic_clip, tmp_path, monkeypatch):
    common = dict(
        K=4, renderer=ClassicRenderer("a cartoon"), progress=False, workers=2, last_frame_keyframe=False, **FAST
    )
    reference = translate(synthetic_clip, "x", output=tmp_path / "ref.mp4", workspace=tmp_path / "ref", **common)
    real_write = rerender.workflow.stages.write_image
    written = []

    def interrupted_write(image, path):
        if "propagated" in str(path):
            if len(written) == 11:
                raise KeyboardInterrupt  # as Ctrl-C, in the middle of the third interval
            written.append(int(Path(path).stem))
        return real_write(image, path)

    monkeypatch.setattr(rerender.workflow.stages, "write_image", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        translate(synthetic_clip, "x", output=tmp_path / "o.mp4", workspace=tmp_path / "ws", **common)
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    assert sorted(manifest["stages"]["propagation"]["intervals"]) == [
        "0-4",
        "4-8",
    ]  # each kept with its keyframe digests
    monkeypatch.setattr(rerender.workflow.stages, "write_image", real_write)

    calls = []
    propagated_before = {
        index: (tmp_path / "ws" / "propagated" / f"{index:04d}.png").stat().st_mtime_ns for index in range(9)
    }
    translate(
        synthetic_clip,
        "x",
        output=tmp_path / "o.mp4",
        workspace=tmp_path / "ws",
        callback=lambda *args: calls.append(args),
        **common,
    )
    propagation = [call for call in calls if call[0] == "propagation"]
    # the bar starts at the 9 kept frames plus the other keyframes (12, 16), and reaches every frame
    assert propagation[0] == ("propagation", 11, 20) and propagation[-1] == ("propagation", 20, 20)
    assert [done for _, done, _ in propagation] == list(range(11, 21))
    for index in range(9):  # kept, not recomputed
        path = tmp_path / "ws" / "propagated" / f"{index:04d}.png"
        assert path.stat().st_mtime_ns == propagated_before[index]
    for index in range(20):  # and the resumed run equals the uninterrupted one
        np.testing.assert_array_equal(
            read_image(tmp_path / "ws" / "propagated" / f"{index:04d}.png"),
            read_image(reference.workspace / "propagated" / f"{index:04d}.png"),
        )


def test_key_intervals_cover_every_frame_once_between_bounds():
    assert key_intervals([3, 9], 12) == [(0, 3), (3, 9), (9, 11)]
    assert key_intervals([0, 5], 6) == [(0, 5)]
    assert key_intervals([0], 1) == [(0, 0)]


def test_eval_reports_progress_per_frame(synthetic_clip, tmp_path, capsys):
    from rerender.cli import main
    from rerender.evaluation import evaluate_video

    calls = []
    report = evaluate_video(
        synthetic_clip,
        synthetic_clip,
        clip_model=None,
        max_frames=6,
        progress=False,
        callback=lambda *args: calls.append(args),
    )
    assert report["frames"] == 6 and calls == [("evaluation", done, 6) for done in range(1, 7)]
    assert capsys.readouterr().err == ""  # progress=False draws nothing
    assert main(["eval", str(synthetic_clip), "--source", str(synthetic_clip), "--no-clip", "--max-frames", "4"]) == 0
    assert "evaluating" in capsys.readouterr().err  # the CLI draws the bar
    assert (
        main(["eval", str(synthetic_clip), "--source", str(synthetic_clip), "--no-clip", "--max-frames", "4", "-q"])
        == 0
    )
    assert "evaluating" not in capsys.readouterr().err


def test_kernels_from_many_threads_never_abort_and_agree(tmp_path):
    """Plain threads calling `synthesize` at once (no `serial_kernels`): numba's workqueue layer would abort."""
    script = textwrap.dedent("""
        import concurrent.futures
        import numpy as np
        from ebsynth_bridge import Guide, synthesize

        rng = np.random.default_rng(0)
        source = rng.integers(0, 256, (40, 48, 3), np.uint8)
        target, style = np.roll(source, 2, axis=1), rng.integers(0, 256, (40, 48, 3), np.uint8)

        def run(seed):
            return synthesize(style, [Guide(source, target)], pyramid_levels=2, seed=seed).image

        alone = [run(seed) for seed in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            together = list(pool.map(run, range(6)))
        assert all(np.array_equal(a, b) for a, b in zip(alone, together))
        assert not np.array_equal(alone[0], alone[1])  # seeds matter: the comparison is not vacuous
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": "2", "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_resume_around_a_kept_interval_counts_every_frame_once(synthetic_clip, tmp_path):
    common = dict(
        K=4, renderer=ClassicRenderer("a cartoon"), progress=False, workers=1, last_frame_keyframe=False, **FAST
    )
    translate(synthetic_clip, "x", output=tmp_path / "o.mp4", workspace=tmp_path / "ws", **common)
    manifest_path = tmp_path / "ws" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # as if the run had stopped with only the interval 4–8 kept: two runs to propagate, before and after it
    recorded = manifest["stages"]["propagation"]["intervals"]
    manifest["stages"]["propagation"].update(done=False, intervals={"4-8": recorded["4-8"]})
    manifest_path.write_text(json.dumps(manifest))
    kept = (tmp_path / "ws" / "propagated" / "0006.png").stat().st_mtime_ns
    calls = []
    translate(
        synthetic_clip,
        "x",
        output=tmp_path / "o.mp4",
        workspace=tmp_path / "ws",
        callback=lambda *args: calls.append(args),
        **common,
    )
    done = [done for stage, done, total in calls if stage == "propagation"]
    assert done == list(range(8, 21))  # 5 kept frames + keys 0, 12, 16, then one step per propagated frame
    assert (tmp_path / "ws" / "propagated" / "0006.png").stat().st_mtime_ns == kept
    intervals = json.loads(manifest_path.read_text())["stages"]["propagation"]["intervals"]
    assert sorted(intervals, key=lambda name: int(name.split("-")[0])) == ["0-4", "4-8", "8-12", "12-16", "16-19"]


def test_every_parallel_kernel_has_a_serial_twin():
    """A bare `parallel=True` kernel would abort the process when propagation's pool threads call it."""
    import importlib
    import pkgutil

    import numba.core.registry

    import ebsynth_bridge
    from ebsynth_bridge.patchmatch import _Kernel

    bare, twins = [], 0
    for module_info in pkgutil.iter_modules(ebsynth_bridge.__path__):
        module = importlib.import_module(f"ebsynth_bridge.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, _Kernel):
                twins += 1
                assert not value.serial.targetoptions.get("parallel") and value.serial.targetoptions.get("nogil")
            elif isinstance(value, numba.core.registry.CPUDispatcher) and value.targetoptions.get("parallel"):
                bare.append(f"{module.__name__}.{name}")
    assert twins >= 4 and not bare, f"decorate these with patchmatch._kernel: {bare}"


@pytest.mark.parametrize("workers", [1, 2])
def test_next_interval_flows_are_estimated_while_the_pool_runs(clip, workers):
    """The calling thread prepares interval n + 1 (frames, flows) before it waits for interval n's passes."""
    keys = {index: stylise(clip[index]) for index in (0, 6, 12, 18, 24)}  # four intervals of six frame pairs
    calls = []
    shift = exact_flow((1, 0))

    def counting_flow(source, target):
        calls.append((source, target))
        return shift(source, target)

    frames = propagate_video_iter(
        clip, keys, flow=counting_flow, options=PropagationOptions.preset("fast"), progress=False, workers=workers
    )
    next(frames)
    # one flow call per frame pair: the first interval's 6 and the next one's 6, not the third's
    assert len(calls) == 12
    assert len(list(frames)) == len(clip) - 1 and len(calls) == 24


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_flow_still_yields_every_interval_before_it(clip, workers):
    keys = {index: stylise(clip[index]) for index in (0, 6, 12, 18, 24)}
    shift = exact_flow((1, 0))

    def flow(source, target):
        if np.array_equal(target, clip[14]):  # a pair of the third interval
            raise RuntimeError("flow model failed")
        return shift(source, target)

    seen = []
    with pytest.raises(RuntimeError, match="flow model failed"):
        for index, _ in propagate_video_iter(
            clip, keys, flow=flow, options=PropagationOptions.preset("fast"), progress=False, workers=workers
        ):
            seen.append(index)
    assert seen == list(range(13))  # both earlier intervals, up to and with the key they share with the third
