"""The web app: upload -> job page -> results page, bad inputs, failures, and the CLI."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import jobs
import pipeline
from custom_vision import AzureClassifier, ClassifierError

from .conftest import ANALYZE_JSON_KEYS, azure_with, face_frames, face_image, wait_for_job, write_video


def upload(client, path: Path, name: str | None = None):
    return client.post("/upload", data={"video": (io.BytesIO(path.read_bytes()), name or path.name)})


def upload_and_wait(app, client, path: Path, name: str | None = None) -> str:
    """Upload through the form, wait for the analysis to end; the results page's address."""
    response = upload(client, path, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    wait_for_job(app, location.rsplit("/", 1)[-1])
    return location


def analysis_folders(app) -> list[Path]:
    return [p for p in app.extensions["deepfake"].folders.root.iterdir() if p.is_dir()]


def test_the_upload_page_has_the_form(client):
    page = client.get("/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="video"' in page


def test_upload_redirects_to_a_results_page_with_verdict_table_and_crops(app, client, media, mocked_azure):
    location = upload_and_wait(app, client, media["face_video"])
    assert location.startswith("/results/")
    page = client.get(location).get_data(as_text=True)
    assert '<h1 id="verdict" data-verdict="DeepFake" data-confidence="high">DeepFake</h1>' in page
    assert "3 of 3 face crops look fake" in page and "face.mp4" in page
    assert "80.0%" in page  # the deepfake probability
    assert '<th scope="row">DeepFake</th>' in page and "<td>3</td>" in page  # three crops counted
    assert page.count("<img ") == 3 and "Frame 50 (2 sec)" in page
    assert "Azure Custom Vision" in page
    folder = analysis_folders(app)[0]
    result = json.loads((folder / "result.json").read_text())
    assert result["verdict"] == "DeepFake" and len(result["crops"]) == 3
    crop_url = f"{location}/crops/{Path(result['crops'][0]['image']).name}"
    with client.get(crop_url) as image:
        assert image.status_code == 200 and image.data[:2] == b"\xff\xd8"


def test_a_photo_goes_through_the_same_path(app, client, media, mocked_azure):
    page = client.get(upload_and_wait(app, client, media["face_photo"])).get_data(as_text=True)
    assert 'data-verdict="DeepFake"' in page and "a photo" in page
    assert 'id="timeline"' not in page  # a photo has no timeline


def test_results_survive_a_restart(app, make_app, client, media, mocked_azure):
    location = upload_and_wait(app, client, media["face_video"])
    app.extensions["deepfake"].queue.stop()
    page = make_app().test_client().get(location)
    assert page.status_code == 200 and 'data-verdict="DeepFake"' in page.get_data(as_text=True)


def test_no_face_is_a_results_page_not_an_error(app, client, media, mocked_azure):
    page = client.get(upload_and_wait(app, client, media["no_face_video"]))
    assert page.status_code == 200
    assert "No face found" in page.get_data(as_text=True)
    mocked_azure.classify_image_with_no_store.assert_not_called()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text_as_mp4", "not a video or photo that can be read"),
        ("truncated_video", "not a video or photo that can be read"),
        ("empty", "The file is empty"),
    ],
)
def test_bad_files_get_400_with_a_message_and_nothing_is_kept(app, client, media, mocked_azure, name, message):
    response = upload(client, media[name])
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert analysis_folders(app) == []


@pytest.mark.parametrize("data", [{}, {"video": (io.BytesIO(b""), "")}], ids=["no field", "no file chosen"])
def test_no_file_gets_400(client, data):
    response = client.post("/upload", data=data)
    assert response.status_code == 400
    assert "No file was sent" in response.get_data(as_text=True)


def test_over_the_size_limit_gets_a_413_page(make_app, media):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    response = upload(app.test_client(), media["face_video"])
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_the_client_file_name_is_never_a_path(app, client, media, mocked_azure):
    upload_and_wait(app, client, media["face_photo"], name="../../../etc/evil name.jpg")
    (folder,) = analysis_folders(app)
    assert sorted(p.name for p in folder.iterdir()) == ["crops", "result.json"]  # the upload is gone
    assert not (app.extensions["deepfake"].folders.root.parent / "etc").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/results/nope",
        "/results/../../etc",
        "/results/AAAAAAAAAAAAAAAAAAAAAA",
        "/results/AAAAAAAAAAAAAAAAAAAAAA/crops/x.jpg",
    ],
)
def test_unknown_analyses_are_404(client, path):
    assert client.get(path).status_code == 404


def test_azure_failing_says_so_plainly_keeps_the_upload_and_can_analyse_again(
    app, client, media, mock_prediction_client, caplog
):
    broken = AzureClassifier(mock_prediction_client, "p", "n")
    mock_prediction_client.classify_image_with_no_store.side_effect = ClassifierError(
        "Azure rejected the prediction key (HTTP 401) at westeurope.api.cognitive.microsoft.com."
    )
    app.extensions["deepfake"].classifier = broken
    location = upload_and_wait(app, client, media["face_photo"])
    page = client.get(location).get_data(as_text=True)
    assert "The analysis failed" in page and "the classifier is not available right now" in page
    assert "401" not in page and "microsoft.com" not in page  # the details are for the operator's log
    assert "microsoft.com" in caplog.text
    assert "Analyse again" in page
    (folder,) = analysis_folders(app)
    assert (folder / "upload.jpg").exists()

    mock_prediction_client.classify_image_with_no_store.side_effect = None
    assert client.post(f"{location}/retry").status_code == 302
    wait_for_job(app, folder.name)
    assert 'data-verdict="DeepFake"' in client.get(location).get_data(as_text=True)
    assert not (folder / "upload.jpg").exists()


