"""Which engine runs the patch synthesis, and where: the numba kernels of :mod:`ebsynth_bridge` or the torch
engine of :mod:`rerender.propagation.torch_engine` (``PropagationOptions.engine`` / ``.device``)."""

from __future__ import annotations

import logging
from typing import NamedTuple

from rerender.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)


class EngineChoice(NamedTuple):
    """The engine that runs: ``name`` ``"numba"`` or ``"torch"``, and the torch ``device`` (``None`` for numba)."""

    name: str
    device: str | None

    def __str__(self) -> str:
        return self.name if self.device is None else f"{self.name} on {self.device}"


def resolve_engine(options, name: str = "propagation") -> EngineChoice:
    """Resolve ``options.engine`` and ``options.device`` ("auto" included) to what will run here.

    ``engine="auto"`` is torch when torch sees a CUDA GPU (or ``device="cuda"`` is asked), otherwise numba;
    ``device="auto"`` is CUDA when present, otherwise the CPU. Cheap: it imports torch only when the choice
    depends on it, and starts no work.

    Args:
        options: a :class:`rerender.propagation.PropagationOptions`.
        name: what the caller calls these options, for the errors: ``"propagation"`` (the config section, so
            ``propagation.device``) or a Python argument such as ``"options"``.

    Raises:
        ConfigError: ``device="cuda"`` while torch sees no CUDA GPU (named as the config option
            ``{name}.device``).
        MissingDependencyError: ``engine="torch"`` without torch installed.
    """
    engine, device = options.engine, options.device
    if engine == "numba" or (engine == "auto" and device == "cpu"):
        return EngineChoice("numba", None)
    try:
        import torch
    except ImportError as error:
        if engine == "auto" and device == "auto":
            return EngineChoice("numba", None)
        raise MissingDependencyError(
            f"{_setting(name, 'engine', 'torch')} needs PyTorch (`pip install torch`); or use "
            f"{_setting(name, 'engine', 'numba')}"
        ) from error
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            f"`{name}.device` is 'cuda' but torch {torch.__version__} sees no CUDA GPU "
            f"(CUDA build: {torch.version.cuda or 'none'}); use 'auto' or 'cpu', or "
            f"{_setting(name, 'engine', 'numba')}"
        )
    if engine == "auto" and not has_cuda:
        return EngineChoice("numba", None)
    return EngineChoice("torch", device if device != "auto" else ("cuda" if has_cuda else "cpu"))


def _setting(name: str, field: str, value: str) -> str:
    """``field`` set to ``value`` as the caller writes it: the config's ``propagation.engine: numba`` or Python's
    ``options.engine='numba'``."""
    return f"`{name}.{field}: {value}`" if name == "propagation" else f"`{name}.{field}={value!r}`"


_WARNED: set[tuple[str, object]] = set()


def warn_unused_options(options, engine: EngineChoice) -> None:
    """Log a warning, once per option and value in a process, for an option set away from its default that
    ``engine`` does not use: ``chunk_pixels`` (torch only) on numba, ``workers`` above 1 on torch (which runs its
    passes one after the other, each batched on the device)."""
    from rerender.propagation.options import PropagationOptions

    unused = []
    if engine.name == "numba" and options.chunk_pixels != PropagationOptions.chunk_pixels:
        unused.append(("chunk_pixels", options.chunk_pixels, "it sizes the torch engine's batches"))
    if engine.name == "torch" and options.workers is not None and options.workers > 1:
        unused.append(("workers", options.workers, "the torch engine runs its passes one after the other"))
    for field, value, why in unused:
        if (field, value) not in _WARNED:
            _WARNED.add((field, value))
            logger.warning("propagation.%s=%r is not used by the %s engine: %s", field, value, engine.name, why)
