"""The training workflow: build-dataset, train, evaluate and upload-to-custom-vision, as commands."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import face
import training
from app import create_app
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction

from .conftest import face_frames, face_image, write_video


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def source_folder(tmp_path, media):
    """real/ and fake/ folders with videos and photos, one photo without a face."""
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "fake").mkdir()
    write_video(src / "real" / "clip.mp4", face_frames(60))
    cv2.imwrite(str(src / "real" / "portrait.jpg"), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    write_video(src / "fake" / "swap.avi", face_frames(30))
    cv2.imwrite(str(src / "fake" / "landscape.png"), np.full((200, 300, 3), 90, dtype=np.uint8))
    (src / "fake" / "notes.mp4").write_text("not a video")
    return src


def test_build_dataset_crops_labels_and_reports_what_had_no_face(runner, source_folder, tmp_path):
    out = tmp_path / "dataset"
    result = runner.invoke(args=["build-dataset", str(source_folder), str(out)])
    assert result.exit_code == 0, result.output
    assert "4 crops from 5 sources" in result.output and "1 with no face; 1 unreadable" in result.output
    rows = read_csv(out / "labels.csv")
    assert sorted((r["source"], r["label"], r["frame"]) for r in rows) == [
        ("fake/swap.avi", "fake", "0"),
        ("real/clip.mp4", "real", "0"),
        ("real/clip.mp4", "real", "50"),
        ("real/portrait.jpg", "real", "0"),
    ]
    assert all(r["split"] in ("train", "val", "test") and r["group"] == r["source"] for r in rows)
    for row in rows:
        crop = face.read_image(out / row["crop"])
        assert 20 < crop.shape[0] < 200  # the eye/nose/mouth region, not the frame
    no_face = read_csv(out / "no_face.csv")
    assert sorted((r["source"], r["reason"].split(":")[0]) for r in no_face) == [
        ("fake/landscape.png", "no face"),
        ("fake/notes.mp4", "unreadable"),
    ]

    again = runner.invoke(args=["build-dataset", str(source_folder), str(out)])
    assert "0 crops from 0 sources" in again.output and "5 sources done before" in again.output
    assert len(read_csv(out / "labels.csv")) == 4


def test_build_dataset_reads_a_metadata_csv_with_groups_and_splits(runner, tmp_path):
    src = tmp_path / "faces"
    (src / "faces").mkdir(parents=True)
    cv2.imwrite(str(src / "faces" / "a.jpg"), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "faces" / "b.jpg"), cv2.cvtColor(face_image()[:, ::-1], cv2.COLOR_RGB2BGR))
    (src / "metadata.csv").write_text("file,label,group,split\nfaces/a.jpg,real,g1,train\nfaces/b.jpg,FAKE,g1,val\n")
    result = runner.invoke(args=["build-dataset", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "out" / "labels.csv")
    assert [(r["source"], r["label"], r["group"], r["split"]) for r in rows] == [
        ("faces/a.jpg", "real", "g1", "train"),
        ("faces/b.jpg", "fake", "g1", "val"),
    ]


def tiny_dataset(folder: Path, per_class: int = 12) -> Path:
    """Crops where fake is visibly different (blurred and tinted), in train and val splits."""
    base = cv2.resize(face_image()[80:180, 160:290], (128, 100))
    rows = []
    for label in ("real", "fake"):
        (folder / "crops" / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = np.roll(base, index * 3, axis=1)
            if label == "fake":
                image = cv2.GaussianBlur(image, (9, 9), 3)
                image[..., 0] = np.clip(image[..., 0].astype(int) + 60, 0, 255)
            name = f"crops/{label}/{index}.jpg"
            (folder / name).write_bytes(face.encode_jpeg(image))
            split = "val" if index % 4 == 0 else "train"
            rows.append((name, label, f"{label}{index}", split, f"{label}/{index}.mp4", 0))
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(training.LABEL_COLUMNS)
        writer.writerows(rows)
    return folder


def test_train_writes_a_model_that_classifier_local_then_uses(runner, tmp_path, media):
    dataset = tiny_dataset(tmp_path / "tiny")
    models = tmp_path / "models"
    result = runner.invoke(args=["train", str(dataset), "--out", str(models), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and "val ROC AUC" in result.output
    metrics = json.loads((models / "metrics.json").read_text())
    assert metrics["train_crops"] == 18 and metrics["val_crops"] == 6 and metrics["best_epoch"] == 1

    app = create_app(
        {
            "TESTING": True,
            "UPLOAD_FOLDER": str(tmp_path / "up"),
            "SECRET_KEY": "t",
            "CLASSIFIER": "local",
            "LOCAL_MODEL": str(models / "deepfake_crop_cnn.keras"),
        }
    )
    analysis = app.test_cli_runner().invoke(args=["analyze", "--json", str(media["face_photo"])])
    assert analysis.exit_code == 0, analysis.output
    data = json.loads(analysis.output.strip().splitlines()[-1])
    assert data["classifier"] == "local" and data["verdict"] in (DEEPFAKE, REAL)
    (crop,) = data["crops"]
    assert crop["probabilities"][DEEPFAKE] + crop["probabilities"][REAL] == pytest.approx(1.0, abs=1e-3)


class BrightnessClassifier:
    """A classifier whose answer is known by hand: P(DeepFake) is the crop's mean red value / 255."""

    name = "brightness"

    def classify(self, images):
        return [
            Prediction({DEEPFAKE: float(i[..., 0].mean()) / 255, REAL: 1 - float(i[..., 0].mean()) / 255})
            for i in images
        ]


