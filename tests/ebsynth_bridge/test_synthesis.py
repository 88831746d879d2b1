"""Guided synthesis on small images with known answers."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from ebsynth_bridge import Guide, SynthesisResult, identity_nnf, max_pyramid_levels, synthesize, vote
from ebsynth_bridge.patchmatch import PROPAGATION_JUMPS


def textured(height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture: every 5×5 patch is distinct, so matches are unambiguous."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.2)


def stylise(image: np.ndarray) -> np.ndarray:
    """A per-pixel 'style': swapped channels, inverted."""
    return np.ascontiguousarray(255 - image[..., ::-1])


def test_style_equal_to_guide_reproduces_itself_from_random_start():
    image = textured()
    result = synthesize(image, [Guide(image, image, 2.0)], seed=3)
    assert isinstance(result, SynthesisResult)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    np.testing.assert_array_equal(result.image, image)
    assert float(result.error.max()) == 0.0


def test_translated_target_recovers_translated_style():
    source = textured(48, 64)
    style = stylise(source)
    shift_y, shift_x = 3, 5
    target = np.roll(source, (shift_y, shift_x), axis=(0, 1))
    result = synthesize(style, [Guide(source, target, 2.0)], uniformity=0.0, seed=1)
    expected = np.roll(style, (shift_y, shift_x), axis=(0, 1))
    # away from the wrap-around seams every pixel has its exact source patch
    interior = (slice(shift_y + 4, -4), slice(shift_x + 4, -4))
    np.testing.assert_array_equal(result.image[interior], expected[interior])
    # and the field says where it came from
    rows, columns = np.mgrid[0:48, 0:64]
    assert np.all(result.nnf[interior][..., 0] == (columns - shift_x)[interior])
    assert np.all(result.nnf[interior][..., 1] == (rows - shift_y)[interior])


def test_nnf_initialised_at_the_answer_stays_there():
    source = textured()
    style = stylise(source)
    target = np.roll(source, 2, axis=1)
    answer = np.roll(identity_nnf(40, 56), 2, axis=1)  # target (x, y) copies source (x - 2, y)
    result = synthesize(
        style,
        [Guide(source, target, 2.0)],
        initial_nnf=answer,
        pyramid_levels=2,
        uniformity=0.0,
        random_search_radius=4,
    )
    # away from the wrap-around seam (whose patches have no exact match) nothing moves...
    inner = (slice(None), slice(4, -4))
    np.testing.assert_array_equal(result.nnf[inner], answer[inner])
    # ... and the vote there only involves unmoved patches
    voted = (slice(None), slice(6, -6))
    np.testing.assert_array_equal(result.image[voted], np.roll(style, 2, axis=1)[voted])


def test_error_is_zero_where_the_match_is_exact_and_positive_where_content_is_new():
    source = textured()
    style = stylise(source)
    target = source.copy()
    target[14:26, 20:36] = 255 - target[14:26, 20:36]  # content the source does not have
    # (without the uniformity term, which may trade a little error for a less used source patch)
    result = synthesize(style, [Guide(source, target, 2.0)], initial_nnf=identity_nnf(40, 56), uniformity=0.0)
    # patches overlapping the change (±2 px) may move, their votes reach ±2 further and the error
    # patch (style term included) ±2 more
    far_from_change = np.ones((40, 56), bool)
    far_from_change[14 - 6 : 26 + 6, 20 - 6 : 36 + 6] = False
    assert float(result.error[far_from_change].max()) == 0.0
    assert float(result.error[18:22, 26:30].min()) > 0.0


@pytest.mark.parametrize("jumps, factor", [((1,), 3), (PROPAGATION_JUMPS, 2)])
def test_uniformity_spreads_the_use_of_source_patches(jumps, factor):
    """Every target pixel looks like the same dark corner of the source; only uniformity spreads them out.

    The classic sweep (jumps ``(1,)``) spreads them 5.5× (175 distinct sources against 32); the default's jumps
    2.6× (84): the occupancy is a snapshot per sweep, and with more candidates more pixels move onto the same
    little-used source within one sweep. Measured, not hidden: see docs/concepts/propagation.md."""
    ramp = np.tile(np.linspace(0, 255, 48, dtype=np.float32), (32, 1))
    source = np.dstack([ramp, ramp, ramp]).astype(np.uint8)
    target = np.zeros_like(source)
    style = textured(32, 48)

    def distinct_sources(uniformity: float) -> int:
        result = synthesize(
            style,
            [Guide(source, target, 1.0)],
            uniformity=uniformity,
            style_weight=0.0,
            pyramid_levels=1,
            search_vote_iterations=2,
            patchmatch_iterations=4,
            seed=2,
            propagation_jumps=jumps,
        )
        return len({(int(x), int(y)) for x, y in result.nnf.reshape(-1, 2)})

    assert distinct_sources(20000.0) > factor * distinct_sources(0.0)


def test_same_seed_same_result_and_float_matches_uint8():
    source = textured(32, 40, seed=4)
    style = stylise(source)
    target = np.roll(source, (1, 3), axis=(0, 1))
    first = synthesize(style, [Guide(source, target, 2.0)], seed=7)
    second = synthesize(style, [Guide(source, target, 2.0)], seed=7)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.nnf, second.nnf)
    as_float = synthesize(
        style.astype(np.float32) / 255,
        [Guide(source.astype(np.float32) / 255, target.astype(np.float32) / 255, 2.0)],
        seed=7,
    )
    assert as_float.image.dtype == np.float32 and 0.0 <= as_float.image.min() <= as_float.image.max() <= 1.0
    assert np.abs(as_float.image * 255 - first.image).max() <= 2.0


def test_several_guides_with_different_channel_counts_and_a_2d_style():
    source = textured(32, 40)
    grey = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    result = synthesize(grey, [Guide(source, source, 2.0), Guide(grey, grey, 0.5)], seed=0)
    assert result.image.shape == (32, 40)
    np.testing.assert_array_equal(result.image, grey)


def test_vote_with_identity_field_copies_the_style():
    style = textured(20, 24)
    np.testing.assert_array_equal(vote(style, identity_nnf(20, 24), patch_size=3), style)
    np.testing.assert_array_equal(vote(style, identity_nnf(20, 24), patch_size=1), style)


def test_max_pyramid_levels_matches_ebsynth_table():
    assert max_pyramid_levels((270, 512), (270, 512), 5) == 5
    assert max_pyramid_levels((135, 256), (135, 256), 5) == 4


@pytest.mark.parametrize(
    "make_guides, message",
    [
        (
            lambda s: [Guide(s, np.zeros((10, 12, 3), np.uint8)), Guide(s, np.zeros((11, 12, 3), np.uint8))],
            "guides[1].target",
        ),
        (lambda s: [Guide(s[:8], s)], "guides[0].source"),
        (lambda s: [Guide(s, s.astype(np.float32))], "dtypes differ"),
        (lambda s: [Guide(s, s[..., :1])], "channel counts differ"),
        (lambda s: [], "at least one Guide"),
    ],
)
def test_mismatched_guides_are_clear_errors(make_guides, message):
    style = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=re.escape(message)):
        synthesize(style, make_guides(style))


def test_bad_dtypes_and_parameters_are_clear_errors():
    style = np.zeros((16, 16, 3), np.uint8)
    guides = [Guide(style, style)]
    with pytest.raises(TypeError, match="uint8 .* or float32"):
        synthesize(style.astype(np.float64), guides)
    with pytest.raises(TypeError, match=r"guides\[0\].source"):
        synthesize(style, [Guide(style.astype(np.int16), style.astype(np.int16))])
    with pytest.raises(ValueError, match="patch_size.*odd.*got 4"):
        synthesize(style, guides, patch_size=4)
    with pytest.raises(ValueError, match="vote_mode"):
        synthesize(style, guides, vote_mode="median")
    with pytest.raises(ValueError, match="initial_nnf.*shape"):
        synthesize(style, guides, initial_nnf=np.zeros((8, 8, 2), np.int32))
    with pytest.raises(ValueError, match="search_vote_iterations.*one value per pyramid level"):
        large = np.zeros((64, 64, 3), np.uint8)
        synthesize(large, [Guide(large, large)], search_vote_iterations=[1, 1])
    with pytest.raises(ValueError, match="every weight is 0"):
        synthesize(style, [Guide(style, style, 0.0)], style_weight=0.0)
    for jumps in [(), (4, 0), (2.5,), 8]:
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"`propagation_jumps` must be a non-empty sequence of integers ≥ 1 (pixels), got {jumps!r}"
            ),
        ):
            synthesize(style, guides, propagation_jumps=jumps)


def test_result_does_not_depend_on_the_thread_count():
    import os
    import subprocess
    import sys

    code = """
import hashlib, sys, cv2, numpy as np
from ebsynth_bridge import Guide, synthesize
source = cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 1.2)
target = np.roll(source, (2, 3), axis=(0, 1))
result = synthesize(255 - source, [Guide(source, target, 2.0)], seed=11)
print(hashlib.sha256(result.nnf.tobytes() + result.image.tobytes()).hexdigest())
"""
    digests = set()
    for threads in ("1", "2"):
        environment = dict(os.environ, NUMBA_NUM_THREADS=threads)
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
        assert completed.returncode == 0, completed.stderr
        digests.add(completed.stdout.strip())
    assert len(digests) == 1
