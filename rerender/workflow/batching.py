"""`batch`: translate many videos, one after another, a few at a time, or on a Ray cluster.

A batch is a list of jobs (video, prompt, output, config overrides). Every job is an ordinary
`rerender.translate` call with its own workspace (`<output>.work/`), so a job resumes as a single video does and
a re-run of the batch skips the jobs that finished. One failed job never stops the others: its error message goes
into the summary.

Where the jobs run:
- locally, `parallel=1` (default): one after another, in this process, one model copy in memory at a time;
- locally, `parallel=N`: N jobs at once in N threads of this process; each job loads its own keyframe model,
  so up to N model copies are in memory at once (the propagation inside each job has its own worker threads);
- `ray="local"|"auto"|ADDRESS`: each job is one Ray task (`num_cpus=1`; `num_gpus=1` only when the cluster has
  GPUs and the job renders with diffusion). Ray schedules them, retries a task whose worker died (`max_retries`),
  and each task loads its own model copy. The outputs and workspaces are written where the task runs, so on a
  cluster of several machines the output folder must be on a path every node can read (a shared file system).

Ray is optional (`pip install "rerender[distributed]"`) and only imported when `ray` is given.

Example:
    >>> import rerender
    >>> result = rerender.batch("clips/", "a watercolor painting", output_dir="styled/", parallel=2)  # doctest: +SKIP
    >>> print(rerender.format_summary(result))                                                         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerender.config import RendererName, RerenderConfig, apply_overrides, choices
from rerender.errors import ConfigError, InputNotFoundError, OutputPathError, VideoReadError
from rerender.video import check_input_path
from rerender.workflow.executors.ray import connect_ray, import_ray

__all__ = ["Job", "JobResult", "BatchResult", "VIDEO_SUFFIXES", "load_jobs", "batch", "run_job", "format_summary"]

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
"""File endings taken as videos when JOBS is a folder."""

JOB_COLUMNS = ("video", "prompt", "output")
"""The columns of a job list besides config options (by leaf name or dotted path, as `--set`)."""

JobStatus = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Job:
    """One video to translate."""

    video: Path
    """The input video (or folder of numbered frames)."""
    output: Path
    """The video to write."""
    prompt: str | None = None
    """The prompt; None = the config's."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config options for this job only (leaf names or dotted paths), applied over the batch's config."""

    def __post_init__(self) -> None:  # absolute: the result names the same files after the caller's `os.chdir`
        from rerender.workflow.preflight import absolute_path

        object.__setattr__(self, "video", absolute_path(self.video))
        object.__setattr__(self, "output", absolute_path(self.output))

    @property
    def workspace(self) -> Path:
        """The job's workspace, next to its output (as `translate` makes it)."""
        return self.output.with_name(self.output.name + ".work")


@dataclass
class JobResult:
    """What happened to one job."""

    job: Job
    """The job."""
    status: JobStatus
    """"done" (translated now), "skipped" (finished by an earlier run) or "failed"."""
    seconds: float
    """Wall seconds the job took where it ran (0 when skipped)."""
    error: str | None = None
    """The error message of a failed job."""
    where: str = "local"
    """Where it ran: "local", or "ray:<node address>"."""
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage of a job that ran (`TranslationResult.timings`)."""


@dataclass
class BatchResult:
    """Every job's result, in the order of the job list."""

    jobs: list[JobResult]
    """One result per job."""
    seconds: float
    """Wall seconds of the whole batch."""
    executor: str
    """"sequential", "threads(N)" or "ray(<address>)"."""

    @property
    def failed(self) -> list[JobResult]:
        """The failed jobs."""
        return [item for item in self.jobs if item.status == "failed"]


# --------------------------------------------------------------------------------------------------------
# the job list
# --------------------------------------------------------------------------------------------------------


