"""The REST API: every endpoint, its status codes and error bodies, and a burst of uploads."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from .conftest import ANALYZE_JSON_KEYS, azure_with, wait_for_job


def submit(client, path: Path, name: str | None = None):
    return client.post("/api/videos", data={"video": (io.BytesIO(path.read_bytes()), name or path.name)})


def test_submit_follow_and_delete_a_video(app, client, media, mocked_azure):
    response = submit(client, media["face_video"])
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"id", "status_url", "result_url"}
    assert (
        body["status_url"].endswith(f"/api/videos/{body['id']}") and response.headers["Location"] == body["status_url"]
    )
    assert body["result_url"].endswith(f"/results/{body['id']}")

    wait_for_job(app, body["id"])
    state = client.get(f"/api/videos/{body['id']}").get_json()
    assert state["status"] == "done" and state["progress"] == 1.0
    assert state["frames_done"] == state["frames_total"] == 3
    assert set(state["result"]) >= ANALYZE_JSON_KEYS
    assert state["result"]["verdict"] == "DeepFake" and len(state["result"]["crops"]) == 3
    assert "error" not in state

    assert client.delete(f"/api/videos/{body['id']}").status_code == 204
    assert not (app.extensions["deepfake"].folders.root / body["id"]).exists()
    gone = client.get(f"/api/videos/{body['id']}")
    assert gone.status_code == 404 and "error" in gone.get_json()
    assert client.delete(f"/api/videos/{body['id']}").status_code == 404


def test_a_queued_video_reports_its_state(make_app, media):
    app = make_app()
    client = app.test_client()
    job_id = submit(client, media["face_photo"]).get_json()["id"]
    state = client.get(f"/api/videos/{job_id}").get_json()
    assert state == {
        "id": job_id,
        "status": "queued",
        "stage": None,
        "progress": 0.0,
        "frames_done": 0,
        "frames_total": 0,
    }


def test_a_failed_analysis_reports_the_error(app, client, media, mock_prediction_client):
    from custom_vision import ClassifierError

    mock_prediction_client.classify_image_with_no_store.side_effect = ClassifierError(
        "Azure rejected the prediction key (HTTP 401)."
    )
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    job_id = submit(client, media["face_photo"]).get_json()["id"]
    wait_for_job(app, job_id)
    state = client.get(f"/api/videos/{job_id}").get_json()
    assert state["status"] == "failed" and state["error_code"] == "classifier_failed"
    assert (
        state["error"]
        == "The face crops could not be judged: the classifier is not available right now. Try again later."
    )
    assert "401" not in state["error"] and "Azure" not in state["error"]  # the details are for the log
    assert "result" not in state


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text_as_mp4", "not a video or photo that can be read"),
        ("truncated_video", "not a video or photo that can be read"),
        ("empty", "The file is empty"),
    ],
)
def test_bad_files_get_a_json_400_and_nothing_is_kept(app, client, media, name, message):
    response = submit(client, media[name])
    assert response.status_code == 400 and message in response.get_json()["error"]
    assert list(app.extensions["deepfake"].folders.root.iterdir()) == []


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"method": "POST", "path": "/api/videos", "data": {}}, 400),
        ({"method": "GET", "path": "/api/videos/AAAAAAAAAAAAAAAAAAAAAA"}, 404),
        ({"method": "GET", "path": "/api/videos/..%2F..%2Fetc"}, 404),
        ({"method": "DELETE", "path": "/api/videos/AAAAAAAAAAAAAAAAAAAAAA"}, 404),
        ({"method": "PUT", "path": "/api/videos"}, 405),
        ({"method": "GET", "path": "/api/nothing"}, 404),
    ],
    ids=["no file", "unknown id", "path in id", "delete unknown", "wrong method", "unknown endpoint"],
)
def test_errors_are_json_with_the_right_status(client, request_args, status):
    response = client.open(request_args["path"], method=request_args["method"], data=request_args.get("data"))
    assert response.status_code == status
    assert response.is_json and isinstance(response.get_json()["error"], str) and response.get_json()["error"]


def test_too_large_is_a_json_413(make_app, media):
    response = submit(make_app(MAX_CONTENT_LENGTH=10_000).test_client(), media["face_video"])
    assert response.status_code == 413 and "too large" in response.get_json()["error"]


def test_too_long_a_video_is_refused_with_its_length(make_app, media):
    response = submit(make_app(MAX_VIDEO_SECONDS=3).test_client(), media["face_video"])  # 4.8 s
    assert response.status_code == 400
    assert "The video is 4.8 sec long; videos up to 3 sec can be analysed" in response.get_json()["error"]


def test_uploads_are_rate_limited_per_client(make_app, media):
    client = make_app(UPLOAD_RATE_LIMIT="2 per minute").test_client()
    statuses = [submit(client, media["face_photo"]).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    refused = submit(client, media["face_photo"])
    assert "Too many uploads" in refused.get_json()["error"] and int(refused.headers["Retry-After"]) > 0
    other_client = make_app(UPLOAD_RATE_LIMIT="2 per minute").test_client()
    assert (
        other_client.post(
            "/api/videos",
            data={"video": (io.BytesIO(media["face_photo"].read_bytes()), "a.jpg")},
            environ_base={"REMOTE_ADDR": "127.0.0.9"},
        ).status_code
        == 202
    )


@pytest.mark.parametrize(("hops", "limited"), [(0, True), (1, False)])
def test_behind_a_trusted_proxy_the_limit_counts_each_forwarded_client(make_app, media, hops, limited):
    client = make_app(UPLOAD_RATE_LIMIT="1 per minute", PROXY_HOPS=hops).test_client()

    def send(address):
        return client.post(
            "/api/videos",
            data={"video": (io.BytesIO(media["face_photo"].read_bytes()), "a.jpg")},
            headers={"X-Forwarded-For": address},
        ).status_code

    assert send("203.0.113.1") == 202
    # Without a proxy the header is anybody's to send, so it is ignored: one client, limited.
    assert send("203.0.113.2") == (429 if limited else 202)


def test_eight_uploads_at_once_all_finish_while_the_page_still_answers(
    make_app, live_server, media, mock_prediction_client
):
    app = make_app(UPLOAD_RATE_LIMIT="100 per minute")
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    base = live_server(app)
    video = media["face_video"].read_bytes()

    def post(number: int):
        return requests.post(f"{base}/api/videos", files={"video": (f"clip{number}.mp4", video)}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
        page_times = []
        for _ in range(5):  # the upload page, while the eight are analysed
            tick = time.perf_counter()
            page = requests.get(base, timeout=10)
            page_times.append(time.perf_counter() - tick)
            assert page.status_code == 200 and 'name="video"' in page.text
    assert [response.status_code for response in responses] == [202] * 8
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 8
    for job_id in ids:
        assert wait_for_job(app, job_id, timeout=120).status == "done"
        state = requests.get(f"{base}/api/videos/{job_id}", timeout=10).json()
        assert state["result"]["verdict"] == "DeepFake" and len(state["result"]["crops"]) == 3
    assert max(page_times) < 2.0