def test_a_missing_local_model_is_a_plain_failure_not_made_up_scores(make_app, tmp_path, media):
    app = make_app(LOCAL_MODEL=str(tmp_path / "none.keras"))
    client = app.test_client()
    location = upload_and_wait(app, client, media["face_photo"])
    page = client.get(location).get_data(as_text=True)
    assert "The analysis failed" in page and "the classifier is not available right now" in page
    assert "none.keras" not in page


def test_cli_analyze_json_has_the_documented_fields(runner, app, media, mocked_azure):
    result = runner.invoke(args=["analyze", "--json", str(media["face_video"])])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    data = json.loads(line)
    assert set(data) >= ANALYZE_JSON_KEYS
    assert data["verdict"] == "DeepFake" and data["deepfake_probability"] == pytest.approx(0.8)
    assert data["stats"]["DeepFake"] == {
        "max": 0.8,
        "min": 0.8,
        "mean": pytest.approx(0.8),
        "sum": pytest.approx(2.4),
        "count": 3,
    }
    assert (data["frame_interval"], data["frames_total"], data["frames_sampled"]) == (50, 120, 3)
    assert data["fps"] == 25.0 and data["duration_s"] == 4.8 and data["classifier"] == "azure"
    assert [(c["frame"], c["time_s"], c["face"]) for c in data["crops"]] == [(0, 0.0, 0), (50, 2.0, 0), (100, 4.0, 0)]
    assert set(data["crops"][0]) >= {"frame", "time_s", "face", "box", "probabilities", "image"}
    assert set(data["timings_s"]) == {"decode", "detect", "classify", "total"}


def test_cli_reports_a_bad_file_runs_the_others_and_exits_non_zero(runner, media, mocked_azure):
    result = runner.invoke(args=["analyze", str(media["text_as_mp4"]), str(media["face_photo"])])
    assert result.exit_code != 0
    assert "notes.mp4: error: The file is not a video or photo that can be read" in result.output
    assert "face.jpg: DeepFake (deepfake probability 0.800, 1 crop, confidence low)" in result.output


def test_a_low_quality_video_is_flagged_next_to_the_verdict(app, client, tmp_path, mocked_azure):
    blurred = [cv2.GaussianBlur(frame, (0, 0), 5) for frame in face_frames(60)]
    video = write_video(tmp_path / "blurry.mp4", blurred)
    location = upload_and_wait(app, client, video)
    result = json.loads(next(app.extensions["deepfake"].folders.root.glob("*/result.json")).read_text())
    assert result["warnings"] == ["low-quality video: this verdict is less reliable"]
    assert all("blurry" in crop["quality_flags"] for crop in result["crops"])
    page = client.get(location).get_data(as_text=True)
    assert "Low-quality video: this verdict is less reliable" in page