def _cell_value(key: str, value: Any, where: str, number: int) -> Any:
    """A job-list cell of option `key`: a CSV cell's text read by the option's type, as `--set` reads it
    (`rerender.config.convert.value_from_text`: `0.5`, `1e6`, `true`/`yes`, `none`; text options kept exactly as
    written); values of YAML job lists (already typed) as they are.

    Raises:
        ConfigError: naming the row and column, when the text is not a value of the option's type.
    """
    if not isinstance(value, str):
        return value
    from rerender.config import field_type
    from rerender.config.convert import value_from_text

    try:
        kind = field_type(key)
    except ConfigError:
        return value  # an unknown option: `apply_overrides` names it with a suggestion
    try:
        return value_from_text(value, kind, key)
    except ConfigError as error:
        raise ConfigError(f"{where}, row {number}, column {key!r}: {error}") from None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    import yaml

    data = path.read_bytes()
    # spreadsheets save UTF-8 with a byte-order mark ("CSV UTF-8"), and "Unicode text" as UTF-16 with one
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"the job list {str(path)!r} is not UTF-8 text (line {line} holds the byte {data[error.start]:#04x}: "
            "another encoding, such as Windows-1252); save it as UTF-8 (in Excel: CSV UTF-8)"
        ) from None
    if path.suffix.lower() == ".csv":
        # a quoted cell may hold commas and line breaks (a prompt typed on two lines in a spreadsheet)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise ConfigError(
                f"the job list {str(path)!r} is empty; it needs a header row with at least a `video` column"
            )
        # a spreadsheet's header may be capitalised ("Video", "Prompt"); option columns stay as written
        reader.fieldnames = [_column(name) for name in reader.fieldnames]
        if "video" not in reader.fieldnames:
            raise ConfigError(
                f"the job list {str(path)!r} has no `video` column; its header reads {reader.fieldnames!r} "
                "(columns are separated by commas: video,prompt,output,...)"
            )
        rows = []
        for row in reader:
            if None in row:
                raise ConfigError(f"the job list {str(path)!r}, row {reader.line_num}: more cells than header columns")
            # cells stay text here: `load_jobs` parses only option columns, by their type
            cells = {key: value.strip() for key, value in row.items() if value is not None and value.strip() != ""}
            if cells:  # a row of empty cells (",,," that spreadsheets write below the table) is no job
                rows.append(cells)
        return rows
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"the job list {str(path)!r} is not valid YAML: {' '.join(str(error).split())}") from None
    if isinstance(data, dict) and set(data) == {"jobs"}:
        data = data["jobs"]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ConfigError(
            f"the job list {str(path)!r} must be a list of mappings (or `jobs:` holding one), each with a `video`"
        )
    return [{_column(str(key)): value for key, value in row.items() if value is not None} for row in data]


def _column(name: str) -> str:
    """A job list's column name as `load_jobs` reads it: stripped, and `video`, `prompt`, `output` in any case."""
    name = name.strip()
    return name.lower() if name.lower() in JOB_COLUMNS else name


