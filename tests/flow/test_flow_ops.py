"""Flow operations against analytic answers: warping, occlusion, composition, the latent grid, colours."""

from __future__ import annotations

import math

import pytest
import torch

from rerender.errors import ConfigError
from rerender.flow import (
    FlowInputError,
    compose_flows,
    flow_to_latent,
    flow_to_rgb,
    forward_backward_occlusion,
    mask_to_latent,
    photometric_occlusion,
    soften_mask,
    warp,
    warp_with_validity,
)


def constant_flow(dx: float, dy: float, height: int = 24, width: int = 32, batch: int = 1) -> torch.Tensor:
    flow = torch.empty(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, columns = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    return columns, rows


def linear_image(height: int = 24, width: int = 32) -> torch.Tensor:
    """Channels 0.5x + 0.25y + 3 and −x + 2y: bilinear interpolation reproduces linear functions exactly."""
    columns, rows = pixel_grid(height, width)
    return torch.stack((0.5 * columns + 0.25 * rows + 3, -columns + 2 * rows))[None]


def rotation_flow(degrees: float, height: int, width: int) -> torch.Tensor:
    """Flow of a rotation about the frame centre: R(p − c) + c − p."""
    columns, rows = pixel_grid(height, width)
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    angle = math.radians(degrees)
    x, y = columns - centre_x, rows - centre_y
    moved_x = math.cos(angle) * x - math.sin(angle) * y
    moved_y = math.sin(angle) * x + math.cos(angle) * y
    return torch.stack((moved_x - x, moved_y - y))[None]


class TestWarp:
    def test_identity_flow_leaves_the_image_unchanged(self, generator):
        image = torch.rand(2, 3, 24, 32, generator=generator)
        for mode in ("bilinear", "nearest"):
            warped, valid = warp_with_validity(image, torch.zeros(2, 2, 24, 32), mode)
            torch.testing.assert_close(warped, image)
            assert valid.shape == (2, 1, 24, 32) and bool(valid.all())

    def test_integer_translation_shifts_and_marks_the_strip_outside(self, generator):
        image = torch.rand(1, 3, 24, 32, generator=generator)
        warped, valid = warp_with_validity(image, constant_flow(3, -2))
        # out(y, x) = image(y − 2, x + 3)
        torch.testing.assert_close(warped[..., 2:, :-3], image[..., :-2, 3:])
        # zeros outside, up to the float32 round trip through grid_sample's normalised coordinates
        assert float(warped[..., :, -3:].abs().max()) < 1e-6 and float(warped[..., :2, :].abs().max()) < 1e-6
        expected_valid = torch.zeros(1, 1, 24, 32)
        expected_valid[..., 2:, :-3] = 1
        torch.testing.assert_close(valid, expected_valid)

    def test_subpixel_translation_of_a_linear_image_is_exact(self):
        image = linear_image()
        warped = warp(image, constant_flow(1.25, 0.5))
        columns, rows = pixel_grid(24, 32)
        moved_x, moved_y = columns + 1.25, rows + 0.5
        expected = torch.stack((0.5 * moved_x + 0.25 * moved_y + 3, -moved_x + 2 * moved_y))[None]
        # the last row and two columns sample outside the frame
        torch.testing.assert_close(warped[..., :-1, :-2], expected[..., :-1, :-2], atol=1e-4, rtol=0)

    def test_rotation_field_samples_the_rotated_positions(self):
        image = linear_image(33, 33)
        flow = rotation_flow(10.0, 33, 33)
        warped, valid = warp_with_validity(image, flow)
        columns, rows = pixel_grid(33, 33)
        moved_x, moved_y = columns + flow[0, 0], rows + flow[0, 1]
        expected = torch.stack((0.5 * moved_x + 0.25 * moved_y + 3, -moved_x + 2 * moved_y))[None]
        inside = valid.bool().expand_as(warped)
        assert inside[0, 0, 16].all()  # the centre row stays inside at 10°
        torch.testing.assert_close(warped[inside], expected[inside], atol=1e-4, rtol=0)
        # the corners of the frame rotate out of it
        assert not valid[0, 0, 0, 0] and not valid[0, 0, -1, -1]

    def test_warp_then_inverse_warp_restores_the_interior(self):
        image = linear_image()
        there = warp(image, constant_flow(2.5, -1.5))
        back = warp(there, constant_flow(-2.5, 1.5))
        torch.testing.assert_close(back[..., 3:-3, 3:-3], image[..., 3:-3, 3:-3], atol=1e-4, rtol=0)

    def test_nearest_mode_rounds_to_the_closest_pixel(self, generator):
        latents = torch.rand(1, 4, 8, 8, generator=generator)
        torch.testing.assert_close(warp(latents, constant_flow(0.4, -0.4, 8, 8), "nearest"), latents)
        shifted = warp(latents, constant_flow(0.6, 0.0, 8, 8), "nearest")
        torch.testing.assert_close(shifted[..., :-1], latents[..., 1:])

    def test_keeps_dtype_and_broadcasts_a_single_flow(self, generator):
        image = torch.rand(3, 2, 16, 16, generator=generator).half()
        warped, valid = warp_with_validity(image, constant_flow(1, 0, 16, 16, batch=1))
        assert warped.dtype == torch.float16 and valid.dtype == torch.float16 and warped.shape == (3, 2, 16, 16)
        torch.testing.assert_close(warped[..., :-1], image[..., 1:])

    def test_bad_input(self):
        image = torch.rand(1, 3, 16, 16)
        with pytest.raises(FlowInputError, match="same height and width"):
            warp(image, torch.zeros(1, 2, 16, 17))
        with pytest.raises(FlowInputError, match=r"\(B, 2, H, W\)"):
            warp(image, torch.zeros(1, 3, 16, 16))
        with pytest.raises(FlowInputError, match="floating dtype"):
            warp(image.to(torch.uint8), torch.zeros(1, 2, 16, 16))
        with pytest.raises(FlowInputError, match="batch size 1 or 1"):
            warp(image, torch.zeros(2, 2, 16, 16))
        with pytest.raises(ValueError, match=r"`mode` must be one of \('bilinear', 'nearest'\), got 'cubic'"):
            warp(image, torch.zeros(1, 2, 16, 16), mode="cubic")


def moving_square_flows(size: int = 40, left: int = 10, top: int = 12, side: int = 12, speed: int = 6):
    """A square sliding right by `speed` over a still background: the exact flows and occluded regions."""
    forward = torch.zeros(1, 2, size, size)
    backward = torch.zeros(1, 2, size, size)
    forward[0, 0, top : top + side, left : left + side] = speed
    backward[0, 0, top : top + side, left + speed : left + speed + side] = -speed
    # The background uncovered behind the square has no source; the background it covers has no target.
    occluded_backward = torch.zeros(1, 1, size, size)
    occluded_backward[0, 0, top : top + side, left : left + speed] = 1
    occluded_forward = torch.zeros(1, 1, size, size)
    occluded_forward[0, 0, top : top + side, left + side : left + side + speed] = 1
    return forward, backward, occluded_forward, occluded_backward


class TestOcclusion:
    def test_synthetic_occluder_is_found_exactly(self):
        forward, backward, expected_forward, expected_backward = moving_square_flows()
        occlusion_forward, occlusion_backward = forward_backward_occlusion(forward, backward)
        assert occlusion_forward.shape == (1, 1, 40, 40) and occlusion_forward.dtype == torch.float32
        torch.testing.assert_close(occlusion_backward, expected_backward)
        torch.testing.assert_close(occlusion_forward, expected_forward)

    def test_consistent_translation_flags_only_what_leaves_the_frame(self):
        occlusion_forward, occlusion_backward = forward_backward_occlusion(constant_flow(3, 0), constant_flow(-3, 0))
        expected_forward = torch.zeros(1, 1, 24, 32)
        expected_forward[..., -3:] = 1  # x + 3 > 31
        torch.testing.assert_close(occlusion_forward, expected_forward)
        torch.testing.assert_close(occlusion_backward, expected_forward.flip(-1))

    def test_thresholds_follow_unflow(self):
        # forward 10 px, backward −9.6 px: round trip 0.4 px < 0.01·19.6 + 0.5 = 0.696 → consistent
        occlusion_forward, _ = forward_backward_occlusion(constant_flow(10, 0, 8, 64), constant_flow(-9.6, 0, 8, 64))
        assert float(occlusion_forward[..., :40].max()) == 0.0
        # with beta = 0.1 the same 0.4 px round trip is over 0.296 → flagged
        occlusion_forward, _ = forward_backward_occlusion(
            constant_flow(10, 0, 8, 64), constant_flow(-9.6, 0, 8, 64), beta=0.1
        )
        assert float(occlusion_forward[..., :40].min()) == 1.0

    def test_photometric_check_flags_a_changed_patch(self, generator):
        source = torch.rand(1, 3, 16, 16, generator=generator) * 0.5
        target = source.clone()
        target[..., 4:8, 4:8] += 0.4
        occlusion = photometric_occlusion(source, target, torch.zeros(1, 2, 16, 16))
        expected = torch.zeros(1, 1, 16, 16)
        expected[..., 4:8, 4:8] = 1
        torch.testing.assert_close(occlusion, expected)

    def test_bad_input(self):
        with pytest.raises(FlowInputError, match="same shape"):
            forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 9))
        with pytest.raises(ValueError, match="alpha=-1"):
            forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), alpha=-1)
        with pytest.raises(ValueError, match=r"`threshold` must be in \(0, 1\]"):
            photometric_occlusion(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8), 64)