def test_a_sharp_video_carries_no_quality_warning(app, client, tmp_path, mocked_azure):
    # At 640 px the astronaut's crop is about 100 px, over face.SMALL_CROP_PX (at 384 it is 60: small).
    image = cv2.resize(face_image(), (640, 640), interpolation=cv2.INTER_AREA)
    video = write_video(tmp_path / "sharp.mp4", [np.roll(image, shift=i // 10, axis=1) for i in range(60)])
    upload_and_wait(app, client, video)
    result = json.loads(next(app.extensions["deepfake"].folders.root.glob("*/result.json")).read_text())
    assert result["crops"] and all(crop["quality_flags"] == [] for crop in result["crops"])
    assert result["warnings"] == []


def test_the_job_page_shows_progress_then_turns_into_the_result(make_app, media, mock_prediction_client):
    app = make_app()
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    client = app.test_client()
    location = upload(client, media["face_video"]).headers["Location"]
    job_id = location.rsplit("/", 1)[-1]
    app.extensions["deepfake"].store.claim("a test worker", 30)  # the queue is not started: nothing else runs it
    app.extensions["deepfake"].store.progress(job_id, "a test worker", "detecting faces", 1, 3)
    page = client.get(location).get_data(as_text=True)
    assert '<progress id="progress" max="1" value="0.3333">' in page
    assert "Finding faces" in page and "1 / 3 frames" in page
    assert f'data-status-url="/api/videos/{job_id}"' in page and "/static/job.js" in page

    app.extensions["deepfake"].store.hand_back(job_id, "a test worker")
    wait_for_job(app, job_id)
    page = client.get(location).get_data(as_text=True)
    assert 'data-verdict="DeepFake"' in page and "<progress" not in page


def test_every_stage_a_job_reports_is_named_in_words_in_each_language(make_app, media):
    app = make_app()
    client = app.test_client()
    location = upload(client, media["face_video"]).headers["Location"]
    job_id = location.rsplit("/", 1)[-1]
    app.extensions["deepfake"].store.claim("a test worker", 30)  # the queue is not started: nothing else runs it
    for stage in (jobs.DOWNLOADING, *pipeline.STAGES):
        app.extensions["deepfake"].store.progress(job_id, "a test worker", stage, 1, 3)
        shown = {}
        for language in ("en", "ko"):
            page = client.get(location, headers={"Accept-Language": language}).get_data(as_text=True)
            shown[language] = re.search(r'<p id="stage"[^>]*>([^<]*)</p>', page).group(1)
        assert shown["en"] and shown["en"] != stage, f"stage {stage!r} is shown as {shown['en']!r}"
        assert shown["ko"] != shown["en"], f"stage {stage!r} has no Korean words"
        stages_for_the_script = json.loads(html.unescape(re.search(r'data-stages="([^"]*)"', page).group(1)))
        assert stages_for_the_script[stage] == shown["ko"]  # job.js names a stage it polls the same way


def test_the_results_page_has_timeline_download_and_delete(app, client, media, mocked_azure):
    location = upload_and_wait(app, client, media["face_video"])
    page = client.get(location).get_data(as_text=True)
    assert '<svg id="timeline"' in page
    assert page.count('<circle class="fake"') == 3  # one point per sampled frame with a face, all at 0.8
    assert "person 1, 2 sec: 80.0% DeepFake" in page and '<a href="#crop-1">' in page and 'id="crop-1"' in page
    with client.get(f"{location}/result.json") as download:
        assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
        assert download.get_json()["verdict"] == "DeepFake"
    assert f'href="{location}/delete"' in page  # asks first
    confirm = client.get(f"{location}/delete").get_data(as_text=True)
    assert "Delete this analysis?" in confirm and f'action="{location}/delete"' in confirm
    assert client.get(location).status_code == 200  # asking deleted nothing

    response = client.post(f"{location}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/mine"
    assert "were deleted" in client.get("/mine").get_data(as_text=True)
    assert analysis_folders(app) == []
    assert client.get(location).status_code == 404


def test_my_analyses_lists_this_browsers_jobs_only(app, client, media, mocked_azure):
    mine = upload_and_wait(app, client, media["face_photo"])
    other_browser = app.test_client()
    theirs = upload_and_wait(app, other_browser, media["face_video"])
    page = client.get("/mine").get_data(as_text=True)
    assert f'href="{mine}"' in page and f'href="{theirs}"' not in page
    assert "DeepFake (80.0%)" in page
    assert f'href="{theirs}"' in other_browser.get("/mine").get_data(as_text=True)


def test_the_form_needs_its_csrf_token(make_app, media, mocked_azure):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    refused = upload(client, media["face_photo"])
    assert refused.status_code == 400 and "did not come from this site" in refused.get_data(as_text=True)
    assert analysis_folders(app) == []
    page = client.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    accepted = client.post(
        "/upload",
        data={"video": (io.BytesIO(media["face_photo"].read_bytes()), "a.jpg"), "csrf_token": token},
    )
    assert accepted.status_code == 302


def test_pages_carry_security_headers(client):
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.get_data(as_text=True) and "style=" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("accept_language", "heading"),
    [
        ("ko-KR,ko;q=0.9,en;q=0.5", "이 동영상은 딥페이크일까요?"),
        ("en-GB,en;q=0.8", "Is this video a deepfake?"),
        ("", "Is this video a deepfake?"),
    ],
)
def test_the_language_follows_the_browser(client, accept_language, heading):
    page = client.get("/", headers={"Accept-Language": accept_language}).get_data(as_text=True)
    assert heading in page


def test_the_language_switch_is_remembered(app, client, media, mocked_azure):
    response = client.get("/language/ko", headers={"Referer": "http://localhost/mine"})
    assert response.status_code == 302 and response.headers["Location"] == "/mine"
    location = upload_and_wait(app, client, media["face_video"])
    page = client.get(location, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="ko">' in page and ">딥페이크</h1>" in page and "타임라인" in page
    client.get("/language/en")
    assert "Is this video a deepfake?" in client.get("/").get_data(as_text=True)
    assert client.get("/language/xx").status_code == 404


def test_the_korean_catalogue_translates_every_page_string():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    with (root / "translations" / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    method_map = [("templates/**.html", "jinja2"), ("*.py", "python")]
    wanted = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(
            root, method_map, directory_filter=lambda d: "tests" not in d and ".venv" not in d
        )
    }
    missing = sorted(m for m in wanted if not (catalogue.get(m) and catalogue.get(m).string) or catalogue.get(m).fuzzy)
    assert not missing, f"untranslated (run `make translations` and fill them in): {missing}"
    compiled = root / "translations" / "ko" / "LC_MESSAGES" / "messages.mo"
    assert (
        compiled.stat().st_mtime >= (root / "translations" / "ko" / "LC_MESSAGES" / "messages.po").stat().st_mtime - 1
    )
