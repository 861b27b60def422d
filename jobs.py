"""Who runs an analysis and records its state: a SQLite job table and a pool of worker threads.

No Flask in here. The web app submits jobs and reads their state; the workers call ``analyse`` (a
plain function of a job id and a progress callback), so the pool can be swapped for a distributed
queue (Celery + Redis, say) without touching the analysis or the pages.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import custom_vision
import face
import pipeline
from config import Settings
from storage import AnalysisFolders, hours_ago

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINISHED = (DONE, FAILED)
# Why a job failed, as codes with parameters: each page says them in its own language (web.py), and
# what only an operator should see (hosts, project ids, library errors) goes to the log.
UPLOAD_MISSING = "upload_missing"
UNREADABLE = "unreadable"
TOO_LONG = "too_long"  # params: limit_s
CLASSIFIER_FAILED = "classifier_failed"
INTERRUPTED = "interrupted"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    file_name TEXT,
    media TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
"""
ADDED_COLUMNS = {"file_name": "TEXT", "media": "TEXT"}  # to tables made before them


class JobFailedError(Exception):
    """An analysis that cannot succeed: a code above and its parameters, shown to the person who
    uploaded the video in their language."""

    def __init__(self, code: str, **params: float | str):
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Failure:
    code: str
    params: dict

    @classmethod
    def parse(cls, stored: str) -> Failure:
        try:
            data = json.loads(stored)
            return cls(str(data["code"]), dict(data.get("params") or {}))
        except (ValueError, KeyError, TypeError):  # written before codes: say no more than that it failed
            return cls(INTERRUPTED, {})


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    stage: str | None
    frames_done: int
    frames_total: int
    error: str | None  # a Failure as JSON
    created_at: float
    started_at: float | None
    finished_at: float | None
    file_name: str | None = None  # the name the file was uploaded under, for display only
    media: str | None = None  # video or photo

    @property
    def failure(self) -> Failure | None:
        return None if self.error is None else Failure.parse(self.error)

    @property
    def progress(self) -> float:
        """0 to 1: the share of sampled frames searched for faces (1 once done)."""
        if self.status == DONE:
            return 1.0
        if self.frames_total <= 0:
            return 0.0
        return round(min(1.0, self.frames_done / self.frames_total), 4)


class JobStore:
    """The job table in one SQLite file; safe to use from many threads (a connection per call)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def create(self, job_id: str, file_name: str | None = None, media: str | None = None) -> Job:
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, status, created_at, file_name, media) VALUES (?, ?, ?, ?, ?)",
                (job_id, QUEUED, time.time(), file_name, media),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(**row) if row else None

    def claim_next(self) -> Job | None:
        """Mark the oldest queued job running and return it; None when the queue is empty. Atomic,
        so several workers (or processes) never take the same job."""
        with self._connect() as db:
            row = db.execute(
                "UPDATE jobs SET status = ?, started_at = ?, stage = NULL, frames_done = 0, error = NULL "
                "WHERE id = (SELECT id FROM jobs WHERE status = ? ORDER BY created_at LIMIT 1) RETURNING *",
                (RUNNING, time.time(), QUEUED),
            ).fetchone()
        return Job(**row) if row else None

    def progress(self, job_id: str, stage: str, frames_done: int, frames_total: int) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET stage = ?, frames_done = ?, frames_total = ? WHERE id = ?",
                (stage, frames_done, frames_total, job_id),
            )

    def finish(self, job_id: str, error: str | None = None, **params: float | str) -> None:
        """Record the end of a job: done, or failed with the code ``error`` and its parameters."""
        if error is not None:
            error = json.dumps({"code": error, "params": params})
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (FAILED if error else DONE, error, time.time(), job_id),
            )

    def requeue(self, job_id: str) -> bool:
        """Queue a failed job again; False when it is not failed."""
        with self._connect() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, error = NULL, finished_at = NULL, frames_done = 0 "
                "WHERE id = ? AND status = ?",
                (QUEUED, job_id, FAILED),
            ).rowcount
        return changed == 1

    def requeue_interrupted(self) -> int:
        """Queue again the jobs that were running when the process died; how many there were."""
        with self._connect() as db:
            return db.execute(
                "UPDATE jobs SET status = ?, stage = NULL, frames_done = 0 WHERE status = ?", (QUEUED, RUNNING)
            ).rowcount

    def delete(self, job_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def finished_before(self, moment: float) -> list[str]:
        """Ids of the jobs that ended before ``moment`` (a time.time() value)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE status IN (?, ?) AND finished_at < ?", (*FINISHED, moment)
            ).fetchall()
        return [row["id"] for row in rows]

    def ids(self) -> set[str]:
        with self._connect() as db:
            return {row["id"] for row in db.execute("SELECT id FROM jobs")}


Progress = Callable[[str, int, int], None]
Analyse = Callable[[str, Progress], None]  # job id, progress callback; raises JobFailedError


