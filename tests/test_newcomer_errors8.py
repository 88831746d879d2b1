"""What a new user runs into (eighth round): stills and text turned into videos, job lists as spreadsheets save
them, prompts from sound and in other languages, `eval` on outputs that differ from their source, and the sound
and container of what we write, each with the behaviour that should have happened."""

from __future__ import annotations

from pathlib import Path

import pytest

import rerender
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FAST = {"renderer": "classic", "resolution": 64, "size_multiple": 8, "flow_estimator": "dis", "progress": False}


def test_a_job_list_cell_typed_on_two_lines_keeps_its_line_break_and_a_home_output_is_expanded(
    silent_clip, tmp_path, monkeypatch
):
    # was: the CSV was split into lines before the csv module read it, so a quoted prompt typed on two lines in a
    # spreadsheet lost its line break ("a cat,with a hat"); and an `output` of "~/x.mp4" was written under
    # OUTPUT_DIR/~/x.mp4 while a `video` of "~/..." was expanded
    from rerender.workflow.batching import load_jobs

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    jobs = tmp_path / "jobs.csv"
    jobs.write_bytes(f'\ufeffvideo,prompt,output\r\n"{silent_clip}","a cat,\r\nwith a hat",~/x.mp4\r\n'.encode())
    (job,) = load_jobs(jobs, None, tmp_path / "out")
    assert job.prompt == "a cat,\nwith a hat"
    assert job.output == tmp_path / "home" / "x.mp4"


