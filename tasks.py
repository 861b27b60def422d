"""The Celery app (JOB_BACKEND=celery): one task, `analyse`, run by worker processes started with

    .venv/bin/celery --app tasks worker --concurrency N

on any machine that reaches the broker (CELERY_BROKER_URL, Redis), the job database (DATABASE_URL)
and the upload folder (UPLOAD_FOLDER, a shared volume when the machines differ). Settings come from
the environment and `.env`, as for the web app. How tasks are delivered and acknowledged:
job_queue.make_celery. On SIGTERM (warm shutdown) a worker takes no new task and finishes the one it
runs; SIGKILL loses nothing either: the job's lease runs out and the web side sends it again.
"""

from __future__ import annotations

import functools
import logging
import threading

from celery import signals
from dotenv import load_dotenv

import jobs
from config import Settings
from job_queue import ANALYSE_TASK, make_celery

log = logging.getLogger(__name__)

load_dotenv()
app = make_celery(Settings.from_environment())


@functools.cache
def worker_services():
    """This worker process's services (MTCNN, the classifier, the store), built on first use."""
    from services import Services

    return Services(Settings.from_environment())


WARM_UP_WAIT_S = 300.0
_warming, _warm = threading.Event(), threading.Event()


@signals.worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    """Each worker process starts loading its models at once, on a thread (Celery gives a new
    process only seconds to report that it is alive)."""
    _warming.set()
    threading.Thread(target=_warm_up_and_say_so, name="warm-up", daemon=True).start()


def _warm_up_and_say_so() -> None:
    try:
        worker_services().warm_up()
    finally:
        _warm.set()


@app.task(name=ANALYSE_TASK)
def analyse(job_id: str) -> None:
    """Run one job if it is this worker's to run: queued, or left by a dead worker. A task that
    arrives while the process warms up waits for it: the analysis needs the models anyway, and
    while TensorFlow loads, stderr (where the worker logs) is muted (tf_runtime.py)."""
    if _warming.is_set():
        _warm.wait(WARM_UP_WAIT_S)

    services = worker_services()
    owner = jobs.worker_name()
    job = services.store.claim(owner, services.settings.job_lease_s, job_id=job_id)
    if job is None:
        log.info("job %s: nothing to do (done, gone, or running elsewhere)", job_id)
        return
    jobs.execute(
        services.store,
        services.analysis,
        job,
        owner,
        lease_s=services.settings.job_lease_s,
        timeout_s=services.settings.job_timeout_s,
    )