class TestComposeFlows:
    def test_two_translations_add_up(self):
        composed = compose_flows(constant_flow(1.5, -2.0), constant_flow(3.0, 0.5))
        torch.testing.assert_close(composed, constant_flow(4.5, -1.5))

    def test_two_rotations_make_their_sum(self):
        composed = compose_flows(rotation_flow(4.0, 33, 33), rotation_flow(6.0, 33, 33))
        # flow_bc is sampled bilinearly; a rotation field is linear in p, so this is exact inside the frame
        torch.testing.assert_close(
            composed[..., 4:-4, 4:-4], rotation_flow(10.0, 33, 33)[..., 4:-4, 4:-4], atol=1e-4, rtol=0
        )

    def test_identity_is_neutral(self, generator):
        flow = torch.randn(2, 2, 16, 16, generator=generator)
        torch.testing.assert_close(compose_flows(flow, torch.zeros(2, 2, 16, 16)), flow)
        torch.testing.assert_close(compose_flows(torch.zeros(2, 2, 16, 16), flow), flow)

    def test_bad_input(self):
        with pytest.raises(FlowInputError, match="`flow_bc` must have shape"):
            compose_flows(torch.zeros(1, 2, 8, 8), torch.zeros(1, 8, 8))


class TestSoftenMask:
    def test_dilation_alone_grows_a_pixel_into_a_square(self):
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., 16, 16] = 1
        softened = soften_mask(mask, dilate=9, blur_kernel=None)
        expected = torch.zeros(1, 1, 32, 32)
        expected[..., 12:21, 12:21] = 1
        torch.testing.assert_close(softened, expected)

    def test_defaults_feather_keep_the_core_and_stay_local(self):
        mask = torch.zeros(1, 1, 48, 48)
        mask[..., 20:24, 20:24] = 1
        softened = soften_mask(mask)
        assert softened.shape == mask.shape and float(softened.min()) >= 0 and float(softened.max()) <= 1
        assert bool((softened[mask.bool()] == 1).all())  # the raw mask is added back
        # 4 px of dilation and 4 px of blur: nothing reaches 9 px beyond the square
        assert float(softened[..., :11, :].max()) == 0 and float(softened[..., 33:, :].max()) == 0
        assert 0 < float(softened[..., 20, 27]) < 1  # a soft edge
        assert float(softened[..., 20, 26]) > float(softened[..., 20, 28])  # decreasing away from the square

    def test_blur_keeps_a_constant_mask_and_none_disables_both(self):
        constant = torch.full((1, 1, 16, 16), 0.3)
        torch.testing.assert_close(soften_mask(constant, dilate=None), torch.full((1, 1, 16, 16), 0.6))
        torch.testing.assert_close(soften_mask(constant, dilate=None, blur_kernel=None), constant * 2)

    def test_bad_input(self):
        with pytest.raises(ConfigError, match="`dilate` must be an odd integer >= 1 or None, got 8"):
            soften_mask(torch.zeros(1, 1, 8, 8), dilate=8)
        with pytest.raises(ConfigError, match="`blur_sigma` must be > 0"):
            soften_mask(torch.zeros(1, 1, 8, 8), blur_sigma=0)


