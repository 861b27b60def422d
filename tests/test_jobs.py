"""Jobs: state transitions, progress, restarts, the retention sweep and deletion."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time

import pytest

import jobs
from jobs import JobFailedError, JobRunner, JobStore
from storage import AnalysisFolders

from .conftest import azure_with, wait_for_job


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite3")


def run_until_finished(store: JobStore, runner: JobRunner, job_id: str, timeout: float = 10.0) -> jobs.Job:
    runner.start()
    runner.notify()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            job = store.get(job_id)
            if job.status in jobs.FINISHED:
                return job
            time.sleep(0.01)
    finally:
        runner.stop()
    raise AssertionError(f"{job_id} did not finish")


def test_a_job_goes_queued_running_done_with_progress_recorded(store):
    seen = []

    def analyse(job_id, progress):
        seen.append(store.get(job_id).status)
        progress("detecting faces", 3, 8)
        job = store.get(job_id)
        seen.append((job.stage, job.frames_done, job.frames_total, job.progress))

    store.create("job-a")
    assert store.get("job-a").status == jobs.QUEUED and store.get("job-a").progress == 0.0
    job = run_until_finished(store, JobRunner(store, analyse), "job-a")
    assert seen == [jobs.RUNNING, ("detecting faces", 3, 8, 0.375)]
    assert job.status == jobs.DONE and job.progress == 1.0 and job.error is None
    assert job.created_at <= job.started_at <= job.finished_at


def test_a_failing_job_records_why_and_the_worker_goes_on(store):
    def analyse(job_id, progress):
        if job_id == "bad":
            raise JobFailedError(jobs.TOO_LONG, limit_s=600)
        if job_id == "crash":
            raise RuntimeError("a bug")

    for job_id in ("bad", "crash", "good"):
        store.create(job_id)
        time.sleep(0.002)  # queued in this order
    run_until_finished(store, JobRunner(store, analyse), "good")
    assert store.get("bad").status == jobs.FAILED
    assert store.get("bad").failure == jobs.Failure(jobs.TOO_LONG, {"limit_s": 600})
    assert store.get("crash").failure == jobs.Failure(jobs.INTERRUPTED, {})
    assert store.get("good").status == jobs.DONE


def test_a_failed_job_can_be_queued_again_and_a_done_one_cannot(store):
    store.create("a")
    store.claim_next()
    store.finish("a", "broken")
    assert store.requeue("a") and store.get("a").status == jobs.QUEUED and store.get("a").error is None
    store.claim_next()
    store.finish("a")
    assert not store.requeue("a")


def test_each_job_is_claimed_once_however_many_workers(store):
    claimed = []
    lock = threading.Lock()

    def analyse(job_id, progress):
        with lock:
            claimed.append(job_id)
        time.sleep(0.01)

    ids = [f"job-{n}" for n in range(12)]
    for job_id in ids:
        store.create(job_id)
    runner = JobRunner(store, analyse, workers=4)
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(store.get(i).status != jobs.DONE for i in ids):
        time.sleep(0.01)
    runner.stop()
    assert sorted(claimed) == sorted(ids)


def test_a_restart_runs_the_job_that_was_running_again(store, tmp_path):
    store.create("interrupted")
    store.claim_next()  # the process died here, mid-analysis
    store.progress("interrupted", "detecting faces", 2, 5)
    store.create("waiting")
    restarted = JobStore(tmp_path / "jobs.sqlite3")
    ran = []
    run_until_finished(restarted, JobRunner(restarted, lambda job_id, progress: ran.append(job_id)), "waiting")
    assert sorted(ran) == ["interrupted", "waiting"]
    assert restarted.get("interrupted").status == jobs.DONE


def test_a_restart_keeps_finished_jobs_as_they_were(store, tmp_path):
    store.create("done")
    store.claim_next()
    store.finish("done")
    store.create("failed")
    store.claim_next()
    store.finish("failed", jobs.UNREADABLE)
    restarted = JobStore(tmp_path / "jobs.sqlite3")
    runner = JobRunner(restarted, lambda job_id, progress: pytest.fail("nothing should run"))
    runner.start()
    runner.stop()
    assert restarted.get("done").status == jobs.DONE and restarted.get("failed").failure.code == jobs.UNREADABLE


def test_a_restarted_app_finishes_an_interrupted_upload(make_app, tmp_path, media, mock_prediction_client):
    first = make_app()
    folder = first.extensions["deepfake"].folders.create()
    (folder / "upload.mp4").write_bytes(media["face_video"].read_bytes())
    first.extensions["deepfake"].store.create(folder.name)
    first.extensions["deepfake"].store.claim_next()  # running when the server was killed

    second = make_app()
    second.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    job = wait_for_job(second, folder.name)
    assert job.status == jobs.DONE
    assert second.extensions["deepfake"].folders.result(folder.name).verdict == "DeepFake"
    assert not (folder / "upload.mp4").exists()


def test_the_sweep_deletes_analyses_past_retention_and_keeps_the_rest(store, tmp_path):
    folders = AnalysisFolders(tmp_path / "uploads")
    old, recent, running = folders.create(), folders.create(), folders.create()
    orphan = folders.create()
    for folder in (old, recent, running):
        store.create(folder.name)
    for folder in (old, recent):
        store.claim_next()
        store.finish(folder.name)
    store.claim_next()
    day_ago = time.time() - 25 * 3600
    with store._connect() as db:
        db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (day_ago, old.name))
    os.utime(orphan, (day_ago, day_ago))

    assert jobs.sweep_expired(store, folders, retention_hours=24) == 2
    assert not old.exists() and store.get(old.name) is None
    assert not orphan.exists()
    assert recent.exists() and store.get(recent.name).status == jobs.DONE
    assert running.exists() and store.get(running.name).status == jobs.RUNNING


def test_the_sweep_runs_on_its_own(make_app):
    app = make_app(RESULT_RETENTION_HOURS=0.0001)  # 0.36 s; the sweep then runs every 0.036 s
    services = app.extensions["deepfake"]
    folder = services.folders.create()
    services.store.create(folder.name)
    services.store.claim_next()
    services.store.finish(folder.name)
    services.runner.start()
    deadline = time.monotonic() + 10
    # The sweep deletes the folder, then the job: wait for both.
    while (folder.exists() or services.store.get(folder.name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists() and services.store.get(folder.name) is None


def test_deleting_a_job_while_it_runs_leaves_nothing_behind(app, client, media, mock_prediction_client):
    started, release = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        release.wait(10)
        return mock_prediction_client.classify_image_with_no_store.return_value

    mock_prediction_client.classify_image_with_no_store.side_effect = slow
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    response = client.post("/api/videos", data={"video": (io.BytesIO(media["face_photo"].read_bytes()), "a.jpg")})
    job_id = response.get_json()["id"]
    assert started.wait(30)
    assert client.delete(f"/api/videos/{job_id}").status_code == 204
    release.set()
    app.extensions["deepfake"].runner.stop()  # returns once the worker is through with the job
    folder = app.extensions["deepfake"].folders.root / job_id
    assert not folder.exists()
    assert client.get(f"/api/videos/{job_id}").status_code == 404


def test_a_video_longer_than_its_header_says_is_stopped_at_the_limit(app, media, mock_prediction_client):
    """The upload check trusts the container's frame count; the analysis checks the real frames."""
    services = app.extensions["deepfake"]
    services.settings = dataclasses.replace(services.settings, max_video_seconds=2.5)
    services.runner.analyse.settings = services.settings
    services.classifier = azure_with(mock_prediction_client)
    folder = services.folders.create()
    (folder / "upload.mp4").write_bytes(media["face_video"].read_bytes())  # 4.8 s
    services.store.create(folder.name)
    job = wait_for_job(app, folder.name)
    assert job.status == jobs.FAILED and job.failure == jobs.Failure(jobs.TOO_LONG, {"limit_s": 2.5})
    mock_prediction_client.classify_image_with_no_store.assert_not_called()
