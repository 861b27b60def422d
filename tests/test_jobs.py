"""Jobs: the store (on SQLite and on a real PostgreSQL), leases and attempts, the local queue's
workers (wake-ups, stopping, cancelling), bounded work, the retention sweep and deletion."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import jobs
from config import Settings
from job_queue import LocalJobQueue
from jobs import JobFailedError, JobStore
from storage import AnalysisFolders

from .conftest import azure_with, wait_for_job

ME, OTHER = "worker-me", "worker-other"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_database")
    made = JobStore(url)
    yield made
    made.close()


def settings(**values) -> Settings:
    return Settings.from_mapping({"JOB_LEASE_S": 2, **values})


def run_until_finished(store, queue, job_id: str, timeout: float = 15.0) -> jobs.Job:
    queue.start()
    queue.submit(job_id)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            job = store.get(job_id)
            if job.status in jobs.FINISHED:
                return job
            time.sleep(0.01)
    finally:
        queue.stop()
    raise AssertionError(f"{job_id} did not finish: {store.get(job_id)}")


def test_the_schema_carries_its_version(store):
    assert store.schema_version == jobs.SCHEMA_VERSION


def test_a_job_goes_queued_running_done_with_progress_recorded(store):
    seen = []

    def analyse(job_id, progress):
        seen.append(store.get(job_id).status)
        progress("detecting faces", 3, 8)
        job = store.get(job_id)
        seen.append((job.stage, job.frames_done, job.frames_total, job.progress))

    store.create("job-a", file_name="a.mp4", media="video")
    assert store.get("job-a").status == jobs.QUEUED and store.get("job-a").progress == 0.0
    job = run_until_finished(store, LocalJobQueue(store, analyse, settings()), "job-a")
    assert seen == [jobs.RUNNING, ("detecting faces", 3, 8, 0.375)]
    assert job.status == jobs.DONE and job.progress == 1.0 and job.error is None and job.attempts == 1
    assert job.created_at <= job.started_at <= job.finished_at and job.lease_owner is None
    assert (job.file_name, job.media) == ("a.mp4", "video")


def test_a_failing_job_records_why_and_the_worker_goes_on(store):
    def analyse(job_id, progress):
        if job_id == "bad":
            raise JobFailedError(jobs.TOO_LONG, limit_s=600)
        if job_id == "crash":
            raise RuntimeError("a bug")

    for job_id in ("bad", "crash", "good"):
        store.create(job_id)
        time.sleep(0.002)  # queued in this order
    run_until_finished(store, LocalJobQueue(store, analyse, settings()), "good")
    assert store.get("bad").failure == jobs.Failure(jobs.TOO_LONG, {"limit_s": 600})
    assert store.get("crash").failure == jobs.Failure(jobs.INTERRUPTED, {})
    assert store.get("good").status == jobs.DONE


def test_a_lease_keeps_others_off_until_it_runs_out(store):
    store.create("a")
    assert store.claim(ME, lease_s=0.5).id == "a"
    assert store.claim(OTHER, lease_s=30) is None  # a live lease
    assert store.claim(OTHER, lease_s=30, job_id="a") is None
    assert store.renew("a", ME, 0.5) and not store.renew("a", OTHER, 30)
    time.sleep(0.6)  # ME died without renewing
    taken = store.claim(OTHER, lease_s=30)
    assert taken.id == "a" and taken.lease_owner == OTHER and taken.attempts == 2
    assert not store.progress("a", ME, "decoding", 1, 2)  # the dead worker's writes are refused
    assert not store.finish("a", ME)
    assert store.finish("a", OTHER) and store.get("a").status == jobs.DONE
    assert not store.finish("a", OTHER)  # done exactly once
    assert store.claim(ME, lease_s=30, job_id="a") is None  # a redelivered task finds it done


def test_a_job_whose_worker_keeps_dying_fails_instead_of_looping(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}", max_attempts=3)
    store.create("poison")
    for attempt in range(3):
        assert store.claim(f"worker-{attempt}", lease_s=0.05).attempts == attempt + 1
        time.sleep(0.1)  # the worker died with it
    assert store.claim("worker-3", lease_s=30) is None
    job = store.get("poison")
    assert job.status == jobs.FAILED and job.failure == jobs.Failure(jobs.CRASHED, {"attempts": 3})


def test_each_job_is_claimed_once_however_many_claimants(store):
    ids = [f"job-{n}" for n in range(20)]
    for job_id in ids:
        store.create(job_id)
    claimed, lock = [], threading.Lock()

    def claimant(name):
        while (job := store.claim(name, lease_s=30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimant, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_a_restarted_process_leaves_a_live_job_alone_and_takes_over_a_dead_one(store, tmp_path):
    store.create("live")
    store.create("dead")
    store.claim(OTHER, lease_s=60, job_id="live")  # another process is running it
    store.claim("crashed-worker", lease_s=0.2, job_id="dead")
    time.sleep(0.3)
    ran = []
    queue = LocalJobQueue(store, lambda job_id, progress: ran.append(job_id), settings())
    run_until_finished(store, queue, "dead")
    assert ran == ["dead"] and store.get("live").status == jobs.RUNNING  # not run twice


def test_a_job_queued_just_before_a_worker_waits_is_not_left_waiting(store):
    done = []
    queue = LocalJobQueue(store, lambda job_id, progress: done.append(job_id), settings(JOB_LEASE_S=120))
    queue.start()
    try:
        time.sleep(0.2)  # the worker found nothing and waits (up to a minute, with this lease)
        for n in range(5):
            store.create(f"j{n}")
            queue.submit(f"j{n}")
            deadline = time.monotonic() + 5
            while f"j{n}" not in done and time.monotonic() < deadline:
                time.sleep(0.005)
        assert done == [f"j{n}" for n in range(5)]
    finally:
        queue.stop()


def test_stopping_hands_the_running_job_back_at_once(store):
    started = threading.Event()

    def analyse(job_id, progress):
        started.set()
        while True:  # a long analysis, reporting between batches
            progress("detecting faces", 1, 100)
            time.sleep(0.02)

    store.create("long")
    queue = LocalJobQueue(store, analyse, settings())
    queue.start()
    assert started.wait(5)
    tick = time.monotonic()
    queue.stop()
    assert time.monotonic() - tick < 2
    job = store.get("long")
    assert job.status == jobs.QUEUED and job.lease_owner is None and job.attempts == 0


def test_a_job_past_its_time_limit_fails_and_says_so(store):
    def analyse(job_id, progress):
        while True:
            progress("detecting faces", 1, 100)
            time.sleep(0.05)

    store.create("slow")
    job = run_until_finished(store, LocalJobQueue(store, analyse, settings(JOB_TIMEOUT_S=0.3)), "slow")
    assert job.failure == jobs.Failure(jobs.TIMED_OUT, {"limit_s": 0.3})


def test_a_failed_job_can_be_queued_again_and_a_done_one_cannot(store):
    store.create("a")
    store.claim(ME, 30)
    store.finish("a", ME, jobs.UNREADABLE)
    assert store.requeue("a") and store.get("a").status == jobs.QUEUED and store.get("a").error is None
    store.claim(ME, 30)
    store.finish("a", ME)
    assert not store.requeue("a")


def test_a_database_from_before_leases_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as db:
        db.execute(
            sa.text(
                "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, stage TEXT, "
                "frames_done INTEGER NOT NULL DEFAULT 0, frames_total INTEGER NOT NULL DEFAULT 0, error TEXT, "
                "created_at REAL NOT NULL, started_at REAL, finished_at REAL)"
            )
        )
        db.execute(sa.text("INSERT INTO jobs (id, status, created_at) VALUES ('old', 'queued', 1.0)"))
    engine.dispose()
    store = JobStore(f"sqlite:///{path}")
    assert store.schema_version == jobs.SCHEMA_VERSION
    assert store.claim(ME, 30).id == "old" and store.get("old").attempts == 1


def test_a_restarted_app_finishes_an_interrupted_upload(make_app, media, mock_prediction_client):
    first = make_app(JOB_LEASE_S=0.5)
    folder = first.extensions["deepfake"].folders.create()
    (folder / "upload.mp4").write_bytes(media["face_video"].read_bytes())
    first.extensions["deepfake"].store.create(folder.name)
    first.extensions["deepfake"].store.claim("killed-server", 0.5)  # running when the server was killed

    second = make_app(JOB_LEASE_S=0.5)
    second.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    job = wait_for_job(second, folder.name)
    assert job.status == jobs.DONE and job.attempts == 2
    assert second.extensions["deepfake"].folders.result(folder.name).verdict == "DeepFake"
    assert not (folder / "upload.mp4").exists()


def test_the_sweep_deletes_analyses_past_retention_and_keeps_the_rest(store, tmp_path):
    folders = AnalysisFolders(tmp_path / "uploads")
    old, recent, running = folders.create(), folders.create(), folders.create()
    orphan = folders.create()
    for folder in (old, recent, running):
        store.create(folder.name)
    for folder in (old, recent):
        store.claim(ME, 30, job_id=folder.name)
        store.finish(folder.name, ME)
    store.claim(ME, 30, job_id=running.name)
    day_ago = time.time() - 25 * 3600
    with store.engine.begin() as db:
        db.execute(jobs.jobs_table.update().where(jobs.jobs_table.c.id == old.name).values(finished_at=day_ago))
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
    services.store.claim(ME, 30)
    services.store.finish(folder.name, ME)
    services.queue.start()
    deadline = time.monotonic() + 10
    # The sweep deletes the folder, then the job: wait for both.
    while (folder.exists() or services.store.get(folder.name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists() and services.store.get(folder.name) is None


def test_deleting_a_running_job_stops_it_and_leaves_nothing_behind(
    make_app, media, mock_prediction_client, monkeypatch
):
    """The worker stops at its next batch, writes no crops for the deleted analysis, and takes the
    next job (the queue is not blocked)."""
    app = make_app(FRAME_INTERVAL=5, WORKERS=1)
    client = app.test_client()
    services = app.extensions["deepfake"]
    in_batch, release = threading.Event(), threading.Event()
    detect_many = services.detector.detect_many

    def slow_detect(images, **options):
        in_batch.set()
        release.wait(10)
        return detect_many(images, **options)

    monkeypatch.setattr(services.detector, "detect_many", slow_detect)  # the process's shared detector
    services.classifier = azure_with(mock_prediction_client)
    video = media["face_video"].read_bytes()
    first = client.post("/api/videos", data={"video": (io.BytesIO(video), "a.mp4")}).get_json()["id"]
    services.queue.start()
    assert in_batch.wait(30)
    assert client.delete(f"/api/videos/{first}").status_code == 204
    release.set()
    second = client.post("/api/videos", data={"video": (io.BytesIO(video), "b.mp4")}).get_json()["id"]
    assert wait_for_job(app, second).status == jobs.DONE
    assert not (services.folders.root / first).exists()
    mock_prediction_client.classify_image_with_no_store.reset_mock()
    assert client.get(f"/api/videos/{first}").status_code == 404


def test_a_video_longer_than_its_header_says_is_stopped_at_the_limit(make_app, media, mock_prediction_client):
    """The upload check trusts the container's frame count; the analysis checks the real frames."""
    app = make_app(MAX_VIDEO_SECONDS=2.5)
    services = app.extensions["deepfake"]
    services.classifier = azure_with(mock_prediction_client)
    folder = services.folders.create()
    (folder / "upload.mp4").write_bytes(media["face_video"].read_bytes())  # 4.8 s
    services.store.create(folder.name)
    job = wait_for_job(app, folder.name)
    assert job.status == jobs.FAILED and job.failure == jobs.Failure(jobs.TOO_LONG, {"limit_s": 2.5})
    mock_prediction_client.classify_image_with_no_store.assert_not_called()
    assert not (folder / "crops").exists()


