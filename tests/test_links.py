"""Checking a video by its link: a loopback HTTP server started by the tests plays the web (no
internet here). Links to private addresses are refused unless ALLOW_PRIVATE_URLS, which the tests
that need their loopback server set."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import download
import jobs

from .conftest import azure_with, wait_for_job


class FakeWeb:
    """Serves the test clip and every way a link can go wrong, on ``host``."""

    def __init__(self, video: bytes, host: str = "127.0.0.1"):
        self.video = video
        self.streams: list[threading.Event] = []  # one a GET of the liar, set when it stops sending
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head=False):
                routes = {
                    "/clip.mp4": lambda: self._send(200, "video/mp4", web.video, head),
                    "/big.mp4": lambda: self._send(200, "video/mp4", web.video, head, length=50 * 2**20),
                    "/liar.mp4": lambda: self._stream(head),
                    "/page.html": lambda: self._send(
                        200, "text/html", b"<html><body><p>just text</p></body></html>", head
                    ),
                    "/to-private": lambda: self._redirect(f"http://127.0.0.1:{web.port}/clip.mp4"),
                }
                routes.get(self.path, lambda: self._send(404, "text/plain", b"not found", head))()

            def _send(self, status, kind, body, head, length=None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(length or len(body)))
                self.end_headers()
                if not head:
                    with contextlib.suppress(OSError):  # the client may hang up: that is the point
                        self.wfile.write(body)

            def _stream(self, head):
                """Announces a small file (to HEAD), then sends, with no length, more than any limit
                (a gigabyte, more than the loopback's buffers hold): until the client hangs up."""
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                if head:
                    self.send_header("Content-Length", "1000")
                self.end_headers()
                if not head:
                    ended = threading.Event()
                    web.streams.append(ended)
                    try:
                        for _ in range(2**14):
                            self.wfile.write(b"\0" * 2**16)
                    except OSError:
                        pass
                    ended.set()

            def _redirect(self, location):
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_web(media):
    web = FakeWeb(media["face_video"].read_bytes())
    yield web
    web.close()


@pytest.fixture
def link_app(make_app, mock_prediction_client):
    app = make_app(ALLOW_PRIVATE_URLS=True, MAX_UPLOAD_MB=2)
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    return app


def folder_is_empty(app, job_id) -> bool:
    folder = app.extensions["deepfake"].folders.root / job_id
    return not folder.exists() or list(folder.iterdir()) == []


def test_a_direct_mp4_link_through_the_page(link_app, fake_web):
    client = link_app.test_client()
    response = client.post("/upload", data={"url": fake_web.url("/clip.mp4")})
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert "Fetching the video from the link" in client.get(response.headers["Location"]).get_data(as_text=True)
    job = wait_for_job(link_app, job_id)
    assert job.status == jobs.DONE, job.failure
    page = client.get(f"/results/{job_id}").get_data(as_text=True)
    assert 'data-verdict="DeepFake"' in page and fake_web.url("/clip.mp4") in page
    result = link_app.extensions["deepfake"].folders.result(job_id)
    assert result.source_url == fake_web.url("/clip.mp4") and len(result.crops) == 3
    folder = link_app.extensions["deepfake"].folders.root / job_id
    assert not list(folder.glob("upload*"))  # the fetched video is deleted like an upload


def test_a_direct_mp4_link_through_the_api(link_app, fake_web):
    client = link_app.test_client()
    response = client.post("/api/videos", json={"url": fake_web.url("/clip.mp4")})
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert wait_for_job(link_app, job_id).status == jobs.DONE
    result = client.get(f"/api/videos/{job_id}").get_json()["result"]
    assert result["source_url"] == fake_web.url("/clip.mp4") and result["verdict"] == "DeepFake"


def test_a_direct_mp4_link_through_the_cli(link_app, fake_web):
    run = link_app.test_cli_runner().invoke(args=["analyze", "--json", fake_web.url("/clip.mp4")])
    assert run.exit_code == 0, run.output
    data = json.loads(run.output.strip().splitlines()[-1])
    assert data["verdict"] == "DeepFake" and data["source_url"] == fake_web.url("/clip.mp4")


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/big.mp4", download.TOO_LARGE, "larger than 2 MB"),
        ("/liar.mp4", download.TOO_LARGE, "larger than 2 MB"),
        ("/page.html", download.NO_VIDEO, "No video was found"),
        ("/gone.mp4", download.UNAVAILABLE, "private, removed or not found"),
    ],
)
def test_a_link_that_cannot_give_a_video_fails_plainly_and_leaves_nothing(link_app, fake_web, path, code, words):
    client = link_app.test_client()
    job_id = client.post("/api/videos", json={"url": fake_web.url(path)}).get_json()["id"]
    job = wait_for_job(link_app, job_id)
    assert job.failure.code == code
    assert words in client.get(f"/api/videos/{job_id}").get_json()["error"]
    assert folder_is_empty(link_app, job_id)