class JobRunner:
    """Runs queued jobs on ``workers`` threads in this process, and sweeps expired ones.

    ``analyse(job_id, progress)`` does the work; a JobFailedError fails the job with its message,
    any other exception fails it with a generic one (and is logged), and the worker goes on.
    ``sweep(expired_before)`` deletes what is older than the retention period; it runs every
    ``sweep_interval_s`` seconds.
    """

    def __init__(
        self,
        store: JobStore,
        analyse: Analyse,
        *,
        workers: int = 1,
        sweep: Callable[[], None] | None = None,
        sweep_interval_s: float = 600.0,
    ):
        self.store = store
        self.analyse = analyse
        self.workers = max(1, workers)
        self.sweep = sweep
        self.sweep_interval_s = sweep_interval_s
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        """Queue again what was running when the process last stopped, then start the workers.
        Calling it again does nothing."""
        with self._start_lock:
            if self._threads:
                return
            requeued = self.store.requeue_interrupted()
            if requeued:
                log.info("queued %d interrupted job(s) again", requeued)
            self._stopping.clear()
            for number in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"analysis-{number}", daemon=True)
                thread.start()
                self._threads.append(thread)
            if self.sweep:
                thread = threading.Thread(target=self._sweep_periodically, name="retention-sweep", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Let the workers finish their current job, then end them."""
        self._stopping.set()
        self.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def notify(self) -> None:
        """Wake a worker: a job was queued."""
        with self._wake:
            self._wake.notify_all()

    def _work(self) -> None:
        while not self._stopping.is_set():
            job = self.store.claim_next()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._run(job.id)

    def _run(self, job_id: str) -> None:
        log.info("analysis %s started", job_id)
        try:
            self.analyse(job_id, lambda stage, done, total: self.store.progress(job_id, stage, done, total))
        except JobFailedError as error:
            log.warning("analysis %s failed: %s %s (%s)", job_id, error.code, error.params, error.__cause__)
            self.store.finish(job_id, error.code, **error.params)
            return
        except Exception:
            log.exception("analysis %s crashed", job_id)
            self.store.finish(job_id, INTERRUPTED)
            return
        self.store.finish(job_id)
        log.info("analysis %s done", job_id)

    def _sweep_periodically(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sweep()
            except Exception:
                log.exception("the retention sweep failed")
            self._stopping.wait(self.sweep_interval_s)


class VideoAnalysis:
    """What a worker does with one job: analyse its upload, keep the result beside it, and delete
    the video (unless KEEP_UPLOADS). A failed analysis keeps the video so it can be run again."""

    def __init__(
        self,
        store: JobStore,
        folders: AnalysisFolders,
        settings: Settings,
        detector: Callable[[], face.FaceDetector],
        classifier: Callable[[], custom_vision.Classifier],
    ):
        self.store = store
        self.folders = folders
        self.settings = settings
        self.detector = detector
        self.classifier = classifier

    def __call__(self, job_id: str, progress: Progress) -> None:
        path = self.folders.upload_path(job_id)
        job = self.store.get(job_id)
        if path is None or job is None:
            raise JobFailedError(UPLOAD_MISSING)
        tick = time.perf_counter()
        try:
            detector, classifier = self.detector(), self.classifier()  # loaded by the first job only
            warm_up = time.perf_counter() - tick
            result = pipeline.analyze(
                path,
                self.settings,
                detector=detector,
                classifier=classifier,
                crops_dir=self.folders.crops_dir(job_id),
                progress=progress,
                max_seconds=self.settings.max_video_seconds,
            )
        except pipeline.VideoTooLongError as error:
            raise JobFailedError(TOO_LONG, limit_s=error.limit_s) from error
        except face.UnreadableMediaError as error:
            raise JobFailedError(UNREADABLE) from error
        except custom_vision.ClassifierError as error:
            raise JobFailedError(CLASSIFIER_FAILED) from error
        result.file = job.file_name or result.file
        result.analysed_at = round(time.time(), 3)
        result.timings_s["warm_up"] = round(warm_up, 4)
        result.timings_s["wait"] = round((job.started_at or job.created_at) - job.created_at, 4)
        if self.store.get(job_id) is None:  # deleted while it ran: leave nothing behind
            self.folders.delete(job_id)
            return
        self.folders.write_result(job_id, result)
        if not self.settings.keep_uploads:
            self.folders.remove_upload(job_id)


def sweep_expired(store: JobStore, folders: AnalysisFolders, retention_hours: float) -> int:
    """Delete every analysis that ended more than ``retention_hours`` ago (its job, crops, result
    and any upload), and folders that no job records and nobody touched for as long. How many."""
    moment = hours_ago(retention_hours)
    expired = store.finished_before(moment)
    for job_id in expired:
        folders.delete(job_id)
        store.delete(job_id)
    known = store.ids()
    orphans = [folder_id for folder_id in folders.untouched_since(moment) if folder_id not in known]
    for folder_id in orphans:
        folders.delete(folder_id)
    if expired or orphans:
        log.info("retention sweep deleted %d analyses", len(expired) + len(orphans))
    return len(expired) + len(orphans)
