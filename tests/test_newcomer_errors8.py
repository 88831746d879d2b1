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
