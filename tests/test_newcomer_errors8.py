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
