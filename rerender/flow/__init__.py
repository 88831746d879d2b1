"""Optical flow for Rerender: estimators (GMFlow, OpenCV DIS), flow operations, and an on-disk cache.

Flow drives both halves of the method: the shape- and pixel-aware fusion of keyframes, and the guides of the
propagator. Conventions: frames are ``(B, 3, H, W)`` RGB float in [0, 1]; a flow is ``(B, 2, H, W)`` float32
in pixels, x first, and "flow a→b" moves the pixel ``p`` of a to ``p + flow(p)`` in b; an occlusion mask is
``(B, 1, H, W)`` float32 in {0, 1} with 1 where the flow is not trusted.

Example:
    >>> import torch
    >>> from rerender.flow import load_flow_estimator, forward_backward_occlusion, warp
    >>> estimator = load_flow_estimator("dis-fast")
    >>> source, target = torch.rand(2, 1, 3, 64, 64)
    >>> forward, backward = estimator(source, target)
    >>> occlusion_forward, occlusion_backward = forward_backward_occlusion(forward, backward)
    >>> source_in_target_geometry = warp(source, backward)
"""

from rerender.errors import CheckpointError, FlowInputError
from rerender.flow.cache import FlowCache
from rerender.flow.estimators import (
    DIS_PRESETS,
    ESTIMATOR_NAMES,
    GMFLOW_HUB_FILES,
    DISFlowEstimator,
    FlowEstimator,
    GMFlowEstimator,
    estimate_flow_numpy,
    find_gmflow_checkpoint,
    load_flow_estimator,
)
from rerender.flow.gmflow import (
    OFFICIAL_GMFLOW_FILENAME,
    GMFlow,
    check_gmflow_state_dict,
    load_gmflow,
    read_gmflow_checkpoint,
)
from rerender.flow.ops import (
    WARP_MODES,
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

__all__ = [
    # estimators
    "FlowEstimator",
    "DISFlowEstimator",
    "GMFlowEstimator",
    "load_flow_estimator",
    "estimate_flow_numpy",
    "find_gmflow_checkpoint",
    "DIS_PRESETS",
    "ESTIMATOR_NAMES",
    "GMFLOW_HUB_FILES",
    # the network
    "GMFlow",
    "load_gmflow",
    "read_gmflow_checkpoint",
    "check_gmflow_state_dict",
    "OFFICIAL_GMFLOW_FILENAME",
    # operations
    "warp",
    "warp_with_validity",
    "forward_backward_occlusion",
    "photometric_occlusion",
    "compose_flows",
    "soften_mask",
    "flow_to_latent",
    "mask_to_latent",
    "flow_to_rgb",
    "WARP_MODES",
    # cache and errors
    "FlowCache",
    "FlowInputError",
    "CheckpointError",
]
