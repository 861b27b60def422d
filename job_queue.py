"""Who runs the jobs: the one interface the pages, the API and the CLI call, and its two engines.

- `LocalJobQueue` (JOB_BACKEND=local, the default): worker threads in the app's own process. Nothing
  else to run; one machine.
- `CeleryJobQueue` (JOB_BACKEND=celery): each job is a Celery task on a Redis broker, run by
  `celery --app tasks worker` processes on this machine or others that share the database and the
  upload folder.

Either way a worker claims the job in the job table under a lease (jobs.py), so a job is never run
by two live workers, and a job whose worker died is taken again once its lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import jobs
from config import Settings

log = logging.getLogger(__name__)

ANALYSE_TASK = "deepfake.analyse"  # tasks.analyse


def make_celery(settings: Settings):
    """The Celery app, as the web side (sending) and the workers (tasks.py, running) both see it.

    Tasks are acknowledged late and rejected when their worker process dies, one fetched at a time,
    so a killed worker's job is delivered again; whether a delivered task runs is the job table's
    lease's call (jobs.JobStore.claim), so a redelivered task whose job is done does nothing."""
    from celery import Celery

    app = Celery("deepfake", broker=settings.celery_broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # A task not acknowledged within this long is delivered again; the lease makes that harmless.
        broker_transport_options={"visibility_timeout": int(settings.job_timeout_s + 2 * settings.job_lease_s)},
        worker_hijack_root_logger=False,
    )
    return app


class JobQueue(Protocol):
    def submit(self, job_id: str) -> None:
        """A job was created in the store: run it."""

    def retry(self, job_id: str) -> bool:
        """Queue a failed job again; False when it is not failed."""

    def cancel(self, job_id: str) -> bool:
        """Forget a job (its worker stops between batches and writes nothing more); False when unknown."""

    def start(self) -> None:
        """Start what this process runs (workers, the retention sweep); again: nothing."""

    def stop(self, timeout: float = 30.0) -> None:
        """Stop promptly: a running job finishes or is handed back to the queue."""


class _Periodic:
    """Runs ``task`` every ``interval_s`` on a daemon thread until stopped; errors are logged."""

    def __init__(self, name: str, task: Callable[[], object], interval_s: float):
        self.name, self.task, self.interval_s = name, task, interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.task()
            except Exception:
                log.exception("%s failed", self.name)
            self._stopping.wait(self.interval_s)


class LocalJobQueue:
    """``workers`` threads in this process take jobs from the store; the retention sweep runs
    beside them."""

    def __init__(
        self,
        store: jobs.JobStore,
        analyse: jobs.Analyse,
        settings: Settings,
        *,
        workers: int = 1,
        sweep: Callable[[], object] | None = None,
        sweep_interval_s: float = 600.0,
    ):
        self.store = store
        self.analyse = analyse
        self.settings = settings
        self.workers = max(1, workers)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sweep = _Periodic("retention-sweep", sweep, sweep_interval_s) if sweep else None

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def submit(self, job_id: str) -> None:
        self._wake.set()

    def retry(self, job_id: str) -> bool:
        if not self.store.requeue(job_id):
            return False
        self._wake.set()
        return True

    def cancel(self, job_id: str) -> bool:
        return self.store.delete(job_id)

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stopping.clear()
            for number in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"analysis-{number}", daemon=True)
                thread.start()
                self._threads.append(thread)
            if self._sweep:
                self._sweep.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._stopping.set()
            self._wake.set()
            for thread in self._threads:
                thread.join(timeout)
            self._threads = []
            if self._sweep:
                self._sweep.stop(timeout)

    def _work(self) -> None:
        owner = jobs.worker_name()
        lease_s = self.settings.job_lease_s
        while not self._stopping.is_set():
            # Clear first, then look: a job submitted after the look sets the event again, so the
            # wait below returns at once and no wake-up is lost.
            self._wake.clear()
            job = self.store.claim(owner, lease_s)
            if job is None:
                # Also wake when a lease may have run out somewhere (a crashed process's job).
                self._wake.wait(timeout=lease_s / 2)
                continue
            self._wake.set()  # there may be more: let another worker look too
            jobs.execute(
                self.store,
                self.analyse,
                job,
                owner,
                lease_s=lease_s,
                timeout_s=self.settings.job_timeout_s,
                stopping=self._stopping,
            )


class CeleryJobQueue:
    """Jobs go to Celery workers through Redis (tasks.py). This side sends the tasks and, every
    lease period, sends again those whose workers died (or whose message was lost), so nothing waits
    for the broker's hour-long visibility timeout; the claim in the store keeps resends harmless."""

    def __init__(
        self,
        store: jobs.JobStore,
        settings: Settings,
        *,
        sweep: Callable[[], object] | None = None,
        sweep_interval_s: float = 600.0,
    ):
        self.store = store
        self.settings = settings
        self._rescue = _Periodic("job-rescue", self.rescue, settings.job_lease_s)
        self._sweep = _Periodic("retention-sweep", sweep, sweep_interval_s) if sweep else None
        self._started = False
        self._celery = None
        self._celery_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._started

    def _send(self, job_id: str) -> None:
        with self._celery_lock:
            if self._celery is None:
                self._celery = make_celery(self.settings)
        self._celery.send_task(ANALYSE_TASK, args=[job_id])

    def submit(self, job_id: str) -> None:
        try:
            self._send(job_id)
        except Exception:  # the broker is away: the job is in the table, and the rescue sends it later
            log.exception("could not send job %s to the workers now; it will be sent again", job_id)

    def retry(self, job_id: str) -> bool:
        if not self.store.requeue(job_id):
            return False
        self.submit(job_id)
        return True

    def cancel(self, job_id: str) -> bool:
        return self.store.delete(job_id)

    def rescue(self) -> int:
        """Send again the jobs no worker holds: running under a lease that has run out (their worker
        died), or queued for ten lease periods (their message was lost with a broker). How many."""
        waiting = self.store.waiting(queued_for_s=10 * self.settings.job_lease_s)
        for job_id in waiting:
            self._send(job_id)
        if waiting:
            log.info("sent %d waiting job(s) to the workers again", len(waiting))
        return len(waiting)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._rescue.start()
        if self._sweep:
            self._sweep.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._rescue.stop(timeout)
        if self._sweep:
            self._sweep.stop(timeout)
        self._started = False
