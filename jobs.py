"""Jobs: the job table that web and workers share, how a worker runs one job under a lease, what a
worker does with a video, and the retention sweep. No Flask in here.

The table lives in one database reached through SQLAlchemy Core (`DATABASE_URL`: SQLite for one
machine, PostgreSQL for several). A worker claims a job with a lease that it renews while it works;
only a job whose lease has run out (its worker died) is claimed again, so a restarted web process
or a redelivered task never runs a live job twice, and a job reaches `done` exactly once. Which
workers there are (threads in the app's process, or Celery workers elsewhere) is job_queue.py's
business.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

import custom_vision
import download
import face
import pipeline
from config import Settings
from storage import AnalysisFolders, hours_ago

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
DOWNLOADING = "downloading"  # the stage before the pipeline's own stages when a job comes from a link
FINISHED = (DONE, FAILED)
# Why a job failed, as codes with parameters: each page says them in its own language (wording.py),
# and what only an operator should see (hosts, project ids, library errors) goes to the log.
UPLOAD_MISSING = "upload_missing"
UNREADABLE = "unreadable"
TOO_LONG = "too_long"  # params: limit_s
TOO_MANY_PIXELS = "too_many_pixels"  # params: limit_mp
TOO_MANY_FRAMES = "too_many_frames"  # params: limit
TIMED_OUT = "timed_out"  # params: limit_s
CLASSIFIER_FAILED = "classifier_failed"
CRASHED = "crashed"  # params: attempts; its worker died that many times
INTERRUPTED = "interrupted"

# 1: the sqlite3 table before leases (no version table); 2: leases and attempts; 3: source_url
SCHEMA_VERSION = 3
metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(32)),
    sa.Column("frames_done", sa.Integer, nullable=False, default=0),
    sa.Column("frames_total", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("file_name", sa.String(400)),
    sa.Column("media", sa.String(8)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("source_url", sa.Text),  # a link to fetch the video from (downloading stage)
    sa.Index("jobs_by_status", "status", "created_at"),
)
version_table = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
ADDED_COLUMNS = {  # to tables made by earlier versions
    "file_name": "VARCHAR(400)",
    "media": "VARCHAR(8)",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "lease_owner": "VARCHAR(200)",
    "lease_expires": "FLOAT",
    "source_url": "TEXT",
}


class JobFailedError(Exception):
    """An analysis that cannot succeed: a code above and its parameters, shown to the person who
    uploaded the video in their language."""

    def __init__(self, code: str, **params: float | str):
        super().__init__(code)
        self.code = code
        self.params = params


class JobDeletedError(Exception):
    """The job was deleted (or its lease taken) while it ran: stop, write nothing more."""


class WorkerStoppingError(Exception):
    """The worker is stopping: the job goes back to the queue at once."""


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
    attempts: int = 0  # how many times a worker has claimed it
    lease_owner: str | None = None
    lease_expires: float | None = None
    source_url: str | None = None  # the link the video comes from, when it was not uploaded

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


def worker_name() -> str:
    """Who holds a lease: the host, the process and a random part (threads get their own)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobStore:
    """The job table in the database at ``url``; safe to use from many threads and processes."""

    def __init__(self, url: str, max_attempts: int = 3):
        self.max_attempts = max_attempts
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        options: dict = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url[len("sqlite:///") :]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            options["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(url, **options)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._migrate()
        except sa.exc.DBAPIError:  # another process (web, a worker) was making the same tables just now
            time.sleep(0.5)
            self._migrate()

    def _migrate(self) -> None:
        with self.engine.begin() as db:
            inspector = sa.inspect(db)
            if inspector.has_table("jobs"):
                present = {column["name"] for column in inspector.get_columns("jobs")}
                for column, kind in ADDED_COLUMNS.items():
                    if column not in present:
                        db.execute(sa.text(f"ALTER TABLE jobs ADD COLUMN {column} {kind}"))
            metadata.create_all(db)
            version = db.execute(sa.select(version_table.c.version)).scalar()
            if version is None:
                db.execute(version_table.insert().values(version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise RuntimeError(f"the job database is at schema version {version}; this code knows {SCHEMA_VERSION}")
            elif version < SCHEMA_VERSION:
                db.execute(version_table.update().values(version=SCHEMA_VERSION))

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as db:
            return db.execute(sa.select(version_table.c.version)).scalar_one()

    def create(
        self, job_id: str, file_name: str | None = None, media: str | None = None, source_url: str | None = None
    ) -> Job:
        with self.engine.begin() as db:
            db.execute(
                jobs_table.insert().values(
                    id=job_id,
                    status=QUEUED,
                    created_at=time.time(),
                    file_name=file_name,
                    media=media,
                    source_url=source_url,
                    frames_done=0,
                    frames_total=0,
                    attempts=0,
                )
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as db:
            row = db.execute(jobs_table.select().where(jobs_table.c.id == job_id)).mappings().first()
        return Job(**row) if row else None

    def claim(self, owner: str, lease_s: float, job_id: str | None = None) -> Job | None:
        """Take a job for ``owner`` for ``lease_s`` seconds: ``job_id``, or the oldest one that is
        queued or whose lease has run out. None when there is none (or ``job_id`` is not claimable:
        done, failed, gone, or running under a live lease). A job whose workers died
        ``max_attempts`` times is failed here instead. Atomic: of several claimants one wins."""
        while True:
            now = time.time()
            claimable = sa.or_(
                jobs_table.c.status == QUEUED,
                sa.and_(jobs_table.c.status == RUNNING, jobs_table.c.lease_expires < now),
            )
            query = jobs_table.select().where(claimable)
            query = (
                query.where(jobs_table.c.id == job_id) if job_id else query.order_by(jobs_table.c.created_at).limit(1)
            )
            with self.engine.connect() as db:
                row = db.execute(query).mappings().first()
            if row is None:
                return None
            candidate = Job(**row)
            same = sa.and_(jobs_table.c.id == candidate.id, jobs_table.c.status == candidate.status)
            if candidate.status == RUNNING:
                same = sa.and_(same, jobs_table.c.lease_owner == candidate.lease_owner)
            if candidate.status == RUNNING and candidate.attempts >= self.max_attempts:
                failure = json.dumps({"code": CRASHED, "params": {"attempts": candidate.attempts}})
                with self.engine.begin() as db:
                    db.execute(
                        jobs_table.update()
                        .where(same)
                        .values(status=FAILED, error=failure, finished_at=now, lease_owner=None, lease_expires=None)
                    )
                log.error("job %s failed: its worker died %d times", candidate.id, candidate.attempts)
                continue
            with self.engine.begin() as db:
                won = db.execute(
                    jobs_table.update()
                    .where(same)
                    .values(
                        status=RUNNING,
                        lease_owner=owner,
                        lease_expires=now + lease_s,
                        started_at=now,
                        attempts=jobs_table.c.attempts + 1,
                        stage=None,
                        frames_done=0,
                        error=None,
                    )
                ).rowcount
            if won:
                return self.get(candidate.id)
            if job_id:  # somebody else took it just now
                return None

    def renew(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease; False when the job is gone or no longer ``owner``'s."""
        return self._update_own(job_id, owner, lease_expires=time.time() + lease_s)

    def progress(self, job_id: str, owner: str, stage: str, frames_done: int, frames_total: int) -> bool:
        """Record how far the job is; False when it is gone or no longer ``owner``'s."""
        return self._update_own(job_id, owner, stage=stage, frames_done=frames_done, frames_total=frames_total)

    def finish(self, job_id: str, owner: str, error: str | None = None, **params: float | str) -> bool:
        """Record the end of ``owner``'s job: done, or failed with the code ``error`` and its
        parameters. False (and nothing written) when the job is not ``owner``'s running job."""
        stored = None if error is None else json.dumps({"code": error, "params": params})
        return self._update_own(
            job_id,
            owner,
            status=FAILED if error else DONE,
            error=stored,
            finished_at=time.time(),
            lease_owner=None,
            lease_expires=None,
        )

    def hand_back(self, job_id: str, owner: str) -> bool:
        """Put ``owner``'s job back in the queue (its worker is stopping); the attempt does not count."""
        return self._update_own(
            job_id,
            owner,
            status=QUEUED,
            stage=None,
            frames_done=0,
            lease_owner=None,
            lease_expires=None,
            attempts=jobs_table.c.attempts - 1,
        )

    def _update_own(self, job_id: str, owner: str, **values) -> bool:
        with self.engine.begin() as db:
            return (
                db.execute(
                    jobs_table.update()
                    .where(jobs_table.c.id == job_id, jobs_table.c.status == RUNNING, jobs_table.c.lease_owner == owner)
                    .values(**values)
                ).rowcount
                == 1
            )

    def requeue(self, job_id: str) -> bool:
        """Queue a failed job again (Analyse again), with its attempts counted afresh; False when it
        is not failed."""
        with self.engine.begin() as db:
            return (
                db.execute(
                    jobs_table.update()
                    .where(jobs_table.c.id == job_id, jobs_table.c.status == FAILED)
                    .values(status=QUEUED, error=None, finished_at=None, frames_done=0, stage=None, attempts=0)
                ).rowcount
                == 1
            )

    def delete(self, job_id: str) -> bool:
        with self.engine.begin() as db:
            return db.execute(jobs_table.delete().where(jobs_table.c.id == job_id)).rowcount == 1

    def finished_before(self, moment: float) -> list[str]:
        """Ids of the jobs that ended before ``moment`` (a time.time() value)."""
        query = sa.select(jobs_table.c.id).where(jobs_table.c.status.in_(FINISHED), jobs_table.c.finished_at < moment)
        with self.engine.connect() as db:
            return list(db.execute(query).scalars())

    def waiting(self, queued_for_s: float = 0.0) -> list[str]:
        """Ids of the jobs that a worker could take: queued for at least ``queued_for_s``, or
        running under a lease that has run out. Oldest first."""
        now = time.time()
        query = (
            sa.select(jobs_table.c.id)
            .where(
                sa.or_(
                    sa.and_(jobs_table.c.status == QUEUED, jobs_table.c.created_at <= now - queued_for_s),
                    sa.and_(jobs_table.c.status == RUNNING, jobs_table.c.lease_expires < now),
                )
            )
            .order_by(jobs_table.c.created_at)
        )
        with self.engine.connect() as db:
            return list(db.execute(query).scalars())

    def ids(self) -> set[str]:
        with self.engine.connect() as db:
            return set(db.execute(sa.select(jobs_table.c.id)).scalars())

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


Progress = Callable[[str, int, int], None]
Analyse = Callable[[str, Progress], None]  # job id, progress callback; raises JobFailedError


def execute(
    store: JobStore,
    analyse: Analyse,
    job: Job,
    owner: str,
    *,
    lease_s: float,
    timeout_s: float,
    stopping: threading.Event | None = None,
) -> None:
    """Run ``owner``'s claimed ``job``: renew its lease while ``analyse`` works, stop it when the
    job is deleted (JobDeletedError), hand it back when ``stopping`` is set, fail it past ``timeout_s``,
    and record how it ended. Whatever ``analyse`` raises, the worker goes on."""
    finished = threading.Event()
    lost = threading.Event()
    started = time.monotonic()

    def keep_lease() -> None:
        while not finished.wait(lease_s / 3):
            if not store.renew(job.id, owner, lease_s):
                lost.set()
                return

    def progress(stage: str, done: int, total: int) -> None:
        if lost.is_set():
            raise JobDeletedError(job.id)
        if stopping is not None and stopping.is_set():
            raise WorkerStoppingError(job.id)
        if time.monotonic() - started > timeout_s:
            raise JobFailedError(TIMED_OUT, limit_s=timeout_s)
        if not store.progress(job.id, owner, stage, done, total):
            raise JobDeletedError(job.id)

    heartbeat = threading.Thread(target=keep_lease, name=f"lease-{job.id[:8]}", daemon=True)
    heartbeat.start()
    log.info("analysis %s started (attempt %d)", job.id, job.attempts)
    try:
        analyse(job.id, progress)
    except JobDeletedError:
        log.info("analysis %s stopped: it was deleted", job.id)
    except WorkerStoppingError:
        store.hand_back(job.id, owner)
        log.info("analysis %s handed back: the worker is stopping", job.id)
    except JobFailedError as error:
        log.warning("analysis %s failed: %s %s (%s)", job.id, error.code, error.params, error.__cause__)
        store.finish(job.id, owner, error.code, **error.params)
    except Exception:
        log.exception("analysis %s crashed", job.id)
        store.finish(job.id, owner, INTERRUPTED)
    else:
        if store.finish(job.id, owner):
            log.info("analysis %s done", job.id)
    finally:
        finished.set()
        heartbeat.join()


class VideoAnalysis:
    """What a worker does with one job: analyse its upload, keep the result beside it, and delete
    the video (unless KEEP_UPLOADS). A failed analysis keeps the video so it can be run again, and
    leaves no face crops behind."""

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
        if job is not None and path is None and job.source_url:
            path = self._download(job, progress)
        if path is None or job is None:
            raise JobFailedError(UPLOAD_MISSING)
        crops_dir = self.folders.crops_dir(job_id)
        tick = time.perf_counter()
        try:
            detector, classifier = self.detector(), self.classifier()  # loaded by the first job only
            warm_up = time.perf_counter() - tick
            result = pipeline.analyze(
                path,
                self.settings,
                detector=detector,
                classifier=classifier,
                crops_dir=crops_dir,
                progress=progress,
                max_seconds=self.settings.max_video_seconds,
            )
        except BaseException as error:
            shutil.rmtree(crops_dir, ignore_errors=True)  # nothing half-written stays
            if isinstance(error, pipeline.VideoTooLongError):
                raise JobFailedError(TOO_LONG, limit_s=error.limit_s) from error
            if isinstance(error, pipeline.TooManyFramesError):
                raise JobFailedError(TOO_MANY_FRAMES, limit=error.limit) from error
            if isinstance(error, face.TooManyPixelsError):
                raise JobFailedError(TOO_MANY_PIXELS, limit_mp=round(error.limit / 1e6)) from error
            if isinstance(error, face.UnreadableMediaError):
                raise JobFailedError(UNREADABLE) from error
            if isinstance(error, custom_vision.ClassifierError):
                raise JobFailedError(CLASSIFIER_FAILED) from error
            raise
        result.file = job.file_name or result.file
        result.source_url = job.source_url
        result.analysed_at = round(time.time(), 3)
        result.timings_s["warm_up"] = round(warm_up, 4)
        result.timings_s["wait"] = round((job.started_at or job.created_at) - job.created_at, 4)
        if self.store.get(job_id) is None:  # deleted while it ran: leave nothing behind
            self.folders.delete(job_id)
            raise JobDeletedError(job_id)
        self.folders.write_result(job_id, result)
        if not self.settings.keep_uploads:
            self.folders.remove_upload(job_id)

    def _download(self, job: Job, progress: Progress):
        """The downloading stage: the link's video into the job's folder (progress in MB)."""
        folder = self.folders.folder(job.id)
        if folder is None:
            raise JobDeletedError(job.id)
        progress(DOWNLOADING, 0, 0)
        try:
            return download.fetch(
                job.source_url,
                folder,
                download_limits(self.settings),
                lambda done, total: progress(DOWNLOADING, _megabytes(done), _megabytes(total)),
            )
        except download.LinkError as error:
            raise JobFailedError(error.code, **error.params) from error


def _megabytes(count: int) -> int:
    return -(-count // 2**20)


def download_limits(settings: Settings) -> download.Limits:
    return download.Limits(
        max_bytes=settings.max_upload_mb * 2**20,
        max_seconds=settings.max_video_seconds,
        timeout_s=settings.download_timeout_s,
        allow_private=settings.allow_private_urls,
    )


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