@pytest.mark.parametrize("command", ["animate", "generate"])
def test_an_output_suffix_we_cannot_write_names_the_output_flag(command, tmp_path, capsys):
    # was: `rerender animate photo.png -o out.gif` said "output 'out.gif' has the suffix '.gif'" where translate
    # says "-o/--output 'out.gif' ...": the library's message named no argument, so the CLI could not name its flag
    import numpy as np

    from rerender.cli import main
    from rerender.video import write_image

    still = write_image(np.full((32, 32, 3), 128, np.uint8), tmp_path / "still.png")
    output = tmp_path / "out.gif"
    source = [str(still)] if command == "animate" else []
    code = main([command, *source, "-p", "a cat", "-o", str(output), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: -o/--output '{output}' has the suffix '.gif'"), err
    assert not list(tmp_path.glob("out*"))


def test_eval_of_an_output_made_from_every_other_frame_from_a_later_start_says_how_to_pair_them(tmp_path):
    # was: an output of `--start-frame 4 --frame-stride 2` (8 frames at 12.5 fps from 20 at 25 fps) was paired
    # frame by frame with the source and the note gave no hint: the stride was guessed from the counts only
    # (round(20 / 8) = 2, but 10 ≠ 8 frames), though the frame rates say it exactly
    import numpy as np

    from rerender.evaluation import evaluate_video
    from rerender.video import write_video

    ramp = [np.full((32, 32, 3), 10 * index, np.uint8) for index in range(20)]
    source = write_video(ramp, tmp_path / "source.mp4", fps=25)
    output = write_video(ramp[4::2], tmp_path / "output.mp4", fps=12.5)
    report = evaluate_video(output, source, clip_model=None, progress=False)
    assert "pass frame_stride 2 (--frame-stride 2)" in report["note"], report["note"]
    assert "later part of the source, pass its first source frame as start_frame (--start-frame)" in report["note"]
    paired = evaluate_video(output, source, clip_model=None, progress=False, start_frame=4, frame_stride=2)
    assert "note" not in paired and paired["warp_error_excess"] < report["warp_error_excess"]


def test_a_prompt_in_vietnamese_without_its_translator_offline_names_the_english_flag_once(tmp_path, capsys):
    # was: "... or write the prompt in English with --prompt-language 'en' (--prompt-language en)": the library's
    # "`prompt.prompt_language` 'en' (--prompt-language en)" became the flag twice on the CLI
    from rerender.cli import main

    output = tmp_path / "out.mp4"
    code = main(["generate", "-p", "một con mèo", "--prompt-language", "vi", "--frames", "2", "-o", str(output), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Helsinki-NLP/opus-mt-vi-en" in err and "cannot be downloaded now (offline)" in err, err
    assert "write the prompt in English with --prompt-language en;" in err, err
    assert not output.exists()


def _clip_with_sound(path: Path, codec: str, frames: int = 8, fps: int = 25, rate: int = 48000) -> Path:
    """A `frames`-frame 32×32 H.264 clip with a 440 Hz tone in `codec`, written with PyAV."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="mono")
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * index, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        size, total, done = audio.codec_context.frame_size or 1024, rate * frames // fps, 0
        kind = np.int16 if audio.codec_context.format.name.startswith("s16") else np.float32
        scale = 8000 if kind is np.int16 else 0.25
        while done < total:
            count = min(size, total - done)
            tone = (scale * np.sin(2 * np.pi * 440 * np.arange(done, done + count) / rate)).astype(kind)
            sound = av.AudioFrame.from_ndarray(tone[None], format=audio.codec_context.format.name, layout="mono")
            sound.sample_rate, sound.pts = rate, done
            done += count
            container.mux(audio.encode(sound))
        container.mux(audio.encode())
    return path


@pytest.mark.parametrize(("codec", "suffix"), [("libopus", ".mov"), ("flac", ".mov"), ("libopus", ".m4v")])
def test_the_sound_of_a_source_the_container_cannot_hold_is_reencoded_not_a_failure_after_the_work(
    codec, suffix, tmp_path
):
    # was: the sound of an .mkv with Opus or FLAC audio was copied into a .mov or .m4v output as it is, which
    # QuickTime's muxer refuses: every frame was rendered, then "Invalid argument ... returned 22" (.mov) or
    # "'ipod' format does not support 'opus' codec" (.m4v), and no output
    import av
    import numpy as np

    from rerender.video import write_video

    source = _clip_with_sound(tmp_path / f"source-{codec}.mkv", codec)
    frames = [np.full((32, 32, 3), 20 * index, np.uint8) for index in range(8)]
    output = write_video(frames, tmp_path / f"out{suffix}", fps=25, audio_from=source)
    with av.open(str(output)) as container:
        (audio,) = container.streams.audio
        assert audio.codec_context.name == "aac"
        packets = [packet for packet in container.demux(audio) if packet.size]
        end = max(float((packet.pts + packet.duration) * packet.time_base) for packet in packets)
    assert abs(end - 8 / 25) < 0.05  # the sound lasts as long as the 8 frames at 25 fps


def test_a_folder_of_videos_copied_from_a_mac_makes_no_job_of_the_hidden_resource_forks(silent_clip, tmp_path):
    # was: a folder copied from a Mac onto a USB disk holds "._clip.mp4" beside "clip.mp4" (4 KB of metadata);
    # the batch made a job of it, which failed as "not a readable video" in the summary of every run
    import shutil

    from rerender.workflow.batching import load_jobs

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(silent_clip, clips / "clip.mp4")
    (clips / "._clip.mp4").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    (clips / ".clip.3f2a.partial.mp4").write_bytes(bytes(64))  # what a crashed run leaves
    assert [job.video.name for job in load_jobs(clips, "a cat", tmp_path / "out")] == ["clip.mp4"]


def test_a_still_too_large_to_read_says_how_large_a_still_may_be(tmp_path, monkeypatch, capsys):
    # was: a 196-megapixel panorama was refused as "too large to read safely (... could be decompression bomb DOS
    # attack.)" with nothing the photographer could do about it
    import numpy as np
    from PIL import Image

    from rerender.cli import main
    from rerender.video import write_image

    still = write_image(np.full((64, 64, 3), 128, np.uint8), tmp_path / "panorama.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses more than twice this: 64² = 4096 pixels
    code = main(["animate", str(still), "-p", "a cat", "-o", str(tmp_path / "out.mp4"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "too large to read safely" in err and "downscale it to at most 0.002 megapixels first" in err


def test_a_job_list_saved_by_a_spreadsheet_with_capitalised_headers_and_empty_rows_reads_as_its_jobs(
    silent_clip, tmp_path
):
    # was: "Video,Prompt" (a spreadsheet's capitalised header) was refused as having no `video` column, and the
    # ",," rows a spreadsheet writes below a table once cells there were formatted were refused as jobs with no
    # `video`
    from rerender.workflow.batching import load_jobs

    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"Video,Prompt,denoising_strength\n{silent_clip},a cat,0.5\n,,\n,,\n", encoding="utf-8")
    (job,) = load_jobs(jobs, None, tmp_path / "out")
    assert (job.video, job.prompt, dict(job.overrides)) == (silent_clip, "a cat", {"denoising_strength": 0.5})
    listed = tmp_path / "jobs.yaml"
    listed.write_text(f"- Video: {silent_clip}\n  Output: x.mp4\n", encoding="utf-8")
    (job,) = load_jobs(listed, "a dog", tmp_path / "out")
    assert (job.video, job.output, job.prompt) == (silent_clip, tmp_path / "out" / "x.mp4", "a dog")


def test_eval_of_a_cropped_output_says_the_source_is_stretched_to_it(tmp_path):
    # was: an output made with `video.crop` (64×32 from a 64×64 source) was compared with the whole source squeezed
    # to 64×32, without a word, so its warp error read far above what it is
    import numpy as np

    from rerender.evaluation import evaluate_video
    from rerender.video import write_video

    frames = [np.full((64, 64, 3), 10 * index, np.uint8) for index in range(3)]
    source = write_video(frames, tmp_path / "source.mp4", fps=25)
    cropped = write_video([frame[16:48] for frame in frames], tmp_path / "cropped.mp4", fps=25)
    report = evaluate_video(cropped, source, clip_model=None, progress=False)
    assert "the output's shape (64×32) is not the source's (64×64)" in report["note"], report
    same = evaluate_video(source, source, clip_model=None, progress=False)
    assert "note" not in same


def test_animating_the_same_still_again_with_another_move_starts_its_translation_over(tmp_path):
    # was: a second `rerender animate still.png --motion pan-up -o out.mp4` after a zoom-in into the same output was
    # refused: "the workspace 'out.mp4.work' holds work for another video ('out.mp4.clip', not 'out.mp4.clip')"
    import numpy as np

    from rerender.video import probe_video, read_frames, write_image

    rng = np.random.default_rng(0)
    still = write_image(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), tmp_path / "still.png")
    output = tmp_path / "out.mp4"
    run = {"seconds": 0.3, "fps": 10, "output": output, "clip_output": None, **FAST}
    rerender.animate(still, "a cat", motion="zoom-in", **run)
    first = np.stack(list(read_frames(output)))
    again = rerender.animate(still, "a cat", motion="zoom-in", **run)
    assert "keyframes" in again.translation.reused  # the same clip: its work is kept
    result = rerender.animate(still, "a cat", motion="pan-up", amount=0.5, **run)
    assert probe_video(result.output).frame_count == 3
    assert np.abs(np.stack(list(read_frames(output))).astype(int) - first).mean() > 1  # the new move is what shows


def test_a_pan_amount_out_of_range_says_what_a_pan_s_amount_is(tmp_path):
    # was: `--motion pan-left --amount 5` said "must be in (0, 3] (the zoom gained, 0.25 = ×1.25)": a zoom's words
    from rerender.camera import motion_path

    with pytest.raises(ConfigError, match=r"`amount` of 'pan-left' must be in \(0, 3\] \(the zoom the pan crosses"):
        motion_path("pan-left", 4, (64, 48), 5.0)
    with pytest.raises(ConfigError, match=r"`amount` of 'zoom-in' must be in \(0, 3\] \(the zoom gained"):
        motion_path("zoom-in", 4, (64, 48), 5.0)


def test_eval_with_too_few_paired_frames_says_which_side_is_short_naming_the_flags(tmp_path, capsys):
    # was: `rerender eval out.mp4 --source in.mp4 --start-frame 50` on a 4-frame source said "evaluation needs at
    # least 2 paired frames, got 0", not that the start is past the source's end
    import numpy as np

    from rerender.cli import main
    from rerender.video import write_video

    frames = [np.full((32, 32, 3), 10 * index, np.uint8) for index in range(4)]
    source = write_video(frames, tmp_path / "source.mp4", fps=25)
    code = main(["eval", str(source), "--source", str(source), "--no-clip", "-q", "--start-frame", "50"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "got 0: the output has 4, and the source 0 from --start-frame 50 by --frame-stride 1 (of its 4" in err


def test_a_negative_prompt_in_korean_read_as_english_is_warned_about(caplog):
    # was: `-p "a cat" -n "흐릿한 사진"` (a Korean negative prompt, `prompt_language` 'en') went to the text encoder
    # untranslated without a word; only a prompt in another language was warned about
    import logging

    from rerender.languages import translate_prompt

    with caplog.at_level(logging.WARNING, logger="rerender.languages"):
        record = translate_prompt("a cat", "en", None, None, "흐릿한 사진")
    assert record.negative_english == "흐릿한 사진"
    warned = [r.getMessage() for r in caplog.records if "negative prompt looks like Korean (ko)" in r.getMessage()]
    assert len(warned) == 1 and "--prompt-language auto" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender.languages"):
        translate_prompt("a cat", "en", None, None, "blurry, low quality")
    assert not caplog.records


def test_an_animated_gif_given_to_animate_is_warned_about_before_work(tmp_path, caplog):
    # was: `rerender animate party.gif` animated the GIF's first frame without a word: its own motion was dropped
    import logging

    import numpy as np
    from PIL import Image

    from rerender.workflow.animation import read_still

    frames = [Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)) for index in range(3)]
    animated = tmp_path / "party.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.animation"):
        still = read_still(animated)
        read_still(tmp_path / "still.gif")
    assert still.shape == (16, 16, 3) and still.max() == 0  # the first frame
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "party.gif is animated (3 frames)" in warning and "rerender translate" in warning


def test_a_job_list_in_another_encoding_is_named_or_read(silent_clip, tmp_path):
    # was: a CSV saved by Excel as plain "CSV" (Windows-1252: "un café") or as "Unicode text" (UTF-16) failed with
    # Python's bare "'utf-8' codec can't decode byte 0xe9 in position 31", naming neither the file nor a remedy
    from rerender.workflow.batching import load_jobs

    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"video,prompt\n{silent_clip},un caf\xe9 peint\n".encode("cp1252"))
    with pytest.raises(ConfigError, match=r"latin.csv' is not UTF-8 text \(line 2 holds the byte 0xe9.*CSV UTF-8"):
        load_jobs(latin, None, tmp_path / "out")
    wide = tmp_path / "wide.csv"
    wide.write_text(f"video,prompt\r\n{silent_clip},un café peint\r\n", encoding="utf-16")
    (job,) = load_jobs(wide, None, tmp_path / "out")
    assert (job.video, job.prompt) == (silent_clip, "un café peint")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--seed", "-1"], "error: --seed must be an integer in [0, 2**63)"),
        (["--steps", "0"], "error: --steps must be an integer in [2, 1000]"),
        (["--smooth-background", "2"], "error: --smooth-background must be in [0, 1], got 2.0"),
    ],
)
def test_generate_names_its_seed_steps_and_smoothing_flags(flags, said, tmp_path, tiny_pipeline_dir, capsys):
    # was: `rerender generate --seed -1` said "`seed` must be ...", `--steps 0` "`num_inference_steps` must be ...",
    # `--smooth-background 2` "`background_smoothing.strength` must be ...": Python's names, not the flags typed
    from rerender.cli import main

    output = tmp_path / "out.mp4"
    command = ["generate", "-p", "a cat", "--model", str(tiny_pipeline_dir), "--frames", "1", "-o", str(output)]
    code = main([*command, "--width", "64", "--height", "64", "-q", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(said), err
    assert not output.exists()