def load_jobs(
    jobs: str | os.PathLike | Sequence[Job | Mapping[str, Any]],
    prompt: str | None,
    output_dir: str | os.PathLike,
    config: RerenderConfig | None = None,
) -> list[Job]:
    """The jobs of a folder of videos, a YAML/CSV job list, or a list of `Job`s or mappings, checked.

    A job list has one row per video: `video` (required; relative paths are relative to the list's folder),
    `prompt` (default: `prompt`), `output` (default: `<output_dir>/<video stem>.mp4`; relative to `output_dir`),
    and any config option by leaf name or dotted path (`denoising_strength`, `keyframes.keyframe_interval`).

    Args:
        jobs: a folder (every video in it, by name), a `.yaml`/`.yml`/`.csv` job list, or a sequence of jobs
            (`Job`s, mappings of columns, or videos' paths).
        prompt: the prompt of every job that does not name its own.
        output_dir: where outputs go (created if missing).
        config: the batch's config, to check each job's overrides against; `None` = defaults.

    Returns:
        The jobs, in folder (sorted by name) or list order.

    Raises:
        InputNotFoundError: `jobs` or a job's video does not exist, or the folder holds no video.
        ConfigError: an unknown column or option, a bad value, a row without `video`, or two jobs with the same output.
    """
    config = config or RerenderConfig()
    output_dir = Path(output_dir)
    base = Path.cwd()
    if isinstance(jobs, (str, os.PathLike)):
        source = Path(jobs)
        if not source.exists():
            raise InputNotFoundError(
                f"`jobs`: {str(source)!r} does not exist; give a folder of videos or a .yaml/.csv job list"
            )
        if source.is_dir():
            # hidden files are no one's videos: macOS's "._clip.mp4" (a copy's resource fork), a crashed run's
            # ".out.1a2b.partial.mp4"
            videos = sorted(
                path
                for path in source.iterdir()
                if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")
            )
            if not videos:
                raise InputNotFoundError(
                    f"`jobs`: the folder {str(source)!r} holds no video ({', '.join(VIDEO_SUFFIXES)})"
                )
            rows: list[Mapping[str, Any]] = [{"video": str(path)} for path in videos]
        elif source.suffix.lower() in (".yaml", ".yml", ".csv"):
            rows = _read_rows(source)
            base = source.parent
        else:
            raise ConfigError(f"`jobs`: {str(source)!r} is neither a folder of videos nor a .yaml/.yml/.csv job list")
        where = f"the job list {str(source)!r}"
    else:
        try:
            rows = list(jobs)
        except TypeError:  # None, a number: not Python's "'NoneType' object is not iterable"
            raise ConfigError(
                f"`jobs` must be a folder of videos, a .yaml/.csv job list or a list of jobs, got {jobs!r}"
            ) from None
        where = "the job list"
    result: list[Job] = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, Job):
            result.append(row)
            continue
        if isinstance(row, (str, os.PathLike)):  # a video's path: a row with nothing but its `video`
            row = {"video": row}
        if "video" not in row or row["video"] in (None, ""):
            raise ConfigError(f"{where}, job {number}: no `video`; every row needs one")
        video = Path(str(row["video"])).expanduser()
        video = video if video.is_absolute() else base / video
        output = (
            Path(str(row["output"])).expanduser() if row.get("output") not in (None, "") else Path(video.stem + ".mp4")
        )
        output = output if output.is_absolute() else output_dir / output
        overrides = {
            key: _cell_value(key, value, where, number) for key, value in row.items() if key not in JOB_COLUMNS
        }
        for key, value in overrides.items():
            try:
                apply_overrides(config, {key: value})
            except ConfigError as error:
                raise ConfigError(
                    f"{where}, job {number}, column {key!r}: {error} (columns are {', '.join(JOB_COLUMNS)} and config "
                    "options by leaf name or dotted path)"
                ) from None
        job_prompt = row.get("prompt")
        result.append(Job(video, output, str(job_prompt) if job_prompt is not None else prompt, overrides))
    _check_jobs(result, where)
    return result


def _unreadable(video: Path) -> str | None:
    """Why the batch cannot read `video` at all (a look at the file system, no decoding), or None: missing (a
    broken link too), no permission to read it, or empty (a 0-byte file, e.g. a copy that never finished; a frame
    folder with nothing in it). A file with content that is not a video stays that job's own failure."""
    if not video.exists():
        return f"{str(video)!r} not found"
    if not os.access(video, os.R_OK):
        return f"{str(video)!r} cannot be read (permission denied)"
    if video.is_dir() and next(video.iterdir(), None) is None:
        return f"{str(video)!r} is an empty folder (no frames)"
    if video.is_file() and video.stat().st_size == 0:
        return f"{str(video)!r} is empty (0 bytes)"
    return None


