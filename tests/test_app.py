"""The web app: upload -> analysis -> results page, bad inputs, failures, and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import pytest

from app import create_app
from custom_vision import AzureClassifier, ClassifierError

from .conftest import azure_with, face_frames, write_video


@pytest.fixture
def mocked_azure(app, mock_prediction_client):
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    return mock_prediction_client


def upload(client, path: Path, name: str | None = None):
    return client.post("/upload", data={"video": (io.BytesIO(path.read_bytes()), name or path.name)})


def analysis_folders(app) -> list[Path]:
    return [p for p in Path(app.config["UPLOAD_FOLDER"]).iterdir() if p.is_dir()]


def test_the_upload_page_has_the_form(client):
    page = client.get("/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="video"' in page


def test_upload_redirects_to_a_results_page_with_verdict_table_and_crops(app, client, media, mocked_azure):
    response = upload(client, media["face_video"])
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/results/")
    page = client.get(location).get_data(as_text=True)
    assert '<h1 id="verdict">DeepFake</h1>' in page
    assert "80.0%" in page  # the deepfake probability
    assert '<th scope="row">DeepFake</th>' in page and "<td>3</td>" in page  # three crops counted
    assert page.count("<img ") == 3 and "Frame 50 (2.00 s)" in page
    assert "Azure Custom Vision" in page
    folder = analysis_folders(app)[0]
    result = json.loads((folder / "result.json").read_text())
    assert result["verdict"] == "DeepFake" and len(result["crops"]) == 3
    crop_url = f"{location}/crops/{Path(result['crops'][0]['image']).name}"
    with client.get(crop_url) as image:
        assert image.status_code == 200 and image.data[:2] == b"\xff\xd8"


def test_a_photo_goes_through_the_same_path(client, media, mocked_azure):
    response = upload(client, media["face_photo"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<h1 id="verdict">DeepFake</h1>' in page and "a photo" in page


def test_results_survive_a_restart(app, client, media, mocked_azure, tmp_path):
    location = upload(client, media["face_video"]).headers["Location"]
    restarted = create_app({"TESTING": True, "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"], "SECRET_KEY": "test"})
    page = restarted.test_client().get(location)
    assert page.status_code == 200 and '<h1 id="verdict">DeepFake</h1>' in page.get_data(as_text=True)


def test_no_face_is_a_results_page_not_an_error(client, media, mocked_azure):
    response = upload(client, media["no_face_video"])
    page = client.get(response.headers["Location"])
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


def test_over_the_size_limit_gets_a_413_page(tmp_path, media):
    app = create_app({"TESTING": True, "UPLOAD_FOLDER": str(tmp_path), "MAX_CONTENT_LENGTH": 10_000, "SECRET_KEY": "t"})
    response = upload(app.test_client(), media["face_video"])
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_the_client_file_name_is_never_a_path(app, client, media, mocked_azure):
    response = upload(client, media["face_photo"], name="../../../etc/evil name.jpg")
    assert response.status_code == 302
    (folder,) = analysis_folders(app)
    assert sorted(p.name for p in folder.iterdir()) == ["crops", "result.json", "upload.jpg"]
    assert not (Path(app.config["UPLOAD_FOLDER"]).parent / "etc").exists()


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


def test_azure_failing_shows_why_keeps_the_upload_and_can_analyse_again(app, client, media, mock_prediction_client):
    broken = AzureClassifier(mock_prediction_client, "p", "n")
    mock_prediction_client.classify_image_with_no_store.side_effect = ClassifierError(
        "Azure rejected the prediction key (HTTP 401)."
    )
    app.extensions["deepfake"].classifier = broken
    location = upload(client, media["face_photo"]).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert "The analysis failed" in page and "Azure rejected the prediction key" in page
    (folder,) = analysis_folders(app)
    assert (folder / "upload.jpg").exists()

    mock_prediction_client.classify_image_with_no_store.side_effect = None
    assert client.post(f"{location}/retry").status_code == 302
    assert '<h1 id="verdict">DeepFake</h1>' in client.get(location).get_data(as_text=True)


def test_a_missing_local_model_is_a_plain_failure_not_made_up_scores(tmp_path, media):
    app = create_app(
        {
            "TESTING": True,
            "UPLOAD_FOLDER": str(tmp_path),
            "SECRET_KEY": "t",
            "LOCAL_MODEL": str(tmp_path / "none.keras"),
        }
    )
    client = app.test_client()
    location = upload(client, media["face_photo"]).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert "The analysis failed" in page and "none.keras does not exist" in page


def test_cli_analyze_json_has_the_documented_fields(runner, app, media, mocked_azure):
    result = runner.invoke(args=["analyze", "--json", str(media["face_video"])])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    data = json.loads(line)
    for key in (
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
    ):
        assert key in data
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
    assert "face.jpg: DeepFake (deepfake probability 0.800, 1 crop)" in result.output


def test_a_low_quality_video_is_flagged_next_to_the_verdict(app, client, tmp_path, mocked_azure):
    blurred = [cv2.GaussianBlur(frame, (0, 0), 5) for frame in face_frames(60)]
    video = write_video(tmp_path / "blurry.mp4", blurred)
    location = upload(client, video).headers["Location"]
    result = json.loads(next(Path(app.config["UPLOAD_FOLDER"]).glob("*/result.json")).read_text())
    assert result["warnings"] == ["low-quality video: this verdict is less reliable"]
    assert all("blurry" in crop["quality_flags"] for crop in result["crops"])
    page = client.get(location).get_data(as_text=True)
    assert "Low-quality video: this verdict is less reliable" in page


def test_a_sharp_video_carries_no_quality_warning(app, client, media, mocked_azure):
    upload(client, media["face_video"])
    result = json.loads(next(Path(app.config["UPLOAD_FOLDER"]).glob("*/result.json")).read_text())
    assert result["warnings"] == []
