"""What a person sees around the verdict: the name they uploaded, the gallery's filters, the report
file, the About page, and the rough edges (redirects, error texts, caching, noisy start-up)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jobs

from .test_app import analysis_folders, upload, upload_and_wait

ROOT = Path(__file__).resolve().parent.parent


def test_the_uploaded_name_is_shown_cleaned_but_never_used_on_disk(app, client, media, mocked_azure):
    name = "/home/me/Downloads/../\u202egpj.mp4\x07 celebrity   ad.mp4"
    location = upload_and_wait(app, client, media["face_video"], name=name)
    (folder,) = analysis_folders(app)
    result = json.loads((folder / "result.json").read_text())
    assert result["file"] == "gpj.mp4 celebrity ad.mp4"  # no folders, no control or bidi characters
    assert {path.name for path in folder.iterdir()} <= {"crops", "result.json", "upload.mp4"}
    assert "gpj.mp4 celebrity ad.mp4" in client.get(location).get_data(as_text=True)
    assert "gpj.mp4 celebrity ad.mp4" in client.get("/mine").get_data(as_text=True)
    api_result = client.get(f"/api/videos/{folder.name}").get_json()["result"]
    assert api_result["file"] == result["file"] and api_result["confidence"] == "high"


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
        ("../../etc/passwd", "passwd"),
        ("\x00\x1b[31m\u200f.mp4", "[31m.mp4"),
        ("/", "upload"),
        ("  two\n lines ", "two lines"),
    ],
)
def test_display_names(sent, shown):
    from intake import display_name

    assert display_name(sent) == shown


def test_a_very_long_name_is_cut_to_200_characters(app, client, media, mocked_azure):
    upload_and_wait(app, client, media["face_photo"], name="a" * 500 + ".jpg")
    (folder,) = analysis_folders(app)
    assert json.loads((folder / "result.json").read_text())["file"] == "a" * 200


class InOrder:
    """Answers the given P(DeepFake) for the crops in the order they come."""

    name = "local"

    def __init__(self, scores):
        self.scores = scores

    def classify(self, images):
        from custom_vision import DEEPFAKE, REAL, Prediction

        return [Prediction({DEEPFAKE: s, REAL: 1 - s}) for s in self.scores[: len(images)]]


def test_the_gallery_filters_by_person_and_sorts_without_javascript(app, client, media):
    app.extensions["deepfake"].classifier = InOrder([0.3, 0.9, 0.6])  # the three crops, in time order
    location = upload_and_wait(app, client, media["face_video"])
    in_time = client.get(location).get_data(as_text=True)
    suspicious = client.get(f"{location}?order=suspicious").get_data(as_text=True)
    assert re.findall(r'<li id="crop-(\d)"', in_time) == ["0", "1", "2"]
    assert re.findall(r'<li id="crop-(\d)"', suspicious) == ["1", "2", "0"]
    assert re.findall(r'<li id="crop-(\d)"', client.get(f"{location}?person=1").get_data(as_text=True)) == [
        "0",
        "1",
        "2",
    ]
    assert re.findall(r'<li id="crop-(\d)"', client.get(f"{location}?person=7").get_data(as_text=True)) == []
    assert client.get(f"{location}?order=<script>").status_code == 200  # unknown order: time order


def test_the_report_is_one_file_with_every_crop_and_outlives_the_analysis(app, client, media, mocked_azure):
    location = upload_and_wait(app, client, media["face_video"], name="ad.mp4")
    page = client.get(location).get_data(as_text=True)
    assert f'href="{location}/report"' in page
    report = client.get(f"{location}/report")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    assert report.headers["Cache-Control"] == "no-store"
    html = report.get_data(as_text=True)
    assert html.count('src="data:image/jpeg;base64,') == 3
    assert not re.search(r'(src|href)="(https?:)?/', html)  # nothing fetched from anywhere
    assert "<script" not in html and "@media print" in html
    assert "ad.mp4" in html and "3 of 3 face crops look fake" in html
    assert client.post(f"{location}/delete").status_code == 302
    assert client.get(f"{location}/report").status_code == 404


@pytest.mark.parametrize(
    "referrer",
    [
        "http://localhost//evil.example/x",
        "http://localhost/\\evil.example/x",
        "http://evil.example/mine",
        "javascript:alert(1)",
        "//evil.example/",
    ],
)
def test_the_language_switch_goes_back_only_to_this_site(client, referrer):
    response = client.get("/language/ko", headers={"Referer": referrer})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_results_json_and_crops_are_not_cached(app, client, media, mocked_azure):
    location = upload_and_wait(app, client, media["face_video"])
    (folder,) = analysis_folders(app)
    crop = json.loads((folder / "result.json").read_text())["crops"][0]["image"].split("/")[-1]
    for url in (location, f"{location}/result.json", f"{location}/crops/{crop}", f"/api/videos/{folder.name}", "/mine"):
        with client.get(url) as response:
            assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", url
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")


def test_a_failure_is_told_plainly_in_the_viewers_language(app, client):
    services = app.extensions["deepfake"]
    folder = services.folders.create()
    services.store.create(folder.name)
    services.store.claim("a test worker", 30)
    services.store.finish(folder.name, "a test worker", jobs.TOO_LONG, limit_s=90)
    english = client.get(f"/results/{folder.name}").get_data(as_text=True)
    assert "The video is longer than 1 min 30 sec, the most that is analysed." in english
    korean = client.get(f"/results/{folder.name}", headers={"Accept-Language": "ko"}).get_data(as_text=True)
    assert "1분 30초" in korean and "longer than" not in korean
    state = client.get(f"/api/videos/{folder.name}", headers={"Accept-Language": "ko"}).get_json()
    assert state["error_code"] == "too_long" and "1분 30초" in state["error"]


def test_a_photo_is_not_counted_in_frames_and_times_are_split(app, client, media, mocked_azure):
    response = upload(client, media["face_photo"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Analysing your photo" in page and "frames" not in page.split('id="frames"')[1].split("</p>")[0]
    location = response.headers["Location"]
    from .conftest import wait_for_job

    wait_for_job(app, location.rsplit("/", 1)[-1])
    page = client.get(location).get_data(as_text=True)
    assert 'id="wait-time"' in page and 'id="analysis-time"' in page
    result = json.loads((analysis_folders(app)[0] / "result.json").read_text())
    assert {"wait", "warm_up", "total"} <= set(result["timings_s"]) and result["analysed_at"] > 0


def test_the_about_page_shows_the_shipped_figures(client):
    evaluation = json.loads((ROOT / "models" / "evaluation.json").read_text())
    page = client.get("/about-model").get_data(as_text=True)
    for report in evaluation["sets"]:
        level = report["video_level"] if report["kind"] == "videos" else report["crop_level"]
        assert report["name"] in page and f"{level['roc_auc']:.2f}" in page
    assert "not seen in training" in page and "same source as the training data" in page
    results_page_link = 'href="/about-model"'
    assert results_page_link in page  # in the navigation


def test_the_commands_start_without_tensorflow_noise(tmp_path, media):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLASSIFIER": "local"}
    run = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "analyze", str(media["face_photo"])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "confidence" in run.stdout
    assert "cuInit" not in run.stderr and "cuda" not in run.stderr.lower() and "absl" not in run.stderr
