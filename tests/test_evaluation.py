"""`rerender eval` metrics: a video against itself, against a shuffled copy, and CLIP scores with a tiny model."""

from __future__ import annotations

import pytest

from rerender.evaluation import clip_scores, evaluate_frames, evaluate_video
from rerender.synthetic import make_synthetic_video
from rerender.video import read_frames, write_video


@pytest.fixture(scope="module")
def clip_frames():
    return list(make_synthetic_video(num_frames=8, width=96, height=64, motion="mixed").frames)


def test_video_against_itself_has_zero_excess_warp_error(clip_frames):
    report = evaluate_frames(clip_frames, clip_frames)
    assert report["frames"] == 8
    assert report["warp_error_excess"] == 0.0
    assert report["warp_error"] == report["source_warp_error"] < 0.01


def test_shuffled_copy_has_large_warp_error(clip_frames):
    order = [0, 5, 2, 7, 1, 6, 3, 4]
    report = evaluate_frames([clip_frames[i] for i in order], clip_frames)
    assert report["warp_error_excess"] > 5 * report["source_warp_error"]
    assert report["flicker"] > 2 * report["source_flicker"]


def test_evaluate_video_files_and_sizes(tmp_path, clip_frames, synthetic_clip):
    source = tmp_path / "source.mp4"
    write_video(clip_frames, source, fps=25)
    small = tmp_path / "small.mp4"
    write_video((frame[::2, ::2].copy() for frame in read_frames(source)), small, fps=25)
    report = evaluate_video(small, source, clip_model=None)
    assert report["frames"] == 8 and report["warp_error"] < 0.02
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_video(small, source, clip_model=None, max_frames=1)


def test_clip_scores_skip_without_a_local_model(clip_frames):
    result = clip_scores(clip_frames[:2], "a cat", model="openai/clip-vit-large-patch14")
    assert "skipped" in result


def test_clip_scores_with_a_tiny_local_model(tmp_path, clip_frames):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from tests.tiny_models import write_tiny_tokenizer_files

    config = CLIPConfig(
        text_config=dict(
            vocab_size=514,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
        ),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(tmp_path / "clip")
    vocab = write_tiny_tokenizer_files(tmp_path / "vocab")
    tokenizer = CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"), model_max_length=77)
    CLIPProcessor(image_processor=CLIPImageProcessor(size=32, crop_size=32), tokenizer=tokenizer).save_pretrained(
        tmp_path / "clip"
    )
    result = clip_scores(clip_frames[:4], "a cartoon", model=str(tmp_path / "clip"))
    assert set(result) == {"model", "frame_consistency", "text_similarity"}
    assert -1.0 <= result["text_similarity"] <= 1.0
    assert 0.0 < result["frame_consistency"] <= 1.0 + 1e-6
    same = clip_scores([clip_frames[0]] * 3, None, model=str(tmp_path / "clip"))
    assert same["frame_consistency"] == pytest.approx(1.0, abs=1e-5)


def test_the_report_gives_each_figure_its_scale_and_the_figures_are_on_it():
    """A still picture whose output alternates by 10 grey levels: flicker is 10 on the 0-255 scale and warp error
    (10/255)^2 on the [0, 1] scale, as the report's `units` say."""
    import numpy as np

    from rerender.evaluation import METRIC_UNITS

    rng = np.random.default_rng(0)
    still = rng.integers(0, 200, (64, 96, 3), dtype=np.uint8)
    still = np.repeat(np.repeat(still[::8, ::8], 8, 0), 8, 1)  # blocks the flow can hold still
    outputs = [still + (10 if i % 2 else 0) for i in range(4)]
    report = evaluate_frames(outputs, [still] * 4)
    numeric = {key for key, value in report.items() if isinstance(value, float)}
    assert numeric == set(report["units"]) == set(METRIC_UNITS)
    assert "0-255" in report["units"]["flicker"] and "[0, 1]" in report["units"]["warp_error"]
    assert report["flicker"] == pytest.approx(10.0, abs=0.05)
    assert report["warp_error"] == pytest.approx((10 / 255) ** 2, rel=0.01)
    assert report["source_flicker"] == pytest.approx(0.0, abs=1e-3)
