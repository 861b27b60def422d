"""The Celery app (JOB_BACKEND=celery): one task, `analyse`, run by worker processes started with

    .venv/bin/celery --app tasks worker --concurrency N

on any machine that reaches the broker (CELERY_BROKER_URL, Redis), the job database (DATABASE_URL)
and the upload folder (UPLOAD_FOLDER, a shared volume when the machines differ). Settings come from
the environment and `.env`, as for the web app.

Tasks are acknowledged late and rejected when their worker process dies, with one task fetched at a
time, so a killed worker's job is delivered again; the job table's lease decides whether a delivered
task runs (jobs.JobStore.claim), so a redelivered task whose job is done or running elsewhere does
nothing. On SIGTERM (warm shutdown) a worker takes no new task and finishes the one it runs.
"""

from __future__ import annotations

import functools
import logging

from celery import Celery
from dotenv import load_dotenv

import jobs
from config import Settings

log = logging.getLogger(__name__)

load_dotenv()
_settings = Settings.from_environment()
app = Celery("deepfake", broker=_settings.celery_broker_url)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    # A task not acknowledged within this long is delivered again; the lease makes that harmless.
    broker_transport_options={"visibility_timeout": int(_settings.job_timeout_s + 2 * _settings.job_lease_s)},
    worker_hijack_root_logger=False,
)


@functools.cache
def worker_services():
    """This worker process's services (MTCNN, the classifier, the store), built on first use."""
    from services import Services

    return Services(Settings.from_environment())


@app.task(name="deepfake.analyse")
def analyse(job_id: str) -> None:
    """Run one job if it is this worker's to run: queued, or left by a dead worker."""
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
