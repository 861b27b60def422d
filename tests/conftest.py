"""Fixtures: a fresh app per test with its own upload folder, generated test media, and Azure fakes."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from unittest import mock

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from skimage import data
from werkzeug.serving import WSGIRequestHandler, make_server

from app import create_app
from config import Settings
from custom_vision import AzureClassifier
from intake import limiter

from .fake_custom_vision import FakeCustomVision

VIDEO_SIDE = 384
# What `analyze --json` promises (the API's result has the same shape).
ANALYZE_JSON_KEYS = {
    "file",
    "verdict",
    "deepfake_probability",
    "stats",
    "classifier",
    "frame_interval",
    "frames_total",
    "frames_sampled",
    "fps",
    "duration_s",
    "crops",
    "timings_s",
    "confidence",
    "confidence_reasons",
    "people",
}
AZURE_ENV = (
    "VISION_PREDICTION_ENDPOINT",
    "VISION_PREDICTION_KEY",
    "VISION_PROJECT_ID",
    "VISION_PUBLISHED_NAME",
    "CLASSIFIER",
)


@pytest.fixture(autouse=True)
def no_azure_environment(monkeypatch):
    """Tests never pick up a developer's real Azure settings."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


def app_config(folder: Path, **overrides) -> dict:
    """A test app's settings: its own upload folder and job database under ``folder``; CSRF checks
    off except in the tests about them."""
    return {
        "TESTING": True,
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "DATABASE_URL": f"sqlite:///{folder / 'jobs.sqlite3'}",
        "SECRET_KEY": "test",
        "WTF_CSRF_ENABLED": False,
        # The original's sampling (one frame in FRAME_INTERVAL, however short the clip): the tests' clips
        # last a few seconds and their counts of frames and crops were written for it; MIN_FRAMES has its
        # own tests (test_sampling.py).
        "MIN_FRAMES": 1,
        **overrides,
    }


@pytest.fixture
def make_app(tmp_path):
    """Builds apps on this test's folders (several share them, as a restarted server would); their
    analysis workers are stopped when the test ends."""
    made = []

    def make(folder: Path = tmp_path, **overrides):
        app = create_app(app_config(folder, **overrides))
        limiter.reset()  # one limiter serves every app of the process: each test starts counting afresh
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["deepfake"].queue.stop()
        app.extensions["deepfake"].store.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def face_image() -> np.ndarray:
    """scikit-image's astronaut photo (RGB, 512x512): one clear frontal face."""
    return data.astronaut()