def test_a_download_stopped_mid_file_hangs_up_at_once(fake_web, tmp_path):
    """Stopped past the size limit, the fetch closes its connection then, not whenever the cycle
    collector frees the response (the site would go on sending into it until then)."""
    limits = download.Limits(max_bytes=2 * 2**20, max_seconds=60, timeout_s=30, allow_private=True)
    gc.disable()
    try:
        with pytest.raises(download.LinkError) as stopped:
            download.fetch(fake_web.url("/liar.mp4"), tmp_path, limits)
        assert stopped.value.code == download.TOO_LARGE
        assert fake_web.streams and all(ended.wait(10) for ended in fake_web.streams), "a connection was left open"
    finally:
        gc.enable()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a link",
        "ftp://example.org/a.mp4",
        "file:///etc/passwd",
        "http://",
        "javascript:alert(1)",
        "http://exa mple.org/",
    ],
)
def test_a_malformed_link_is_a_400_at_submit(link_app, bad):
    client = link_app.test_client()
    api = client.post("/api/videos", json={"url": bad})
    page = client.post("/upload", data={"url": bad} if bad else {})
    assert api.status_code == 400 and page.status_code == 400
    assert list(link_app.extensions["deepfake"].folders.root.iterdir()) == []


def test_a_file_and_a_link_together_are_refused(link_app, media):
    import io

    response = link_app.test_client().post(
        "/upload",
        data={"video": (io.BytesIO(media["face_photo"].read_bytes()), "a.jpg"), "url": "https://example.org/v"},
    )
    assert response.status_code == 400 and "not both" in response.get_data(as_text=True)


@pytest.fixture
def public_web(media, monkeypatch):
    """The fake web on 127.0.0.2, which the guard is told to treat as a public address (it cannot
    tell a test from the internet otherwise); everything else on loopback stays private."""
    real = download.is_public
    monkeypatch.setattr(download, "is_public", lambda address: address == "127.0.0.2" or real(address))
    web = FakeWeb(media["face_video"].read_bytes(), host="127.0.0.2")
    yield web
    web.close()


def test_private_addresses_are_refused_even_after_a_redirect(make_app, public_web, mock_prediction_client):
    app = make_app()  # ALLOW_PRIVATE_URLS=false, the default
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    client = app.test_client()
    assert (
        wait_for_job(app, client.post("/api/videos", json={"url": public_web.url("/clip.mp4")}).get_json()["id"]).status
        == jobs.DONE
    )
    refused = [
        public_web.url("/to-private"),  # a public host redirecting to 127.0.0.1
        f"http://localhost:{public_web.port}/clip.mp4",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata address
        "http://[::1]/clip.mp4",
        "http://[::ffff:127.0.0.1]/clip.mp4",
        "http://10.0.0.1/clip.mp4",
    ]
    for url in refused:
        job_id = client.post("/api/videos", json={"url": url}).get_json()["id"]
        job = wait_for_job(app, job_id)
        assert job.failure.code == download.PRIVATE_ADDRESS, (url, job.failure)
        assert "private network" in client.get(f"/api/videos/{job_id}").get_json()["error"]
        assert folder_is_empty(app, job_id)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("240.0.0.1", False),
    ],
)
def test_which_addresses_count_as_public(address, public):
    assert download.is_public(address) is public