class TestLatentGrid:
    def test_flow_is_divided_and_sampled_at_block_centres(self):
        columns, rows = pixel_grid(32, 48)
        flow = torch.stack((columns, 2 * rows))[None]  # a linear field: the block centre is exact
        latent = flow_to_latent(flow)
        assert latent.shape == (1, 2, 4, 6) and latent.dtype == torch.float32
        latent_columns, latent_rows = pixel_grid(4, 6)
        torch.testing.assert_close(latent[0, 0], (8 * latent_columns + 3.5) / 8)
        torch.testing.assert_close(latent[0, 1], 2 * (8 * latent_rows + 3.5) / 8)
        torch.testing.assert_close(flow_to_latent(constant_flow(8, -16, 16, 24)), constant_flow(1, -2, 2, 3))

    def test_mask_is_conservative(self):
        mask = torch.zeros(2, 1, 16, 24)
        mask[0, 0, 9, 17] = 1
        mask[1, 0, 0, 0] = 0.25
        latent = mask_to_latent(mask)
        expected = torch.zeros(2, 1, 2, 3)
        expected[0, 0, 1, 2] = 1
        expected[1, 0, 0, 0] = 0.25
        torch.testing.assert_close(latent, expected)

    def test_other_factor(self):
        assert flow_to_latent(torch.zeros(1, 2, 12, 12), factor=4).shape == (1, 2, 3, 3)

    def test_bad_input(self):
        with pytest.raises(FlowInputError, match="multiples of factor=8.*20×24"):
            flow_to_latent(torch.zeros(1, 2, 20, 24))
        with pytest.raises(FlowInputError, match="multiples of factor=8"):
            mask_to_latent(torch.zeros(1, 1, 8, 12))
        with pytest.raises(ConfigError, match="`factor` must be an integer >= 1, got 0"):
            mask_to_latent(torch.zeros(1, 1, 8, 8), factor=0)