def write_video(path: Path, frames: list[np.ndarray] | np.ndarray, fps: float = 25.0) -> Path:
    frames = list(frames)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4 here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def face_frames(count: int) -> list[np.ndarray]:
    """The astronaut, moving a pixel every tenth frame (small files: the test client spools bodies
    over 500 kB to temporary files that it leaves open)."""
    image = cv2.resize(face_image(), (VIDEO_SIDE, VIDEO_SIDE), interpolation=cv2.INTER_AREA)
    return [np.roll(image, shift=i // 10, axis=1) for i in range(count)]


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Generated test media, made once per run."""
    folder = tmp_path_factory.mktemp("media")
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    files = {
        "face_video": write_video(folder / "face.mp4", face_frames(120)),
        "short_video": write_video(folder / "short.mp4", face_frames(10)),
        "no_face_video": write_video(folder / "noface.mp4", [np.roll(gradient, i, axis=1) for i in range(30)]),
        "face_photo": folder / "face.jpg",
        "text_as_mp4": folder / "notes.mp4",
        "empty": folder / "empty.mp4",
        "truncated_video": folder / "truncated.mp4",
    }
    files["sideways_video"], files["phone_video"] = phone_videos(folder)
    cv2.imwrite(str(files["face_photo"]), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    files["text_as_mp4"].write_text("this is not a video, just some text\n" * 20)
    files["empty"].write_bytes(b"")
    whole = files["face_video"].read_bytes()
    files["truncated_video"].write_bytes(whole[: len(whole) // 3])
    return files


def phone_videos(folder: Path) -> tuple[Path, Path]:
    """A portrait clip stored sideways, without and with the rotation flag a phone would write
    (set with the ffmpeg binary that the imageio-ffmpeg wheel ships)."""
    portrait = cv2.resize(face_image(), (VIDEO_SIDE, VIDEO_SIDE))[:, 64:320]
    sideways = write_video(folder / "sideways.mp4", [cv2.rotate(portrait, cv2.ROTATE_90_CLOCKWISE)] * 10)
    flagged = folder / "phone.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-display_rotation",
            "90",
            "-i",
            str(sideways),
            "-c",
            "copy",
            str(flagged),
        ],
        check=True,
    )
    return sideways, flagged


def wait_for_job(app, analysis_id: str, timeout: float = 60.0):
    """The job once it is done or failed (its workers are started if need be)."""
    services = app.extensions["deepfake"]
    services.queue.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = services.store.get(analysis_id)
        if job is not None and job.status in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {analysis_id} did not finish within {timeout}s: {services.store.get(analysis_id)}")


def predictions_response(deepfake: float):
    """What CustomVisionPredictionClient returns: an ImagePrediction with one prediction per tag."""
    return mock.Mock(
        predictions=[
            mock.Mock(tag_name="DeepFake", probability=deepfake),
            mock.Mock(tag_name="Not DeepFake", probability=1.0 - deepfake),
        ]
    )


@pytest.fixture
def mock_prediction_client():
    """A mocked azure CustomVisionPredictionClient answering P(DeepFake) = 0.8 for every crop."""
    client = mock.Mock(name="CustomVisionPredictionClient")
    client.classify_image_with_no_store.return_value = predictions_response(0.8)
    return client


def azure_with(client) -> AzureClassifier:
    return AzureClassifier(client, "project", "published", max_tps=1000, retry_backoff_s=0.0)


@pytest.fixture
def mocked_azure(app, mock_prediction_client):
    """The test app classifying with the mocked Azure client (P(DeepFake) = 0.8 for every crop)."""
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    return mock_prediction_client


@pytest.fixture
def fake_azure():
    """A loopback HTTP server that speaks the Custom Vision prediction API."""
    with FakeCustomVision() as server:
        yield server


def azure_settings(server: FakeCustomVision, **overrides) -> Settings:
    values = {
        "VISION_PREDICTION_ENDPOINT": server.endpoint,
        "VISION_PREDICTION_KEY": server.key,
        "VISION_PROJECT_ID": server.project_id,
        "VISION_PUBLISHED_NAME": server.published_name,
        "AZURE_RETRY_BACKOFF_S": 0.01,
        "AZURE_TIMEOUT_S": 5,
        **overrides,
    }
    return Settings.from_mapping(values)


class _ClosedOnce:
    """An app's response whose close() runs at most once."""

    def __init__(self, response):
        self._response = response
        self._closed = False

    def __iter__(self):
        return iter(self._response)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if hasattr(self._response, "close"):
                self._response.close()


class ClosingRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, but the response is always closed, as gunicorn closes it.

    werkzeug 3.1.9's `run_wsgi` closes the response last in a `finally` that first drains the
    request; when the client has already hung up, that read raises ConnectionResetError and the
    close is skipped, so a file sent with send_file stays open until the cycle collector finds it:
    an unraisable ResourceWarning in whichever test runs then. A browser hangs up on the images
    still loading when a page navigates away."""

    @staticmethod
    def wrap(app):
        def remembering(environ, start_response):
            response = environ["tests.response"] = _ClosedOnce(app(environ, start_response))
            return response

        return remembering

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            response = getattr(self, "environ", {}).get("tests.response")
            if response is not None:
                response.close()


@pytest.fixture
def live_server():
    """Serves an app on a free loopback port in a thread (threaded, like gunicorn's threads); its
    base URL. Call it with the app."""
    servers = []

    def serve(app) -> str:
        server = make_server(
            "127.0.0.1", 0, ClosingRequestHandler.wrap(app), threaded=True, request_handler=ClosingRequestHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_binary(name: str) -> str | None:
    import glob
    import shutil

    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on a free loopback port, in a temporary folder, for this test run;
    its base URL. Skipped, saying why, without the Debian package. As root, the server runs as the
    `postgres` user (PostgreSQL refuses root)."""
    import os
    import pwd
    import shutil
    import tempfile

    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    folder = Path(tempfile.mkdtemp(prefix="deepfake-pg-"))  # not under pytest's root-only folder
    prefix = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server):
    """A new, empty database on the test PostgreSQL server; its URL."""
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
