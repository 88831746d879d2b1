"""The options of keyframe propagation (:class:`PropagationOptions`) and its named presets."""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass

from ebsynth_bridge.synthesis import VOTE_MODES
from rerender.config import BlendMode, PropagationDevice, PropagationEngine, PropagationPreset, choices
from rerender.errors import ConfigError

BLEND_MODES = choices(BlendMode)
QUALITY_PRESETS = choices(PropagationPreset)

#: Old field names of :class:`PropagationOptions` -> their names now, the names of `config.PropagationConfig`
#: (one vocabulary from the YAML to the engine). :meth:`PropagationOptions.preset` says so when given an old one.
RENAMED_FIELDS = {
    "colour_weight": "color_guide_weight",
    "edge_weight": "edge_guide_weight",
    "position_weight": "position_guide_weight",
    "temporal_weight": "temporal_guide_weight",
}

_GUIDE_WEIGHTS = (
    "color_guide_weight",
    "edge_guide_weight",
    "temporal_guide_weight",
    "position_guide_weight",
    "style_weight",
)


@dataclass(frozen=True)
class PropagationOptions:
    """How keyframes are propagated. The defaults are the "balanced" preset.

    Guide weights are relative to each other (only their ratios and the uniformity weight against them
    matter) and, as in EbSynth, split evenly over each guide's channels. Rerender-A-Video uses colour 6,
    edge 0.5, temporal 0.5, position 2 and style 1 (``PropagationOptions.preset("rerender")``); our
    defaults keep colour and edge and turn the others down, because our search starts from the optical
    flow's answer: the positional pull then only holds on to flow errors, and the style and temporal terms
    pull each frame towards the previous one's drift. On the propagation benchmark (cottonbro 512 px,
    step 2, forward pass only) that moves PSNR from 24.1 to 25.4 dB and SSIM from 0.865 to 0.885 at the
    same sharpness, 2.4× faster (flicker rises from 1.5 to 1.8, below the ground truth's 1.9).

    The two passes of an interval then merge by the ``"reconstruction"`` blend (``blend_mode``): chosen on
    ``../shared/bench/propagation_suite.py`` (6 clips × 3 styles, worst case against flow warping), where
    it is the only setting we measured that meets every target at once (see the README's Propagation).
    """

    color_guide_weight: float = 6.0
    """Weight of the colour guide: the keyframe's source frame against the current frame (RGB)."""
    edge_guide_weight: float = 0.5
    """Weight of the edge guide: the 3×3 Laplacian of the luminance of both frames."""
    position_guide_weight: float = 0.05
    """Weight of the positional guide: keyframe coordinates carried along the flow, occlusions filled
    (Rerender: 2)."""
    temporal_guide_weight: float = 0.0
    """Weight of the temporal guide: the stylised keyframe against the previous output warped to this
    frame (Rerender: 0.5; 0 skips building it)."""
    style_weight: float = 0.0
    """Weight of the style term, the current estimate against the stylised keyframe (EbSynth: 1). With 0
    the search matches on the guides only and each level needs a single search-vote round."""
    patch_size: int = 5
    """Patch side in pixels (odd, ≥ 3)."""
    vote_size: int = 5
    """Footprint in pixels of the final vote that renders each frame (odd, ≤ ``patch_size``): every pixel
    averages the matches of the patches centred within it. Smaller is sharper and noisier. With the
    reconstruction blend, which restores the detail a vote averages away, 5 (= ``patch_size``, the
    search's own vote) measures best: against 3, +0.0004 SSIM in the suite's worst case."""
    pyramid_levels: int | None = 3
    """Pyramid levels per frame (each halves the size); ``None`` = as many as fit (EbSynth). Every frame
    starts from the flow-carried field, so a shallow pyramid is enough; coarse levels catch what the flow
    misses (a hand entering)."""
    search_vote_iterations: int | tuple[int, ...] = 1
    """PatchMatch-then-vote rounds per level: one number, or one per level, coarsest first."""
    patchmatch_iterations: int = 4
    """PatchMatch sweeps per search-vote round (alternating scan direction)."""
    uniformity: float = 50.0
    """Weight of EbSynth's uniformity (occupancy) term, in EbSynth's units against the weights above
    (EbSynth: 3500 with a style weight of 1); 0 = off."""
    stop_threshold: float | None = 5.0
    """A pixel whose style changed less than this (0–255 scale) in a vote skips the next PatchMatch
    (EbSynth's, used only with a style term); ``None`` = never skip."""
    random_search_radius: int | None = 8
    """Largest random-search step in pixels at each level (``None`` = the whole image, as EbSynth)."""
    vote_mode: str = "plain"
    """``"plain"`` or ``"weighted"`` voting inside the search (see :func:`ebsynth_bridge.synthesize`)."""
    flow_render: str | None = "cubic"
    """Where the search kept the flow's answer (its match within a pixel of the keyframe coordinates carried
    along the flow), draw the keyframe at those sub-pixel coordinates (``"linear"`` or ``"cubic"``
    interpolation) instead of the pixel-snapped patch vote; the vote stays where the search moved away
    (:func:`ebsynth_bridge.flow_render`). ``None`` = the vote everywhere (EbSynth)."""
    blend_mode: str = "reconstruction"
    """How the forward and backward passes of a key interval merge (:mod:`ebsynth_bridge.blending`):
    ``"reconstruction"`` (ours, the default: per pixel, each pass and each keyframe warped along the flow
    weigh by how well the same correspondence reconstructs the current *source* frame, then the average
    gets back the detail averaging lost, up to ``blend_sharpness`` of the keyframes' — the best PSNR and
    SSIM on the suite at the keyframes' sharpness), ``"agreement"`` (cross-fade where they agree in
    structure, the error-selected side where their edges differ), ``"histogram"`` (Rerender: the
    histogram-preserving cross-fade restyled to the error-selected image), ``"poisson"`` (that, then
    gradient-domain fusion with the selected side's gradients — Rerender's ``-ps``), ``"select"`` (the
    error-selected image) or ``"linear"`` (plain cross-fade)."""
    blend_warp_weight: float = 1.0
    """``"reconstruction"`` blend: weight of the two keyframes warped along the flow (bilinear), as
    candidates beside the two passes, against the passes' 1; 0 = the passes only. Where the flow is right
    they are the least noisy estimate; where it is wrong their reconstruction says so."""
    blend_sharpness: float | None = 0.95
    """``"reconstruction"`` blend: restore each blended frame's detail until its gradient energy is this
    share of the keyframes' (interpolated in time; :func:`ebsynth_bridge.match_sharpness`); ``None`` =
    leave the average as it is (softer, and by a hair the best PSNR)."""
    blend_tolerance: float = 110.0
    """``"agreement"`` blend: difference of the two passes' gradient magnitudes (3×3 Sobel of the
    luminance, 0–255 scale) from which the selected side wins outright; lower is sharper, higher
    averages more (see :func:`ebsynth_bridge.agreement_blend`)."""
    blend_measure: str = "magnitude"
    """``"agreement"`` blend: where the passes disagree, ``"magnitude"`` (their gradient magnitudes differ)
    or ``"difference"`` (the gradient of their difference: also unaligned textures of equal contrast)."""
    blend_smoothing: float = 2.0
    """``"agreement"`` blend: Gaussian sigma in pixels applied to that difference."""
    blend_visibility: bool = True
    """Weigh each pass by how much of each pixel it can trace back to its keyframe along the flow (regions
    revealed since a key come from the other pass; :func:`ebsynth_bridge.confidence_weight`), in the
    selection and in the cross-fade; False = time alone."""
    blend_error_power: float = 0.0
    """How strongly each pass's per-pixel patch error steers the cross-fade weight (0 = not at all; see
    :func:`ebsynth_bridge.confidence_weight`)."""
    poisson_gradient_weights: tuple[float, float, float] = (2.5, 0.5, 0.5)
    """``"poisson"`` blend: gradient weights for (L, a, b), Rerender's values."""
    workers: int | None = None
    """Passes run at once, in threads of the calling process; ``None`` = one per CPU core (at most one
    per pass), 1 = one pass at a time in the calling thread, on numba's parallel kernels over all cores.
    The output does not depend on it."""
    seed: int = 0
    """Seed of the random search; equal inputs and seed give equal outputs, whatever the worker count (and,
    with the torch engine, on a given device)."""
    engine: PropagationEngine = "auto"
    """Which implementation runs the passes: ``"numba"`` (:mod:`ebsynth_bridge`, compiled CPU kernels),
    ``"torch"`` (:mod:`rerender.propagation.torch_engine`: the same maths, data-parallel, on ``device``) or
    ``"auto"`` (torch on CUDA when torch sees a GPU and ``device`` is not ``"cpu"``, otherwise numba). Both give
    the same pictures to within the suite's tolerance (0.1 dB PSNR), not bit for bit."""
    device: PropagationDevice = "auto"
    """Where the torch engine runs: ``"cuda"``, ``"cpu"`` or ``"auto"`` (CUDA when present). ``"cuda"``
    without a GPU is refused before any work."""
    chunk_pixels: int = 1 << 20
    """Torch engine: the most pixels (summed over the frames of a batch) searched at once. Frames of a pass
    are batched up to this many pixels and every candidate comparison works through blocks of at most this
    many, so the search's largest temporary is ``chunk_pixels × patch_size² × guide channels`` floats (about
    0.6 GB at the default 1 Mi pixels, 5×5 patches and 6 channels); lower it on a small GPU. The output does
    not depend on it."""

    def __post_init__(self) -> None:
        for name in (
            "color_guide_weight",
            "edge_guide_weight",
            "temporal_guide_weight",
            "position_guide_weight",
            "style_weight",
            "uniformity",
            "blend_warp_weight",
            "blend_error_power",
        ):
            _check_number(name, getattr(self, name), low=0.0)
        if sum(getattr(self, name) for name in _GUIDE_WEIGHTS) == 0:
            raise ConfigError("all guide and style weights are 0; at least one must be > 0")
        _check_odd("patch_size", self.patch_size, 3, None)
        _check_odd("vote_size", self.vote_size, 1, self.patch_size)
        _check_integer("pyramid_levels", self.pyramid_levels, 1, none="as many as fit")
        iterations = self.search_vote_iterations
        if isinstance(iterations, (tuple, list)) and not isinstance(iterations, bool):
            if len(iterations) == 0 or any(not _is_integer(item) or item < 0 for item in iterations):
                raise ConfigError(
                    f"`search_vote_iterations` must be an integer ≥ 0 or one per level (coarsest "
                    f"first), got {iterations!r}"
                )
            object.__setattr__(self, "search_vote_iterations", tuple(iterations))
        else:
            _check_integer("search_vote_iterations", iterations, 0)
        _check_integer("patchmatch_iterations", self.patchmatch_iterations, 0)
        _check_integer("random_search_radius", self.random_search_radius, 1, none="the whole image")
        _check_integer("workers", self.workers, 1, none="one per core")
        _check_integer("chunk_pixels", self.chunk_pixels, 256)
        if self.stop_threshold is not None:
            _check_number("stop_threshold", self.stop_threshold, low=0.0)
        _check_number("blend_tolerance", self.blend_tolerance, low=0.0, strict=True)
        _check_number("blend_smoothing", self.blend_smoothing, low=0.0)
        sharpness = self.blend_sharpness
        if sharpness is not None and not (_is_number(sharpness) and 0 < sharpness <= 2):
            raise ConfigError(
                f"`blend_sharpness` must be None or a share of the keyframes' sharpness in (0, 2], "
                f"got {self.blend_sharpness!r}"
            )
        for name, valid in (
            ("vote_mode", VOTE_MODES),
            ("flow_render", (None, "linear", "cubic")),
            ("blend_measure", ("magnitude", "difference")),
            ("blend_mode", BLEND_MODES),
            ("engine", choices(PropagationEngine)),
            ("device", choices(PropagationDevice)),
        ):
            if getattr(self, name) not in valid:
                raise ConfigError(f"`{name}` must be one of {valid}, got {getattr(self, name)!r}")
        weights = self.poisson_gradient_weights
        if len(weights) != 3 or any(not _is_number(weight) or weight < 0 for weight in weights):
            raise ConfigError(f"`poisson_gradient_weights` must be three numbers ≥ 0 for (L, a, b), got {weights!r}")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> PropagationOptions:
        """Options of a named preset, with optional field overrides.

        Args:
            name: ``"fast"`` (previews: 0.57× the time, mean PSNR 0.3 dB lower on the propagation suite),
                ``"balanced"`` (the defaults), ``"best"`` (deeper search: 1.6× the time, mean PSNR 0.1 dB
                higher) or ``"rerender"`` (Rerender-A-Video's EbSynth settings and histogram blend, for
                comparison; about 10× slower).
            **overrides: any field of :class:`PropagationOptions`.

        Raises:
            ConfigError: unknown preset name or field (the message lists the valid ones, or the new name of a
                renamed field).

        Example:
            >>> PropagationOptions.preset("fast", workers=1).patchmatch_iterations
            2
        """
        if name not in _PRESET_FIELDS:
            raise ConfigError(f"unknown quality preset {name!r}; valid presets: {QUALITY_PRESETS}")
        renamed = sorted(set(overrides) & set(RENAMED_FIELDS))
        if renamed:
            raise ConfigError(
                "renamed PropagationOptions field(s): "
                + ", ".join(f"`{old}` is now `{RENAMED_FIELDS[old]}`" for old in renamed)
            )
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            suggestions = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
            raise ConfigError(
                f"unknown PropagationOptions field(s) {unknown} (did you mean "
                f"{[match[0] for match in suggestions.values() if match]}?); valid: {sorted(known)}"
            )
        return cls(**{**_PRESET_FIELDS[name], **overrides})