class TestFlowToRgb:
    def test_zero_flow_is_white_and_range(self, generator):
        torch.testing.assert_close(flow_to_rgb(torch.zeros(1, 2, 4, 4)), torch.ones(1, 3, 4, 4))
        colours = flow_to_rgb(torch.randn(2, 2, 8, 8, generator=generator) * 5)
        assert colours.shape == (2, 3, 8, 8) and float(colours.min()) >= 0 and float(colours.max()) <= 1

    def test_directions_follow_the_middlebury_wheel(self):
        def colour(dx: float, dy: float) -> torch.Tensor:
            return flow_to_rgb(constant_flow(dx, dy, 2, 2))[0, :, 0, 0]

        red, green, blue = colour(1, 0)  # right: red
        assert red == 1 and green < 0.1 and blue < 0.2
        red, green, blue = colour(-1, 0)  # left: cyan
        assert red < 0.1 and green > 0.7 and blue == 1
        red, green, blue = colour(0, 1)  # down (y grows downwards): yellow-orange
        assert red == 1 and green > 0.8 and blue < 0.1
        red, green, blue = colour(0, -1)  # up: blue-violet
        assert blue == 1 and green < 0.1 and red > 0.2

    def test_fixed_scale(self):
        faint = flow_to_rgb(constant_flow(1, 0, 2, 2), max_magnitude=10)
        assert float(faint.min()) > 0.85  # a tenth of full saturation is close to white
        with pytest.raises(ConfigError, match="`max_magnitude` must be > 0 or None, got 0"):
            flow_to_rgb(torch.zeros(1, 2, 2, 2), max_magnitude=0)
