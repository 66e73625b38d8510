"""Admin repair jobs: fine-pruning in a separate process, then a hot swap of the pair.

The worker process calls repair/'s public entry point, which publishes the new version
atomically (a symbolic-link swap); the service then reloads that one folder. A failed or
killed worker publishes nothing, so the serving pair is untouched.
"""

import logging
import multiprocessing
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import modelstore

log = logging.getLogger(__name__)

# TensorFlow is not fork-safe: the worker is a fresh interpreter.
_CONTEXT = multiprocessing.get_context("spawn")


@dataclass
class RepairJob:
    """State of one repair, as GET /repair/{id} reports it."""

    id: str
    model: str
    status: str = "queued"  # queued, running, succeeded, failed
    stage: str = "queued"
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    version: str | None = None
    metrics: dict | None = None
    error: str | None = None
    bad_input: bool = False
    """The repair refused its inputs (the model or the data); ``error`` says why, in a line."""
    _inputs_checked: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def wait_for_input_check(self, timeout: float) -> bool:
        """Block until the worker has loaded and checked its inputs (or ended); False if
        ``timeout`` seconds passed first."""
        return self._inputs_checked.wait(timeout)


class JobConflict(Exception):
    """A repair of the same model is already running."""


class RepairJobs:
    """Starts worker processes, follows their progress, and calls back on success."""

    def __init__(
        self,
        on_success: Callable[[str], object],
        on_finish: Callable[[str], object] | None = None,
    ) -> None:
        """``on_success(model)`` runs before a job is reported done (the service loads the new
        version then); ``on_finish(outcome)`` after every job ("succeeded" or "failed")."""
        self._jobs: dict[str, RepairJob] = {}
        self._active: dict[str, str] = {}  # model -> job id
        self._lock = threading.Lock()
        self._on_success = on_success
        self._on_finish = on_finish or (lambda outcome: None)
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}

    def get(self, job_id: str) -> RepairJob | None:
        return self._jobs.get(job_id)

    def start(self, model: str, spec: dict) -> RepairJob:
        """Queue a repair of ``model``; raises :class:`JobConflict` if one is running."""
        with self._lock:
            if model in self._active:
                raise JobConflict(f"a repair of {model} is already running ({self._active[model]})")
            job = RepairJob(id=uuid.uuid4().hex, model=model)
            self._jobs[job.id] = job
            self._active[model] = job.id
        threading.Thread(target=self._run, args=(job, spec), daemon=True).start()
        return job

    def _run(self, job: RepairJob, spec: dict) -> None:
        queue = _CONTEXT.Queue()
        process = _CONTEXT.Process(
            target=_worker_main, args=(spec, queue), name=f"repair-{job.model}", daemon=True
        )
        outcome, error = "failed", None
        try:
            process.start()
            self._processes[job.id] = process
            # A repair first loads and checks its inputs; it reports stages from then on.
            job.status, job.stage = "running", "load"
            result = self._follow(job, process, queue)
            if result is None:
                raise RuntimeError(_death_message(process.exitcode))
            if result[0] in ("failed", "bad_input"):
                job.bad_input = result[0] == "bad_input"
                raise RuntimeError(result[1])
            job.version, job.metrics = result[1]["version"], result[1]["metrics"]
            self._on_success(job.model)  # the new version is served before we say so
            outcome = "succeeded"
        except Exception as exc:  # every failure is reported on the job
            error = str(exc)
        finally:
            process.join(timeout=5)
            if outcome == "failed":
                _discard_partial(Path(spec["out"]))
            self._processes.pop(job.id, None)
            with self._lock:
                self._active.pop(job.model, None)
            # Only now is the job final: a client that sees it may start the next repair.
            job.error, job.finished_at = error, time.time()
            job.stage, job.progress = (
                ("done", 1.0) if outcome == "succeeded" else (job.stage, job.progress)
            )
            job.status = outcome
            job._inputs_checked.set()
            self._on_finish(outcome)

    @staticmethod
    def _follow(job: RepairJob, process, queue) -> tuple | None:
        """Read the worker's messages until it reports a result or dies."""
        import queue as queue_module

        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue_module.Empty:
                if not process.is_alive():
                    try:  # a last message may have arrived as it exited
                        message = queue.get(timeout=0.5)
                    except queue_module.Empty:
                        return None
                else:
                    continue
            if message[0] == "progress":
                job.stage, job.progress = message[1], float(message[2])
                job._inputs_checked.set()  # the repair reports stages once its inputs loaded
            else:
                return message


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"repair worker was killed by {signal.Signals(-exitcode).name}"
    return f"repair worker exited with code {exitcode} without a result"


def discard_partials(models_dir: Path) -> None:
    """At start-up: remove what repairs killed with the last process left behind."""
    for name in modelstore.versioned_names(models_dir):
        _discard_partial(models_dir / name)


def _discard_partial(out: Path) -> None:
    """Remove a dead worker's staging folder, so a failed repair leaves no partial files."""
    try:
        for path in modelstore.discard_partial(out):
            log.info("removed partial output %s", path)
    except OSError:
        log.exception("could not clean partial output of %s", out)


def _worker_main(spec: dict, queue) -> None:  # runs in the worker process
    """Entry point of the worker process: run the repair, report progress and the result."""
    try:
        import repair

        inputs = repair.RepairInputs(
            bad_model=Path(spec["bad_model"]),
            clean_data=Path(spec["clean_data"]),
            poisoned_data=tuple(Path(p) for p in spec["poisoned_data"]),
            target=spec["target"],
            clean_test=Path(spec["clean_test"]) if spec["clean_test"] else None,
        )
        manifest = repair.fine_prune_to_folder(
            inputs,
            Path(spec["out"]),
            repair.RepairOptions(**spec["options"]),
            name=spec["model"],
            on_progress=lambda stage, fraction: queue.put(("progress", stage, fraction)),
            extra_manifest={"published_by": spec.get("published_by")},
        )
        metrics = manifest.metrics.model_dump(mode="json") if manifest.metrics else None
        queue.put(("succeeded", {"version": manifest.version, "metrics": metrics}))
    except BaseException as exc:  # reported to the service, not raised
        import repair

        if isinstance(exc, repair.RepairInputError):
            queue.put(("bad_input", str(exc)))
        else:
            queue.put(("failed", f"{type(exc).__name__}: {exc}"))