def _check_jobs(jobs: Sequence[Job], where: str) -> None:
    """Refuse the whole list, before any job runs, when a job's video is missing, empty or cannot be read, naming every
    such job at once (a list fixed one row per run is a list fixed in as many runs); refuse two jobs writing one
    output."""
    if not jobs:
        raise ConfigError(f"{where} holds no job")
    problems = [(number, _unreadable(job.video)) for number, job in enumerate(jobs, start=1)]
    problems = [(number, why) for number, why in problems if why is not None]
    if problems:
        lines = "\n".join(f"  job {number}: {why}" for number, why in problems)
        missing = any(not jobs[number - 1].video.exists() for number, _ in problems)
        raise (InputNotFoundError if missing else VideoReadError)(
            f"{where}: {len(problems)} of {len(jobs)} job(s) have a video that is missing, empty or cannot be read, so no "
            f"job was started:\n{lines}\nfix or remove these jobs (rows) and run the batch again"
        )
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = Path(os.path.abspath(job.output))
        if key in seen:
            raise ConfigError(
                f"{where}: {str(seen[key])!r} and {str(job.video)!r} would both write {str(job.output)!r}; give one "
                "of them its own output (the job list's 'output' column)"
            )
        seen[key] = job.video


def _check_outputs(jobs: Sequence[Job]) -> None:
    """Refuse, before any job runs, an output that cannot be written (a suffix that is no video, any job's input)
    and an existing file that rerender did not write (`refuse_foreign_output`): a batch names its outputs itself, so
    a video of the user's in the output folder must never be overwritten."""
    from rerender.video import check_output_path
    from rerender.workflow.workspace import check_workspace_root

    videos = [job.video for job in jobs]
    for number, job in enumerate(jobs, start=1):
        check_output_path(  # the rule of every run (`check_run`): only a video rerender wrote may be replaced
            job.output,
            videos,
            name=f"job {number} ({job.video.name}): output",
            overwrite=False,
            remedy="move it away or give the job another output",
        )
        try:  # the job's workspace is `<output>.work`: no argument names it, so the remedy is the output's
            check_workspace_root(job.workspace, remedy="move it away or give the job another output")
        except OutputPathError as error:
            raise type(error)(f"job {number} ({job.video.name}): {error}") from None


# --------------------------------------------------------------------------------------------------------
# one job
# --------------------------------------------------------------------------------------------------------


def job_config(job: Job, config: RerenderConfig, renderer: str | None = None) -> RerenderConfig:
    """The config `translate` runs the job with: the batch config, the job's overrides, its prompt and renderer."""
    changes = dict(job.overrides)
    if job.prompt is not None:
        changes["prompt.prompt"] = job.prompt
    if renderer is not None:
        changes["model.renderer"] = renderer
    return apply_overrides(config, changes) if changes else config


def finished(job: Job, config: RerenderConfig) -> bool:
    """Whether an earlier run wrote the job's output and its workspace holds finished propagation for `config`
    (the job's own, from `job_config`)."""
    from rerender.workflow.workspace import Workspace

    if not job.output.is_file() or not (job.workspace / "manifest.json").is_file():
        return False
    try:
        with Workspace.open(job.workspace, job.video, config) as space:
            return space.is_done("keyframes", config) and space.is_done("propagation", config)
    except Exception:  # noqa: BLE001 - a workspace that cannot be opened as it is means: not finished
        return False


def run_job(
    job: Job, config: RerenderConfig, renderer: str | None = None, where: str = "local", pipeline: Any | None = None
) -> JobResult:
    """Translate one job; never raises for the job's own errors (they are returned in the result).

    Args:
        job: the job.
        config: the batch's config (the job's overrides are applied over it).
        renderer: "auto", "diffusion", "classic" or None (= the config's), as `translate`.
        where: a label of where this runs, kept in the result.
        pipeline: a loaded `RerenderPipeline` to reuse, or None to load one for this job.

    Returns:
        A `JobResult`: "skipped" when the job had finished earlier, "done", or "failed" with the message.
    """
    from rerender.workflow.translation import translate

    started = time.perf_counter()
    try:
        config = job_config(job, config, renderer)
        if finished(job, config):
            return JobResult(job, "skipped", 0.0, None, where)
        result = translate(job.video, output=job.output, config=config, pipeline=pipeline, progress=False)
    except Exception as error:  # noqa: BLE001 - one failed job never stops the others; its message is the result
        logger.debug("job %s failed", job.video, exc_info=True)
        return JobResult(job, "failed", time.perf_counter() - started, f"{type(error).__name__}: {error}", where)
    return JobResult(job, "done", time.perf_counter() - started, None, where, dict(result.timings))