def test_evaluate_on_a_case_known_by_hand(runner, app, tmp_path):
    folder = tmp_path / "known"
    (folder / "crops").mkdir(parents=True)
    # (label, red value, group, source): P(DeepFake) = red / 255
    cases = [
        ("fake", 230, "g1", "v1"),
        ("fake", 200, "g1", "v1"),
        ("fake", 60, "g2", "v2"),
        ("real", 30, "g1", "v3"),
        ("real", 150, "g2", "v4"),
        ("real", 20, "g2", "v4"),
    ]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(training.LABEL_COLUMNS)
        for index, (label, red, group, source) in enumerate(cases):
            image = np.zeros((40, 40, 3), dtype=np.uint8)
            image[..., 0] = red
            cv2.imwrite(str(folder / "crops" / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            writer.writerow((f"crops/{index}.png", label, group, "test", source, 0))
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    crops = report["crop_level"]
    # predicted fake: 230, 200, 150; fake crops: 230, 200, 60 -> 2 true fake, 1 false real, 1 false fake, 2 true real
    assert crops["confusion"] == {"true_fake": 2, "false_fake": 1, "true_real": 2, "false_real": 1}
    assert crops["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    # pairs (fake, real) ranked right: 230 and 200 beat all 3 reals, 60 beats 30 and 20 -> 8 of 9
    assert crops["roc_auc"] == pytest.approx(8 / 9, abs=1e-4)
    videos = report["video_level"]
    # v1 fake -> DeepFake; v2 fake -> Not DeepFake; v3 real -> Not DeepFake; v4 real: 150 (fake .59) and 20
    # (real .92) -> real mean wins -> Not DeepFake
    assert videos["count"] == 4
    assert videos["confusion"] == {"true_fake": 1, "false_fake": 0, "true_real": 2, "false_real": 1}
    groups = report["per_group"]
    assert groups["accuracy"] == {"g1": 1.0, "g2": pytest.approx(1 / 3, abs=1e-4)}
    assert "crop level: n=6 accuracy=0.6667 roc_auc=0.8889" in result.output
    assert report["low_quality"] is False and report["quality_flagged"] == 1.0  # 40 px crops are small faces

    degraded = runner.invoke(args=["evaluate", str(folder), "--low-quality", "--json", "-"])
    assert degraded.exit_code == 0, degraded.output
    report = json.loads(degraded.output[degraded.output.index("{") :])
    assert report["low_quality"] is True and "degraded to low quality" in degraded.output
    assert report["crop_level"]["confusion"] == crops["confusion"]  # flat colours survive the degradation


def test_degrade_shrinks_and_blurs_a_crop_until_it_is_flagged():
    sharp = cv2.resize(face_image()[150:330, 170:350], (160, 160))
    assert face.quality_flags(sharp) == []
    degraded = training.degrade(sharp)
    assert degraded.shape == (40, 40, 3)
    assert face.SMALL_FACE in face.quality_flags(degraded)


@pytest.mark.parametrize(
    ("labels", "scores", "auc"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ([0, 1], [0.5, 0.5], 0.5),
        ([1, 1, 0], [0.9, 0.2, 0.2], 0.75),
        ([1, 1], [0.1, 0.2], None),
    ],
)
def test_roc_auc(labels, scores, auc):
    assert training.roc_auc(np.array(labels), np.array(scores)) == (auc if auc is None else pytest.approx(auc))


def test_upload_to_custom_vision_creates_tags_and_uploads_train_and_val(runner, app, tmp_path, fake_azure):
    dataset = tiny_dataset(tmp_path / "tiny")
    app.extensions["deepfake"].settings = Settings.from_mapping(
        {
            "VISION_TRAINING_ENDPOINT": fake_azure.endpoint,
            "VISION_TRAINING_KEY": fake_azure.training_key,
            "VISION_PROJECT_ID": fake_azure.project_id,
            "AZURE_RETRY_BACKOFF_S": 0,
        }
    )
    fake_azure.tags["Not DeepFake"] = "existing-real-tag"
    fake_azure.fail_next(429, headers={"Retry-After": "0"})
    result = runner.invoke(args=["upload-to-custom-vision", str(dataset)])
    assert result.exit_code == 0, result.output
    assert "uploaded 24 crops" in result.output and "tags created: DeepFake" in result.output
    assert set(fake_azure.tags) == {"DeepFake", "Not DeepFake"}
    assert len(fake_azure.uploaded) == 24
    fake_tag = fake_azure.tags["DeepFake"]
    by_name = {(e["name"], tuple(e["tagIds"])) for e in fake_azure.uploaded}
    assert ("0.jpg", (fake_tag,)) in by_name and ("0.jpg", ("existing-real-tag",)) in by_name
    first = fake_azure.uploaded[0]
    assert base64.b64decode(first["contents"])[:2] == b"\xff\xd8"


def test_upload_to_custom_vision_with_a_wrong_key_says_so(runner, app, tmp_path, fake_azure):
    dataset = tiny_dataset(tmp_path / "tiny")
    app.extensions["deepfake"].settings = Settings.from_mapping(
        {
            "VISION_TRAINING_ENDPOINT": fake_azure.endpoint,
            "VISION_TRAINING_KEY": "wrong",
            "VISION_PROJECT_ID": fake_azure.project_id,
        }
    )
    result = runner.invoke(args=["upload-to-custom-vision", str(dataset)])
    assert result.exit_code != 0
    assert "Azure rejected the training key" in result.output


def test_evaluate_a_folder_of_real_and_fake_videos(runner, app, source_folder, mock_prediction_client):
    from .conftest import azure_with

    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)  # P(DeepFake) = 0.8 for every crop
    result = runner.invoke(args=["evaluate", str(source_folder), "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert [(v["file"], v["label"], v["verdict"], v["crops"]) for v in report["videos"]] == [
        ("real/clip.mp4", "real", "DeepFake", 2),
        ("fake/swap.avi", "fake", "DeepFake", 1),
    ]
    assert report["video_level"]["confusion"] == {"true_fake": 1, "false_fake": 1, "true_real": 0, "false_real": 0}
    assert report["crop_level"]["count"] == 3 and report["crop_level"]["roc_auc"] == 0.5
    assert [f["file"] for f in report["failed"]] == ["fake/notes.mp4"]
    assert "real/clip.mp4: real -> DeepFake (0.800, 2 crops)" in result.output


def test_group_order_shows_every_crop_once_an_epoch_with_its_group_together():
    groups = ["a", "b", "a", "c", "b", "a", "d"]
    order = training.group_order(groups, epochs=3, seed=1)
    assert len(order) == 21
    for epoch in range(3):
        shown = order[epoch * 7 : (epoch + 1) * 7]
        assert sorted(shown) == list(range(7))
        sequence = [groups[i] for i in shown]
        runs = [g for position, g in enumerate(sequence) if position == 0 or sequence[position - 1] != g]
        assert sorted(runs) == ["a", "b", "c", "d"]  # each group in one unbroken run
    assert list(order[:7]) != list(order[7:14])  # a new order each epoch
