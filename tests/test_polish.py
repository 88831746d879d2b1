"""Last round's leftovers on the transformer bases (Flux, Z-Image), each as a user of the field expects:
the size multiple and the negative prompt come from the model's family, options a base ignores warn, the CLI keeps
other libraries' warnings away unless --verbose, and `generate` loads no ControlNet."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("flux"))


@pytest.fixture(scope="module")
def tiny_zimage(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_zimage import save_tiny_zimage

    return save_tiny_zimage(tmp_path_factory.mktemp("zimage"))


def _tiny_run(control: Path) -> list[str]:
    settings = [
        f"control.model={control}",
        "num_inference_steps=1",
        "resolution=64",
        "device=cpu",
        "flow_estimator=dis",
    ]
    return [part for setting in settings for part in ("--set", setting)]


# ------------------------------------------------------------------ 3. third-party warnings only with --verbose


def test_a_flux_run_on_the_cli_prints_no_third_party_warnings(tiny_flux, synthetic_clip, tmp_path):
    """transformers' torchvision fallbacks and diffusers' deprecations printed on every run; the user sees none of
    them (a fresh process, as the user runs it), and still sees our own warnings."""
    base, control = tiny_flux
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "PYTHONWARNINGS")
    }
    environment.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "rerender.cli", "translate", str(synthetic_clip), "-p", "a cat", "-q"]
    command += ["-o", str(tmp_path / "out.mp4"), "--stage", "first", "--model", str(base), *_tiny_run(control)]
    command += ["--set", "size_multiple=16", "--set", "guidance_scale=3"]  # our own warning: schnell has no guidance
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "[transformers]" not in finished.stderr and "Warning:" not in finished.stderr, finished.stderr
    assert "guidance_scale 3 on a Flux model without a guidance embedding" in finished.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_the_cli_hides_other_libraries_warnings_unless_verbose_and_restores_everything(verbose, capsys):
    from rerender.cli.base import third_party_messages

    library = logging.getLogger("transformers.image_processing_utils")
    hub = logging.getLogger("huggingface_hub.file_download")
    ours = logging.getLogger("rerender.diffusion.flux")
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    level_before = logging.getLogger("transformers").level
    environment_before = {name: os.environ.get(name) for name in ("TRANSFORMERS_VERBOSITY", "PYTHONWARNINGS")}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filters_before = list(warnings.filters)
            with third_party_messages(verbose):
                for source in (library, hub, ours):
                    source.propagate = True
                hub.warning("hub says")
                ours.warning("ours says")
                hub.error("hub fails")
                warnings.warn_explicit("a deprecation", FutureWarning, "embeddings.py", 1, module="diffusers.models")
                warnings.warn_explicit("ours", UserWarning, "flux.py", 1, module="rerender.diffusion.flux")
                in_block = logging.getLogger("transformers").getEffectiveLevel()
            assert warnings.filters == filters_before
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    assert "ours says" in err and "hub fails" in err
    assert ("hub says" in err) is verbose and [str(w.message) for w in caught] == (
        ["a deprecation", "ours"] if verbose else ["ours"]
    )
    assert (in_block == logging.ERROR) is not verbose
    assert logging.getLogger("transformers").level == level_before
    assert {name: os.environ.get(name) for name in environment_before} == environment_before


def test_the_library_sets_no_warnings_filter_and_no_logging_handler():
    """Importing and loading the pipelines changes neither the warnings filters nor the root logger."""
    code = (
        "import logging, warnings; before = (list(warnings.filters), list(logging.getLogger().handlers));"
        "import rerender, rerender.diffusion.flux, rerender.diffusion.zimage, rerender.workflow.generation;"
        "import rerender.workflow.translation;"
        "assert (list(warnings.filters), list(logging.getLogger().handlers)) == before"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert finished.returncode == 0, finished.stderr