# --------------------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------------------


def _run_on_ray(
    jobs: Sequence[Job],
    config: RerenderConfig,
    renderer: str | None,
    max_retries: int,
    callback: Callable[[JobResult], None],
) -> list[JobResult]:
    ray = import_ray()
    wants_gpu = ray.cluster_resources().get("GPU", 0) >= 1 and (renderer or config.model.renderer) != "classic"

    def remote_job(job: Job, config: RerenderConfig, renderer: str | None) -> JobResult:
        return run_job(job, config, renderer, where=f"ray:{ray.util.get_node_ip_address()}")

    task = ray.remote(num_cpus=1, num_gpus=1 if wants_gpu else 0, max_retries=max_retries)(remote_job)
    config_ref = ray.put(config)
    # absolute paths: a worker's working folder is not the driver's (another node, or a runtime_env working_dir)
    sent = [dataclasses.replace(job, video=job.video.absolute(), output=job.output.absolute()) for job in jobs]
    pending = {task.remote(job, config_ref, renderer): index for index, job in enumerate(sent)}
    results: list[JobResult | None] = [None] * len(jobs)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        try:
            results[index] = dataclasses.replace(ray.get(ready[0]), job=jobs[index])  # the job as the caller wrote it
        except Exception as error:  # noqa: BLE001 - a task that failed past its retries (worker lost) fails its job only
            results[index] = JobResult(
                jobs[index], "failed", 0.0, f"{type(error).__name__}: {error}".splitlines()[0], "ray"
            )
        callback(results[index])
    return [item for item in results if item is not None]


# --------------------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------------------