def test_too_many_sampled_frames_fail_before_any_work(make_app, media, mock_prediction_client):
    app = make_app(MAX_SAMPLED_FRAMES=2)  # the 120-frame clip has 3 at one in 50
    services = app.extensions["deepfake"]
    services.classifier = azure_with(mock_prediction_client)
    folder = services.folders.create()
    (folder / "upload.mp4").write_bytes(media["face_video"].read_bytes())
    services.store.create(folder.name)
    job = wait_for_job(app, folder.name)
    assert job.failure == jobs.Failure(jobs.TOO_MANY_FRAMES, {"limit": 2})
    assert "more than 2 frames" in app.test_client().get(f"/results/{folder.name}").get_data(as_text=True)


def png_bomb(path, side: int = 32000):
    """A PNG of side x side black pixels (1 bit each): a few hundred kB that would decode to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(app, client, tmp_path):
    import resource

    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = client.post("/api/videos", data={"video": (io.BytesIO(bomb.read_bytes()), "cat.png")})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert response.status_code == 400
    assert "32000 x 32000 pixels; at most 40 million" in response.get_json()["error"]
    assert grown_mb < 200, f"memory grew by {grown_mb:.0f} MB"
    assert list(app.extensions["deepfake"].folders.root.iterdir()) == []


def test_a_bomb_that_reaches_a_worker_fails_plainly(make_app, tmp_path):
    app = make_app()
    services = app.extensions["deepfake"]
    folder = services.folders.create()
    png_bomb(folder / "upload.png")
    services.store.create(folder.name)
    job = wait_for_job(app, folder.name)
    assert job.failure == jobs.Failure(jobs.TOO_MANY_PIXELS, {"limit_mp": 40})


def test_only_the_largest_faces_of_a_frame_are_judged(make_app, tmp_path, mock_prediction_client):
    import cv2
    import numpy as np

    from .conftest import face_image

    big = cv2.resize(face_image(), (256, 256))
    small = cv2.resize(face_image(), (160, 160))
    canvas = np.full((256, 256 + 3 * 160, 3), 255, np.uint8)
    canvas[:, :256] = big
    for n in range(3):
        canvas[48:208, 256 + n * 160 : 256 + (n + 1) * 160] = small
    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    for limit, expected in ((8, 4), (2, 2)):
        app = make_app(tmp_path / f"limit{limit}", MAX_FACES_PER_FRAME=limit)
        app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
        result = submit_and_wait(app, photo)
        assert len(result["crops"]) == expected
        if limit == 2:
            assert min(crop["box"][0] for crop in result["crops"]) < 256  # the big face is one of them


def submit_and_wait(app, path) -> dict:
    client = app.test_client()
    job_id = client.post("/api/videos", data={"video": (io.BytesIO(path.read_bytes()), path.name)}).get_json()["id"]
    assert wait_for_job(app, job_id).status == jobs.DONE
    return client.get(f"/api/videos/{job_id}").get_json()["result"]


def test_create_app_reads_no_dotenv_file(tmp_path):
    """A developer's `.env` must not leak into the tests: only the entry points (the flask command,
    wsgi.py, tasks.py) load it."""
    from app import create_app

    dotenv = Path(__file__).resolve().parent.parent / ".env"
    if dotenv.exists():
        pytest.skip("this checkout has a .env of its own; the test would have to move it")
    dotenv.write_text("WORKERS=7\nFRAME_INTERVAL=3\n")
    try:
        app = create_app({"UPLOAD_FOLDER": str(tmp_path / "u"), "DATABASE_URL": f"sqlite:///{tmp_path / 'j.sqlite3'}"})
    finally:
        dotenv.unlink()
    settings = app.extensions["deepfake"].settings
    assert (settings.workers, settings.frame_interval) == (0, 50)
