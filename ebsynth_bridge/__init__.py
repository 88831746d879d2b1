"""ebsynth_bridge: guided example-based synthesis (EbSynth) in pure Python, compiled with numba.

Style image + any number of (source guide, target guide, weight) pairs -> target style, the per-pixel
patch error and the nearest-neighbour field; plus the guides and blending used to propagate keyframes
through a video. Knows nothing about diffusion: it imports numpy, numba, opencv and scipy only.

Example:
    >>> import numpy as np
    >>> from ebsynth_bridge import Guide, synthesize
    >>> rng = np.random.default_rng(0)
    >>> source = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> style = 255 - source
    >>> target = np.roll(source, 3, axis=1)
    >>> result = synthesize(style, [Guide(source, target, weight=2.0)])
    >>> result.image.shape, result.error.shape, result.nnf.shape
    ((32, 32, 3), (32, 32), (32, 32, 2))
"""

from ebsynth_bridge.blending import (
    agreement_blend,
    confidence_weight,
    gradient_energy,
    histogram_preserving_blend,
    linear_blend,
    match_sharpness,
    poisson_blend,
    reconstruction_weights,
    select,
    selection_mask,
    weighted_blend,
)
from ebsynth_bridge.guides import (
    advect_coordinates,
    advect_nnf,
    carry_visibility,
    coordinates_to_nnf,
    edge_guide,
    fill_occluded,
    flow_render,
    identity_coordinates,
    occlusion_mask,
    positional_guide,
    warp,
)
from ebsynth_bridge.synthesis import (
    Guide,
    SynthesisResult,
    identity_nnf,
    max_pyramid_levels,
    synthesize,
    vote,
)

__all__ = [
    "Guide",
    "SynthesisResult",
    "synthesize",
    "vote",
    "identity_nnf",
    "max_pyramid_levels",
    "edge_guide",
    "positional_guide",
    "identity_coordinates",
    "warp",
    "occlusion_mask",
    "fill_occluded",
    "flow_render",
    "advect_coordinates",
    "advect_nnf",
    "carry_visibility",
    "coordinates_to_nnf",
    "selection_mask",
    "agreement_blend",
    "confidence_weight",
    "select",
    "linear_blend",
    "histogram_preserving_blend",
    "poisson_blend",
    "reconstruction_weights",
    "weighted_blend",
    "match_sharpness",
    "gradient_energy",
]