_PRESET_FIELDS: dict[str, dict[str, object]] = {
    "fast": dict(pyramid_levels=2, patchmatch_iterations=2, random_search_radius=4),
    "balanced": {},
    "best": dict(pyramid_levels=4, patchmatch_iterations=6, random_search_radius=16),
    "rerender": dict(
        color_guide_weight=6.0,
        edge_guide_weight=0.5,
        temporal_guide_weight=0.5,
        position_guide_weight=2.0,
        style_weight=1.0,
        uniformity=3500.0,
        vote_size=5,
        pyramid_levels=None,
        search_vote_iterations=12,
        patchmatch_iterations=6,
        random_search_radius=None,
        blend_mode="histogram",
        blend_visibility=False,
        flow_render=None,
    ),
}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(
    name: str, value: object, *, low: float | None = None, high: float | None = None, strict: bool = False
) -> None:
    """A finite number ``≥ low`` (``> low`` when ``strict``) and ``≤ high``."""
    below = low is not None and _is_number(value) and (value <= low if strict else value < low)
    if not _is_number(value) or below or (high is not None and value > high):
        bound = "" if low is None else f" {'>' if strict else '≥'} {low:g}"
        bound += "" if high is None else f" and ≤ {high:g}"
        raise ConfigError(f"`{name}` must be a finite number{bound}, got {value!r}")


def _check_integer(name: str, value: object, low: int, *, none: str | None = None) -> None:
    """An integer ``≥ low``, or None where ``none`` says what None means."""
    if value is None and none is not None:
        return
    if not _is_integer(value) or value < low:
        also = f" or None ({none})" if none is not None else ""
        raise ConfigError(f"`{name}` must be an integer ≥ {low}{also}, got {value!r}")


def _check_odd(name: str, value: object, low: int, high: int | None) -> None:
    if not _is_integer(value) or value < low or value % 2 == 0 or (high is not None and value > high):
        valid = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"`{name}` must be an odd integer {valid}, got {value!r}")
