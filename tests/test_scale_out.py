"""JOB_BACKEND=celery with real parts: a redis-server and a PostgreSQL started by the fixtures on
loopback ports, and real `celery --app tasks worker` processes analysing with the real MTCNN and the
real Azure SDK against the loopback Custom Vision fake. Skipped, saying why, without redis-server or
PostgreSQL (`.ci/run` installs both)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jobs

from .conftest import azure_settings, face_frames, free_port, write_video

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 3


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture
def cluster(redis_server, postgres_database, fake_azure, tmp_path, make_app):
    """What two machines would share (the broker, the database, the upload folder, the settings),
    the web app on it, and a way to start Celery workers."""
    settings = {
        "JOB_BACKEND": "celery",
        "CELERY_BROKER_URL": redis_server,
        "DATABASE_URL": postgres_database,
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "JOB_LEASE_S": str(LEASE_S),
        "FRAME_INTERVAL": "5",
        **{
            k.upper(): str(v)
            for k, v in vars(azure_settings(fake_azure)).items()
            if k.startswith(("vision_prediction", "vision_project", "vision_published", "azure_"))
        },
    }
    workers = []

    def start_worker(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the worker
        env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "tasks",
                "worker",
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        workers.append((process, log))
        return process

    def web():
        return make_app(tmp_path, **settings)

    yield start_worker, web, fake_azure, tmp_path
    for process, log in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def submit(client, video: Path) -> str:
    response = client.post("/api/videos", data={"video": (io.BytesIO(video.read_bytes()), video.name)})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def wait_all(store, ids, timeout=240.0) -> list[jobs.Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [store.get(job_id) for job_id in ids]
        if all(job.status in jobs.FINISHED for job in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"not finished: {[(j.id[:6], j.status, j.stage) for j in found]}")


def test_eight_uploads_over_two_workers_all_finish_once_across_a_web_restart(cluster):
    start_worker, web, _, tmp_path = cluster
    video = write_video(tmp_path / "clip.mp4", face_frames(30))
    start_worker("w1")
    start_worker("w2")
    first = web()
    first.extensions["deepfake"].queue.start()
    ids = [submit(first.test_client(), video) for _ in range(8)]
    time.sleep(3)
    first.extensions["deepfake"].queue.stop()  # the web process goes away while workers run...
    second = web()  # ...and comes back on the same database
    second.extensions["deepfake"].queue.start()
    finished = wait_all(second.extensions["deepfake"].store, ids)
    assert [job.status for job in finished] == ["done"] * 8
    assert [job.attempts for job in finished] == [1] * 8  # none ran twice
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("w1", "w2")}
    assert all(" done" in log for log in logs.values()), "both workers analysed"
    client = second.test_client()
    assert client.get(f"/api/videos/{ids[0]}").get_json()["result"]["verdict"] == "DeepFake"


def test_a_worker_killed_mid_job_loses_nothing_and_the_job_finishes_once(cluster):
    start_worker, web, fake_azure, tmp_path = cluster
    fake_azure.delay_s = 0.5  # each crop takes a while to judge: time to kill the worker mid-job
    video = write_video(tmp_path / "clip.mp4", face_frames(120))  # 24 crops at one frame in five
    doomed = start_worker("doomed")
    app = web()
    app.extensions["deepfake"].queue.start()
    store = app.extensions["deepfake"].store
    job_id = submit(app.test_client(), video)
    deadline = time.monotonic() + 120
    while store.get(job_id).stage != "classifying":
        assert time.monotonic() < deadline, store.get(job_id)
        time.sleep(0.05)
    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker, children and all
    doomed.wait(10)
    assert store.get(job_id).status == jobs.RUNNING  # its lease has not run out yet
    start_worker("survivor")
    (job,) = wait_all(store, [job_id])
    assert job.status == jobs.DONE and job.attempts == 2
    result = app.extensions["deepfake"].folders.result(job_id)
    assert result is not None and len(result.crops) == 24
    assert f"analysis {job_id} started (attempt 2)" in (tmp_path / "survivor.log").read_text()