def batch(
    jobs: str | os.PathLike | Sequence[Job | Mapping[str, Any]],
    prompt: str | None = None,
    output_dir: str | os.PathLike = "batch_out",
    config: RerenderConfig | str | os.PathLike | None = None,
    *,
    renderer: Literal["auto", "diffusion", "classic"] | None = None,
    parallel: int = 1,
    ray: str | None = None,
    max_retries: int = 3,
    callback: Callable[[JobResult], None] | None = None,
    **overrides: Any,
) -> BatchResult:
    """Translate every job; failed jobs are reported, never raised, and finished ones are skipped.

    Args:
        jobs: a folder of videos, a `.yaml`/`.yml`/`.csv` job list, or a sequence of `Job`s, mappings (see
            `load_jobs` for the columns) or videos' paths.
        prompt: the prompt of every job that does not name its own.
        output_dir: where the outputs go (`<video stem>.mp4` unless a job names its output); made if missing.
        config: a `RerenderConfig` or a YAML/JSON file for every job; `None` = defaults.
        renderer: as `translate`'s; `None` = the config's.
        parallel: jobs at once on this machine, in threads (each loads its own model: up to `parallel` model
            copies in memory). Ignored with `ray`.
        ray: None (run here), "local" (start a Ray instance on this machine), "auto" (join the running cluster)
            or a cluster address `host:port`. When Ray is already initialised, its cluster is used.
        max_retries: Ray retries of a job whose worker died.
        callback: `callback(job_result)` as each job ends.
        **overrides: config options for every job (leaf name or dotted path).

    Returns:
        A `BatchResult`, in job order.

    Raises:
        InputNotFoundError: `jobs` or a job's video is missing.
        VideoReadError: a job's video is empty (0 bytes) or cannot be read (every such job named at once).
        ConfigError: a bad option or column, duplicate outputs, `parallel` < 1, an unreachable Ray address, a job
            whose propagation engine or device cannot run here (`propagation.device: cuda` without a GPU).
        OutputPathError: an output that is no video path, is a job's input, or is an existing file that no
            earlier run of the batch wrote (one of the user's own).
        MissingDependencyError: `ray` given but ray is not installed.
    """
    from rerender.workflow.preflight import check_run

    # 1. The checks every entry point shares (`preflight.check_run`: the config, the options, the renderer's name;
    #    each job checks its own model and output when it runs), then the batch's own, before any job runs.
    if renderer is not None and renderer not in choices(RendererName):
        raise ConfigError(f"`renderer` must be one of {', '.join(map(repr, choices(RendererName)))}, got {renderer!r}")
    config = check_run(config, overrides=overrides, stage="keyframes", check_model=False).config
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"`parallel` must be a whole number ≥ 1, got {parallel!r}")
    if callback is not None and not callable(callback):  # else first called after the first job ran
        raise ConfigError(f"`callback` must be a function callback(job_result) or None, got {callback!r}")
    if ray is not None and not isinstance(ray, str):
        raise ConfigError(f"`ray` must be None, 'local', 'auto' or a cluster address 'host:port', got {ray!r}")
    check_input_path(output_dir, "output_dir")
    job_list = load_jobs(jobs, prompt, output_dir, config)
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise OutputPathError(
            f"`output_dir` {str(output_dir)!r} is a file; give a folder for the outputs (made if missing)"
        )
    for job in job_list:
        try:
            job.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputPathError(
                f"cannot create the output folder {str(job.output.parent)!r} (`output_dir` "
                f"{str(output_dir)!r}): {error.strerror or error}"
            ) from None
    _check_outputs(job_list)
    if ray is None:  # each job's propagation engine and device can run here (Ray's workers check their own)
        from rerender.workflow.stages import propagation_options

        for number, job in enumerate(job_list, 1):
            try:
                propagation_options(job_config(job, config, renderer))
            except ConfigError as error:
                raise ConfigError(f"job {number} ({str(job.video)!r}): {error}") from None
    notify = callback or (lambda result: None)
    started = time.perf_counter()
    if ray is not None:
        if parallel != 1:  # Ray runs as many jobs at once as its workers' resources allow
            logger.warning(
                "`parallel=%d` (--jobs %d) is ignored with `ray` (--ray): Ray schedules the jobs on its workers",
                parallel,
                parallel,
            )
        owns_connection = connect_ray(ray)  # an unreachable cluster fails here, before any job is sent
        try:
            results = _run_on_ray(job_list, config, renderer, max_retries, notify)
        finally:
            if owns_connection:
                import_ray().shutdown()
        return BatchResult(results, time.perf_counter() - started, f"ray({ray})")

    def one(job: Job) -> JobResult:
        result = run_job(job, config, renderer)
        notify(result)
        return result

    if parallel == 1:
        results = [one(job) for job in job_list]
    else:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="rerender-batch") as pool:
            results = list(pool.map(one, job_list))
    return BatchResult(
        results, time.perf_counter() - started, "sequential" if parallel == 1 else f"threads({parallel})"
    )


def format_summary(result: BatchResult) -> str:
    """The batch as a text table: per job the status, time and output, then each failed job's error."""
    rows = [("job", "status", "time", "output")]
    for number, item in enumerate(result.jobs, start=1):
        rows.append((f"{number} {item.job.video.name}", item.status, f"{item.seconds:.1f} s", str(item.job.output)))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    counts = {status: sum(item.status == status for item in result.jobs) for status in ("done", "skipped", "failed")}
    lines.append(
        f"{len(result.jobs)} jobs in {result.seconds:.1f} s ({result.executor}): "
        + ", ".join(f"{count} {status}" for status, count in counts.items())
    )
    for number, item in enumerate(result.jobs, start=1):
        if item.status == "failed":
            lines.append(f"job {number} ({item.job.video}) failed: {item.error}")
    return "\n".join(lines)
