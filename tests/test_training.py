"""The training workflow: build-dataset, train, evaluate and upload-to-custom-vision, as commands."""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import hashlib
import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import augmentation
import evaluation
import face
import metrics
import model
import training
from app import create_app
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction
from unfinished_training import UnfinishedTraining

from .conftest import face_frames, face_image, write_video
from .test_augmentation import ASTRONAUT_KEYPOINTS


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


TINY_TRAINING = ["--input-size", "32", "--widths", "8,8,8,8,8", "--epochs", "1"]  # train's fastest run on tiny_dataset


def tiny_dataset(folder: Path, per_class: int = 12) -> Path:
    """Faces where fake is visibly different (blurred and tinted), in train and val splits, with the
    face region, keypoints and crop box that build-dataset keeps."""
    context = face_image()[40:200, 150:300]
    keypoints = ASTRONAUT_KEYPOINTS - np.array([150, 40], dtype=np.float32)
    box = face.crop_box(dict(zip(face.KEYPOINT_NAMES, map(tuple, keypoints), strict=True)), 0.5, 150, 160)
    rows = []
    for label in ("real", "fake"):
        for kind in ("crops", "contexts"):
            (folder / kind / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = np.roll(context, index * 3, axis=1)
            if label == "fake":
                image = cv2.GaussianBlur(image, (9, 9), 3)
                image[..., 0] = np.clip(image[..., 0].astype(int) + 60, 0, 255)
            name = f"{label}/{index}.jpg"
            (folder / "contexts" / name).write_bytes(face.encode_jpeg(image))
            (folder / "crops" / name).write_bytes(face.encode_jpeg(image[box[1] : box[3], box[0] : box[2]]))
            split = "val" if index % 4 == 0 else "train"
            rows.append(
                (
                    f"crops/{name}",
                    label,
                    f"g{index}",
                    split,
                    f"{label}/{index}.mp4",
                    0,
                    f"contexts/{name}",
                    " ".join(f"{v:.1f}" for v in keypoints.reshape(-1)),
                    " ".join(map(str, box)),
                )
            )
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
    assert "epoch 1/1" in result.output and "pseudo-fake val ROC AUC" in result.output
    metrics = json.loads((models / "metrics.json").read_text())
    assert metrics["train_faces"] == 18 and metrics["val_faces"] == 6 and metrics["best_epoch"] == 1
    # Each epoch: the 9 real faces as themselves and as pseudo-fakes, and half the 9 fakes on average.
    assert 18 <= metrics["examples_per_epoch"] <= 27
    assert metrics["temperature"] > 0 and metrics["val_calibration"]["after"]["ece"] is not None

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


class StoppedError(Exception):
    """What stops a training in a test, as a kill or a session's end would."""


def stopping_after(epochs: int):
    """A train progress callback that stops the training once epoch ``epochs`` is reported."""

    def progress(line: str) -> None:
        if line.startswith(f"epoch {epochs}/"):
            raise StoppedError(line)

    return progress


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def test_a_stopped_training_resumes_where_it_stopped_as_if_it_had_not_stopped(tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    # Three steps an epoch; no dropout, whose masks are the one thing a resumed training draws anew.
    config = training.TrainConfig(input_size=32, widths=(8,) * 5, epochs=3, batch_size=8, dropout=0.0)
    whole = training.train(dataset, tmp_path / "whole", config, progress=lambda line: None)
    stopped = tmp_path / "stopped"
    with pytest.raises(StoppedError):
        training.train(dataset, stopped, config, progress=stopping_after(2))
    state = json.loads((stopped / "unfinished" / "state.json").read_text())
    assert state["epochs_done"] == 2 and [row["epoch"] for row in state["history"]] == [1, 2]
    best = state["best_epoch"]
    kept = sorted(path.name for path in (stopped / "unfinished").iterdir())
    assert kept == sorted([f"best-{best}.scores.npz", f"best-{best}.weights.h5", "epoch-2.weights.h5", "state.json"])

    lines = []
    resumed = training.train(dataset, stopped, config, progress=lines.append, resume=True)
    assert any(line.startswith("resuming at epoch 3/3") for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 3/3"]
    # The third epoch's loss and val figures too: the same examples, learning rates and optimiser state.
    assert without_seconds(resumed["history"]) == without_seconds(whole["history"])
    assert resumed["resumed_after_epochs"] == [2] and whole["resumed_after_epochs"] == []
    assert not (stopped / "unfinished").exists() and not (tmp_path / "whole" / "unfinished").exists()
    weights = [
        keras.models.load_model(folder / "deepfake_crop_cnn.keras").get_weights()
        for folder in (tmp_path / "whole", stopped)
    ]
    for one, other in zip(*weights, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-5)


def test_train_refuses_to_start_over_an_unfinished_training_and_resumes_it_only_as_started(runner, tmp_path):
    dataset = tiny_dataset(tmp_path / "tiny")
    out = tmp_path / "m"
    options = ["train", str(dataset), "--out", str(out), "--input-size", "32", "--widths", "8,8,8,8,8", "--epochs", "2"]
    nothing = runner.invoke(args=[*options, "--resume"])
    assert nothing.exit_code != 0 and "holds no unfinished training to resume" in nothing.output
    with pytest.raises(StoppedError):
        training.train(
            dataset, out, training.TrainConfig(input_size=32, widths=(8,) * 5, epochs=2), progress=stopping_after(1)
        )

    afresh = runner.invoke(args=options)
    assert afresh.exit_code != 0 and "unfinished training (1 of 2 epochs done)" in afresh.output
    assert "--resume" in afresh.output and (out / "unfinished" / "state.json").exists()
    otherwise = runner.invoke(args=[*options, "--codec-share", "0.25", "--resume"])
    assert otherwise.exit_code != 0 and "another recipe (codec_share 0.5, not 0.25)" in otherwise.output
    resumed = runner.invoke(args=[*options, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at epoch 2/2" in resumed.output and "epoch 1/2" not in resumed.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1, 2] and metrics["resumed_after_epochs"] == [1]
    assert not (out / "unfinished").exists()


def test_kept_of_keeps_the_epoch_with_the_best_val_score_or_the_last():
    history = [{"epoch": e, "val_score": v} for e, v in enumerate([0.90, 0.80, 0.82, 0.82, 0.81])]
    assert training.kept_of(history)["epoch"] == 2  # a tie keeps the earlier; the start (epoch 0) is never kept
    assert training.kept_of(history, "last")["epoch"] == 4
    with pytest.raises(ValueError, match="keep_epoch must be one of best, last, not 'first'"):
        training.kept_of(history, "first")


def test_train_with_keep_epoch_last_keeps_each_epoch_in_turn_and_writes_the_last(runner, tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path / "tiny")
    out = tmp_path / "m"
    # Each epoch scores worse on val than the one before, so "best" would keep the first.
    falling = iter([0.9, 0.8, 0.7])
    figures = training.val_figures
    monkeypatch.setattr(
        training, "val_figures", lambda sets, scores: {**figures(sets, scores), "val_score": next(falling)}
    )
    kept = []  # the weights kept as the epoch to write, as each epoch is reported

    def progress(line: str) -> None:
        if line.startswith("epoch "):
            kept.append(sorted(path.name for path in (out / "unfinished").glob("best-*.weights.h5")))

    config = training.TrainConfig(input_size=32, widths=(8,) * 5, epochs=3, keep_epoch="last")
    metrics = training.train(dataset, out, config, progress=progress)
    assert kept == [["best-1.weights.h5"], ["best-2.weights.h5"], ["best-3.weights.h5"]]
    assert metrics["best_epoch"] == 3 and metrics["best"] == metrics["history"][-1]
    assert metrics["config"]["keep_epoch"] == "last" and (out / "deepfake_crop_cnn.keras").exists()
    monkeypatch.setattr(training, "val_figures", figures)
    options = ["--input-size", "32", "--widths", "8,8,8,8,8", "--epochs", "1", "--keep-epoch", "last"]
    result = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "cli"), *options])
    assert result.exit_code == 0, result.output
    assert "last epoch 1:" in result.output
    wrong = runner.invoke(args=["train", str(dataset), "--out", str(out), "--keep-epoch", "first"])
    assert wrong.exit_code == 2 and "'first' is not one of 'best', 'last'" in wrong.output
    with pytest.raises(ValueError, match="keep_epoch must be one of best, last, not 'first'"):
        training.train(dataset, out, dataclasses.replace(config, keep_epoch="first"))


def test_an_unfinished_training_goes_on_only_from_the_model_it_started_from(tmp_path):
    config = training.TrainConfig(epochs=4, init="runs/a/deepfake_crop_cnn.keras")
    (tmp_path / "unfinished").mkdir()
    state = {"config": dataclasses.asdict(config), "stream_entropy": [1234, 7], "epochs_done": 1, "best_epoch": 1}
    (tmp_path / "unfinished" / "state.json").write_text(json.dumps(state))
    unfinished = UnfinishedTraining(tmp_path / "unfinished")
    assert unfinished.to_resume(config, [1234, 7], resume=True)["epochs_done"] == 1
    with pytest.raises(
        ValueError, match="deepfake_crop_cnn.keras is not the model the unfinished training in .* started"
    ):
        unfinished.to_resume(config, [1234, 8], resume=True)  # the file at --init was overwritten since


def test_fine_tuning_starts_from_the_given_model(runner, tmp_path):
    dataset = tiny_dataset(tmp_path / "tiny")
    first = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "a"), "--epochs", "1"])
    assert first.exit_code == 0, first.output
    tuned = runner.invoke(
        args=[
            "train",
            str(dataset),
            "--out",
            str(tmp_path / "b"),
            "--epochs",
            "1",
            "--init",
            str(tmp_path / "a" / "deepfake_crop_cnn.keras"),
            "--no-pseudo-fakes",
            "--no-degrade",
        ]
    )
    assert tuned.exit_code == 0, tuned.output
    assert "before training: val_auc_dfdc" in tuned.output
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["config"]["init"].endswith("deepfake_crop_cnn.keras")
    assert metrics["examples_per_epoch"] == 18  # no pseudo-fakes: every face once
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    for row in metrics["history"]:  # the part-only and low-resolution pseudo-fakes are reported, not scored
        assert row["val_auc_parts"] is not None and row["val_auc_low_res"] is not None
        scored = [row[f"val_auc_{name}"] for name in ("dfdc", "pseudo", "degraded", "recoloured", "light_and_pose")]
        assert row["val_score"] == pytest.approx(np.mean([v for v in scored if v is not None]), abs=2e-4)
        before = [v for v in scored[:3] if v is not None]  # the yardstick of stages 1 to 34
        assert row["val_score_without_colours"] == pytest.approx(np.mean(before), abs=2e-4)
        before = [v for v in scored[:4] if v is not None]  # the yardstick of stages 35 and 36
        assert row["val_score_without_light_and_pose"] == pytest.approx(np.mean(before), abs=2e-4)


def test_a_model_widened_by_widen_model_trains_on_at_its_new_widths(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    small = ["--input-size", "32", "--epochs", "1", "--no-pseudo-fakes", "--no-degrade"]
    first = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "a"), "--widths", "8,8,8,8,8", *small])
    assert first.exit_code == 0, first.output
    narrow = tmp_path / "a" / "deepfake_crop_cnn.keras"
    wide = tmp_path / "wide.keras"
    widened = runner.invoke(args=["widen-model", str(narrow), "--widths", "8,8,8,12,16", "--out", str(wide)])
    assert widened.exit_code == 0, widened.output
    assert "(8, 8, 8, 8, 8) -> (8, 8, 8, 12, 16)" in widened.output
    crops = np.random.default_rng(4).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    before, after = (keras.models.load_model(path, compile=False) for path in (narrow, wide))
    assert np.allclose(model.MirroredScorer(after)(crops), model.MirroredScorer(before)(crops), atol=0.02)

    refused = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "b"), "--init", str(wide), *small])
    assert refused.exit_code != 0
    assert "its stage widths: (8, 8, 8, 12, 16)" in refused.output and "widen-model" in refused.output
    args = ["train", str(dataset), "--out", str(tmp_path / "b"), "--init", str(wide), "--widths", "8,8,8,12,16"]
    tuned = runner.invoke(args=[*args, *small])
    assert tuned.exit_code == 0, tuned.output
    trained = keras.models.load_model(tmp_path / "b" / "deepfake_crop_cnn.keras", compile=False)
    assert model.widths_of(trained) == (8, 8, 8, 12, 16)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["config"]["widths"] == [8, 8, 8, 12, 16]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--widths", "8,16,8"], "can only add filters"),
        (["--widths", "8,8,8,8"], "can only add filters"),
        (["--widths", "8,x"], "comma-separated list of positive whole numbers"),
        (["--widths", "8,0,8,8,8"], "comma-separated list of positive whole numbers"),
    ],
)
def test_widen_model_refuses_what_it_cannot_widen_to(runner, tmp_path, args, message):
    model.build(32, widths=(8, 8, 8, 8, 8), stem=4).save(tmp_path / "a.keras")
    result = runner.invoke(args=["widen-model", str(tmp_path / "a.keras"), "--out", str(tmp_path / "b.keras"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "b.keras").exists()


def small_models(tmp_path, seeds) -> list:
    """A small network saved once per seed (stage<seed>.keras), each with its own random weights."""
    import keras

    paths = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        paths.append(path := tmp_path / f"stage{seed}.keras")
        model.build(32, widths=(8, 16), stem=4).save(path)
    return paths


def test_average_models_averages_the_weights_and_calibrates_the_average(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    paths = small_models(tmp_path, seeds=(1, 2))
    result = runner.invoke(args=["average-models", str(dataset), *map(str, paths), "--out", str(tmp_path / "avg")])
    assert result.exit_code == 0, result.output
    assert "average: val_auc_dfdc" in result.output and "val score" in result.output
    for path in paths:
        assert f"average - {path}: val score " in result.output
    assert "(paired bootstrap over 3 val groups)" in result.output

    report = json.loads((tmp_path / "avg" / "metrics.json").read_text())
    assert [row["sha256"] for row in report["averaged"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert all("val_score" in row for row in report["averaged"]) and "val_auc_parts" in report["best"]
    for row in report["averaged"]:
        gain = row["average_minus_this"]
        assert gain["val_score"] == pytest.approx(report["best"]["val_score"] - row["val_score"], abs=2e-4)
        assert gain["interval"][0] <= gain["val_score"] <= gain["interval"][1]
    inputs = [keras.models.load_model(path, compile=False).get_weights() for path in paths]
    expected = [np.mean(weights, axis=0) for weights in zip(*inputs, strict=True)]
    averaged = keras.models.load_model(tmp_path / "avg" / "deepfake_crop_cnn.keras", compile=False).get_weights()
    assert not np.allclose(inputs[0][0], inputs[1][0])  # two different models went in
    for got, mean in zip(averaged[:-2], expected[:-2], strict=True):
        assert np.allclose(got, mean, atol=1e-6)
    temperature = report["temperature"]  # divides the last layer (kernel, bias): the calibration
    assert temperature > 0
    for got, mean in zip(averaged[-2:], expected[-2:], strict=True):
        assert np.allclose(got, mean / temperature, rtol=1e-3, atol=1e-6)


def val_sets_of(groups: int) -> tuple[training.ValidationSets, training.Faces]:
    """Val sets of ``groups`` groups, each a real face and a fake made from it, with no pictures:
    `val_score_difference` reads only the labels and the groups."""
    labels = np.tile(np.array([0, 1]), groups)
    rows = [{"group": f"g{index // 2}"} for index in range(len(labels))]
    faces = training.Faces([np.zeros((1, 1, 3), np.uint8)] * len(labels), None, None, labels, rows)
    pictures = np.zeros((len(labels), 1))
    pairs = (np.zeros((2 * groups, 1)), np.repeat(np.array([0.0, 1.0]), groups))  # each real face, then its pseudo-fake
    sets = training.ValidationSets(
        **{name: pairs if name in training.AGAINST_PSEUDO_FAKES else (pictures, labels) for name in training.VAL_SETS}
    )
    return sets, faces


def scores_of(sets: training.ValidationSets, rng: np.random.Generator, skill: float) -> dict[str, np.ndarray]:
    """Scores of a model that ranks fakes above real faces by ``skill`` on average, on every val set."""
    return {
        name: getattr(sets, name)[1] * skill + rng.uniform(0, 1, len(getattr(sets, name)[1]))
        for name in training.VAL_SETS
    }


def test_a_paired_bootstrap_says_whether_one_model_beats_another_on_val():
    sets, faces = val_sets_of(groups=60)
    rng = np.random.default_rng(7)
    baseline = scores_of(sets, rng, skill=0.3)
    better = scores_of(sets, rng, skill=1.0)

    gain = training.val_score_difference(sets, faces, better, baseline)
    expected = training.val_figures(sets, better)["val_score"] - training.val_figures(sets, baseline)["val_score"]
    assert gain["val_score"] == pytest.approx(expected, abs=2e-4)
    assert gain["groups"] == 60
    assert 0 < gain["interval"][0] < gain["val_score"] < gain["interval"][1]

    # The same ranking (every score shifted and squeezed): both models are scored on each resample,
    # so the difference is exactly nothing, however few the groups.
    same = {name: 0.5 * scores + 0.2 for name, scores in baseline.items()}
    assert training.val_score_difference(sets, faces, same, baseline) == {
        "val_score": 0.0,
        "interval": [0.0, 0.0],
        "groups": 60,
        "sets": {name: {"difference": 0.0, "interval": [0.0, 0.0]} for name in training.VAL_SETS},
    }

    # Two models of the same skill: the interval holds 0.
    other = scores_of(sets, rng, skill=0.3)
    low, high = training.val_score_difference(sets, faces, other, baseline)["interval"]
    assert low < 0 < high


def test_the_turned_faces_are_read_apart_on_val_reported_not_scored():
    """A model better on the turned faces alone: their ROC AUC as cut and its paired reading show it,
    the val score moves only as the crops as cut do."""
    sets, faces = val_sets_of(groups=60)
    sets = dataclasses.replace(sets, turned=np.arange(len(faces)) % 6 < 2)  # a third of the groups turned
    rng = np.random.default_rng(5)
    baseline = scores_of(sets, rng, skill=0.3)
    labels, turned = sets.dfdc[1], sets.turned
    better = {**baseline, "dfdc": np.where(turned, labels * 2.0 + rng.uniform(0, 1, len(labels)), baseline["dfdc"])}
    figures = training.val_figures(sets, better)
    assert figures["val_auc_turned"] == pytest.approx(metrics.roc_auc(labels[turned], better["dfdc"][turned]), abs=1e-4)
    assert figures["val_auc_turned"] > training.val_figures(sets, baseline)["val_auc_turned"]
    gain = training.val_score_difference(sets, faces, better, baseline)
    reading = gain["sets"]["turned"]
    expected = metrics.roc_auc(labels[turned], better["dfdc"][turned]) - metrics.roc_auc(
        labels[turned], baseline["dfdc"][turned]
    )
    assert reading["difference"] == pytest.approx(expected, abs=1e-4)
    assert 0 < reading["interval"][0] < reading["difference"]
    unturned = training.val_figures(dataclasses.replace(sets, turned=None), better)
    assert "val_auc_turned" not in unturned and unturned["val_score"] == figures["val_score"]  # not scored


def test_the_paired_bootstrap_reads_each_val_set_apart():
    """A model better on one unscored set only: the val score does not move, that set's ROC AUC does,
    beyond the noise, by the gap of the two ROC AUCs."""
    sets, faces = val_sets_of(groups=60)
    rng = np.random.default_rng(11)
    baseline = scores_of(sets, rng, skill=0.3)
    better_outlines = {**baseline, "outline": scores_of(sets, rng, skill=1.0)["outline"]}
    gain = training.val_score_difference(sets, faces, better_outlines, baseline)
    assert gain["val_score"] == 0.0 and gain["interval"] == [0.0, 0.0]
    outline = gain["sets"].pop("outline")
    labels = sets.outline[1]
    expected = metrics.roc_auc(labels, better_outlines["outline"]) - metrics.roc_auc(labels, baseline["outline"])
    assert outline["difference"] == pytest.approx(expected, abs=1e-4)
    assert 0 < outline["interval"][0] < outline["difference"] < outline["interval"][1]
    assert gain["sets"] == {name: {"difference": 0.0, "interval": [0.0, 0.0]} for name in gain["sets"]}
    assert len(gain["sets"]) == len(training.VAL_SETS) - 1


def test_compare_models_prints_one_models_val_gain_over_another(runner, tmp_path):
    dataset = tiny_dataset(tmp_path / "tiny")
    paths = small_models(tmp_path, seeds=(1, 2))
    result = runner.invoke(args=["compare-models", str(dataset), str(paths[0]), str(paths[0])])
    assert result.exit_code == 0, result.output
    assert "val score +0.0000, 95% interval [+0.0000, +0.0000] (paired bootstrap over 3 val groups)" in result.output
    assert "  pseudo: ROC AUC +0.0000 [+0.0000, +0.0000]" in result.output
    assert "  outline: ROC AUC +0.0000 [+0.0000, +0.0000]" in result.output

    report = training.compare_models(dataset, paths[0], paths[1])
    gain = report["difference"]
    assert gain["val_score"] == pytest.approx(report["model"]["val_score"] - report["baseline"]["val_score"], abs=2e-4)
    assert gain["interval"][0] <= gain["val_score"] <= gain["interval"][1]
    pseudo = gain["sets"]["pseudo"]
    expected = report["model"]["val_auc_pseudo"] - report["baseline"]["val_auc_pseudo"]
    assert pseudo["difference"] == pytest.approx(expected, abs=2e-4)


def test_probe_blends_prints_each_changes_figures_for_each_model(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    keras.utils.set_random_seed(1)
    model.build(32, widths=(8, 16), stem=4).save(tmp_path / "m.keras")
    result = runner.invoke(args=["probe-blends", str(dataset), str(tmp_path / "m.keras"), str(tmp_path / "m.keras")])
    assert result.exit_code == 0, result.output
    assert result.output.count("(3 real val faces, as cut):") == 2
    for change in augmentation.ONE_CHANGE_BLENDS:
        assert result.output.count(f"  {change}: ROC AUC ") == 2

    report = training.probe_blends(dataset, [tmp_path / "m.keras"])
    assert list(report["models"][0]["blends"]) == list(augmentation.ONE_CHANGE_BLENDS)
    assert training.probe_blends(dataset, [tmp_path / "m.keras"]) == report  # the blends are drawn from the seed

    # A known answer: a network that says P = sigmoid(1) whatever it sees ties every blend with every
    # real face (ROC AUC one half) and calls every blend DeepFake.
    network = keras.models.load_model(tmp_path / "m.keras", compile=False)
    kernel, _ = network.layers[-1].get_weights()
    network.layers[-1].set_weights([np.zeros_like(kernel), np.ones(1, dtype=np.float32)])
    network.save(tmp_path / "constant.keras")
    both = training.probe_blends(dataset, [tmp_path / "m.keras", tmp_path / "constant.keras"])
    assert both["models"][0] == report["models"][0]  # one set of blends, each model scored on it
    constant = both["models"][1]
    assert constant["blends"] == {
        change: {"roc_auc": 0.5, "called_fake": 1.0} for change in augmentation.ONE_CHANGE_BLENDS
    }


def test_probe_blends_damages_every_real_crop_and_every_blend_alike(runner, tmp_path, monkeypatch):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    keras.utils.set_random_seed(1)
    model.build(32, widths=(8, 16), stem=4).save(tmp_path / "m.keras")
    as_cut = training.probe_blends(dataset, [tmp_path / "m.keras"])
    damaged = []
    low_quality = augmentation.low_quality

    def spy(image):
        damaged.append(image.shape)
        return low_quality(image)

    monkeypatch.setitem(training.PROBE_CONDITIONS, "degraded", spy)
    degraded = training.probe_blends(dataset, [tmp_path / "m.keras"], condition="degraded")
    # The 3 real faces once as they are and once in each blend, each at the size it was cut.
    assert len(damaged) == 3 * (1 + len(augmentation.ONE_CHANGE_BLENDS))
    assert all(len(shape) == 3 and shape[0] > 32 for shape in damaged)
    assert degraded["condition"] == "degraded" and as_cut["condition"] == "as cut"
    assert degraded["models"] != as_cut["models"]

    result = runner.invoke(args=["probe-blends", str(dataset), str(tmp_path / "m.keras"), "--condition", "re-encoded"])
    assert result.exit_code == 0, result.output
    assert "(3 real val faces, re-encoded):" in result.output
    refused = runner.invoke(args=["probe-blends", str(dataset), str(tmp_path / "m.keras"), "--condition", "blurry"])
    assert refused.exit_code == 2 and "'blurry' is not one of" in refused.output
    with pytest.raises(ValueError, match="unknown condition 'blurry'"):
        training.probe_blends(dataset, [tmp_path / "m.keras"], condition="blurry")


def test_the_val_sets_hold_the_val_crops_re_encoded_reported_not_scored(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "val")
    sets = training.validation_sets(faces, 32, seed=1)
    as_cut = [faces.crop(i, training.REAL, None, None, False) for i in range(len(faces))]
    crops, labels = sets.re_encoded
    assert np.array_equal(crops, np.stack([model.resize(augmentation.low_quality_video(c), 32) for c in as_cut]))
    assert np.array_equal(labels, faces.labels) and not np.array_equal(crops, sets.dfdc[0])

    rng = np.random.default_rng(2)
    scores = {name: rng.uniform(0, 1, len(getattr(sets, name)[1])) for name in training.VAL_SETS}
    scores["re_encoded"] = np.where(labels == 1, 0.9, np.tile([0.7, 0.2], len(labels))[: len(labels)])
    figures = training.val_figures(sets, scores)
    reals = scores["re_encoded"][labels == 0]
    assert figures["val_re_encoded_false_alarms"] == pytest.approx(np.mean(reals >= 0.5), abs=1e-4)
    assert 0 < figures["val_re_encoded_false_alarms"] < 1 and figures["val_auc_re_encoded"] == 1.0
    scores["re_encoded"] = 1 - scores["re_encoded"]
    changed = training.val_figures(sets, scores)
    assert changed["val_auc_re_encoded"] == 0.0 and changed["val_score"] == figures["val_score"]  # not scored


def test_the_paired_bootstrap_resamples_whole_groups():
    """Faces of one group are alike, so they are drawn together: with a single group every resample
    is that group and the interval has no width."""
    sets, faces = val_sets_of(groups=1)
    rng = np.random.default_rng(3)
    gain = training.val_score_difference(sets, faces, scores_of(sets, rng, 1.0), scores_of(sets, rng, 0.0))
    assert gain["interval"][0] == gain["interval"][1] == gain["val_score"]


def test_average_models_weighs_each_model_as_told(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    paths = small_models(tmp_path, seeds=(4, 5))
    args = ["average-models", str(dataset), *map(str, paths), "--out", str(tmp_path / "avg")]
    result = runner.invoke(args=[*args, "--weight", "3", "--weight", "1"])
    assert result.exit_code == 0, result.output
    assert f"{paths[0]} (weight 3): val_auc_dfdc" in result.output
    assert [row["weight"] for row in json.loads((tmp_path / "avg" / "metrics.json").read_text())["averaged"]] == [3, 1]
    first, second = (keras.models.load_model(path, compile=False).get_weights() for path in paths)
    averaged = keras.models.load_model(tmp_path / "avg" / "deepfake_crop_cnn.keras", compile=False).get_weights()
    assert not np.allclose(first[0], second[0])
    for got, a, b in zip(averaged[:-2], first[:-2], second[:-2], strict=True):
        assert np.allclose(got, 0.75 * a + 0.25 * b, atol=1e-6)

    for weights, message in (
        (["1"], "one positive weight per model (2 models, 1 weights)"),
        (["1", "0"], "0.0 is not in the range x>0"),
    ):
        refused = runner.invoke(args=[*args[:-1], str(tmp_path / "refused"), *(f"--weight={w}" for w in weights)])
        assert refused.exit_code != 0 and message in refused.output
        assert not (tmp_path / "refused").exists()


def test_average_models_takes_the_first_models_input_size(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    keras.utils.set_random_seed(3)
    model.build(40, widths=(8, 16), stem=4).save(tmp_path / "at40.keras")
    model.build(32, widths=(8, 16), stem=4).save(tmp_path / "at32.keras")
    args = ["average-models", str(dataset), str(tmp_path / "at40.keras"), str(tmp_path / "at32.keras")]
    result = runner.invoke(args=[*args, "--out", str(tmp_path / "avg")])
    assert result.exit_code == 0, result.output
    averaged = keras.models.load_model(tmp_path / "avg" / "deepfake_crop_cnn.keras", compile=False)
    assert averaged.input_shape == (None, 40, 40, 3)
    inputs = [keras.models.load_model(tmp_path / f"at{n}.keras", compile=False).get_weights() for n in (40, 32)]
    assert np.allclose(averaged.get_weights()[0], (inputs[0][0] + inputs[1][0]) / 2, atol=1e-6)


def test_average_models_refuses_models_of_different_networks(runner, tmp_path):
    dataset = tiny_dataset(tmp_path / "tiny")
    model.build(32, widths=(8, 16), stem=4).save(tmp_path / "a.keras")
    model.build(32, widths=(8,), stem=4).save(tmp_path / "b.keras")
    for models, message in (
        (["a.keras", "b.keras"], "models of the same network"),
        (["a.keras"], "two or more models (1 given)"),
    ):
        args = ["average-models", str(dataset), *(str(tmp_path / m) for m in models), "--out", str(tmp_path / "avg")]
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert message in result.output
    assert not (tmp_path / "avg").exists()


def test_train_on_a_dataset_without_face_regions_says_to_rebuild_it(runner, tmp_path):
    dataset = tiny_dataset(tmp_path / "tiny")
    rows = read_csv(dataset / "labels.csv")
    with (dataset / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["crop", "label", "group", "split", "source", "frame"])
        writer.writeheader()
        writer.writerows({key: row[key] for key in writer.fieldnames} for row in rows)
    result = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "m"), "--epochs", "1"])
    assert result.exit_code != 0
    assert "rebuild it with build-dataset" in result.output


def test_the_training_pipeline_shows_every_real_face_also_as_a_pseudo_fake(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path / "tiny")
    faces = training.load_faces(dataset, "train")
    seen_shares, blended = spy_on_self_blends(monkeypatch)
    part_shares, low_res_shares, outline_shares, soft_shares, deform_shares, smooth_shares = (
        seen_shares[f"{name}_share"] for name in ("part", "low_res", "outline", "soft", "deform", "smooth")
    )
    config = training.TrainConfig(
        input_size=64,
        batch_size=8,
        degrade=False,
        dfdc_fake_share=0.0,
        part_share=0.3,
        swap_share=0.0,
        outline_share=0.5,
        soft_share=0.4,
        deform_share=0.6,
        smooth_share=0.7,
        extra_soft_share=0.0,  # one pseudo-fake a face, none on top
    )
    batches = training.training_batches(faces, config)
    crops, labels, weights = [], [], []
    for _ in range(3):  # 9 real faces, each as itself and as a pseudo-fake: 18 examples, 3 batches
        x, y, w = next(batches)
        crops.append(x), labels.append(y), weights.append(w)
    labels, weights = np.concatenate(labels), np.concatenate(weights)
    assert np.concatenate(crops).shape == (18, 64, 64, 3)
    assert len(blended) == 9 and labels.sum() == 9  # every pseudo-fake is labelled fake
    # The fakes carry fake_weight (0.45) of the loss: 18 * 0.45 / 9 each, the reals 18 * 0.55 / 9.
    assert np.allclose(weights[labels == 1], 0.9) and np.allclose(weights[labels == 0], 1.1)

    next_epoch = [next(batches)[1] for _ in range(3)]
    assert len(blended) == 18 and sum(y.sum() for y in next_epoch) == 9  # new pseudo-fakes each epoch
    assert not any(np.array_equal(a, b) for a, b in zip(blended[:9], blended[9:], strict=True))
    assert set(part_shares) == {0.3}  # some pseudo-fakes are blended over one part of the face
    assert set(low_res_shares) == {0.3}  # and some blend in a face rendered at a lower resolution
    assert set(outline_shares) == {0.5}  # and some reach out to the face's outline
    assert set(soft_shares) == {0.4}  # and some blend in a copy that is only softer
    assert set(deform_shares) == {0.6}  # and some masks are bent out of shape
    assert set(smooth_shares) == {0.7}  # and some of the softer copies are smoothed with their edges kept

    for seen in seen_shares.values():
        seen.clear()
    sets = training.validation_sets(faces, 64, seed=1)
    # The scored val pseudo-fakes stay whole-face and as drawn before (one yardstick); the part-only, the
    # low-resolution, the outline, the softer, the bent-mask, the smoothed and the softer part-only ones are
    # sets of their own.
    assert part_shares == [0.0] * 9 + [1.0] * 9 + [0.0] * 45 + [1.0] * 9
    assert low_res_shares == [0.0] * 18 + [1.0] * 9 + [0.0] * 45
    assert outline_shares == [0.0] * 27 + [1.0] * 9 + [0.0] * 36
    assert soft_shares == [0.0] * 36 + [1.0] * 9 + [0.0] * 9 + [1.0] * 18
    assert deform_shares == [0.0] * 45 + [1.0] * 9 + [0.0] * 18
    assert smooth_shares == [0.0] * 54 + [1.0] * 9 + [0.5] * 9
    sets_of_pairs = (
        sets.pseudo,
        sets.parts,
        sets.low_res,
        sets.outline,
        sets.soft,
        sets.deformed,
        sets.smoothed,
        sets.soft_parts,
    )
    assert all(len(crops) == 18 for crops, _ in sets_of_pairs)
    assert all(labels.tolist() == [0.0] * 9 + [1.0] * 9 for _, labels in sets_of_pairs[1:])

    low_res_shares.clear()
    batches = training.training_batches(faces, dataclasses.replace(config, low_res_share=0.0))
    next(batches)
    assert set(low_res_shares) == {0.0}


class CountedDraws:
    """An epoch plan's generator that counts its draws."""

    def __init__(self, seed):
        self.rng, self.draws = np.random.default_rng(seed), 0

    def random(self):
        self.draws += 1
        return self.rng.random()

    def permutation(self, n):
        return self.rng.permutation(n)


def spy_on_self_blends(monkeypatch) -> tuple[dict[str, list[float]], list[np.ndarray]]:
    """Make `augmentation.self_blend` record, for every self-blend made, each of its ``*_share``
    arguments by name (defaults filled in) and the pseudo-fake it made; returns both records."""
    real_self_blend = augmentation.self_blend
    signature = inspect.signature(real_self_blend)
    shares = {name: [] for name in signature.parameters if name.endswith("_share")}
    blended = []

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, seen in shares.items():
            seen.append(bound.arguments[name])
        fake, mask = real_self_blend(*args, **kwargs)
        blended.append(fake)
        return fake, mask

    monkeypatch.setattr(augmentation, "self_blend", spy)
    return shares, blended


def blend_shares_of_one_epoch(faces, config, monkeypatch, share: str) -> list[float]:
    """The ``share`` argument (as "soft_share") of every self-blend made over one epoch of the tiny
    dataset's 9 real faces, each shown three times (itself, its pseudo-fake and one more on top), sorted."""
    with monkeypatch.context() as patch:
        shares, _ = spy_on_self_blends(patch)
        batches = training.training_batches(faces, config)
        labels = np.concatenate([next(batches)[1] for _ in range(4)])  # batches of 8: one epoch of 27
    reals = int((faces.labels == 0).sum())
    assert len(labels) == 3 * reals and labels.sum() == 2 * reals  # two of each face's three examples are fakes
    return sorted(shares[share])


def assert_shown_on_top(faces: training.Faces, config: training.TrainConfig, field: str, kind: int) -> None:
    """With ``field`` (the share of the real faces shown once more as ``kind``) at 0, the plan draws
    nothing for it, so older plans stay as drawn; at 0.25 every real face is still shown as itself and
    as a pseudo-fake, and a quarter of them on average once more as ``kind``, each at most once."""
    reals = int((faces.labels == 0).sum())
    fakes = len(faces) - reals
    for share, draws in ((0.0, fakes), (0.25, fakes + reals)):
        counted = CountedDraws(5)
        training.epoch_plan(faces, dataclasses.replace(config, **{field: share}), counted)
        assert counted.draws == draws
    quarter = dataclasses.replace(config, **{field: 0.25})
    shown = [training.epoch_plan(faces, quarter, np.random.default_rng(seed)) for seed in range(400)]
    for plan in shown:
        kinds = [shown_kind for _, shown_kind in plan]
        assert kinds.count(training.REAL) == reals and kinds.count(training.PSEUDO_FAKE) == reals
        on_top = [index for index, shown_kind in plan if shown_kind == kind]
        assert len(set(on_top)) == len(on_top) and all(faces.labels[i] == 0 for i in on_top)
    assert np.mean([sum(shown_kind == kind for _, shown_kind in plan) for plan in shown]) == pytest.approx(
        reals / 4, rel=0.1
    )


def test_extra_softer_pseudo_fakes_are_shown_on_top_of_the_others(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    reals = int((faces.labels == 0).sum())
    config = training.TrainConfig(input_size=64, batch_size=8, degrade=False, dfdc_fake_share=0.0, swap_share=0.0)
    assert_shown_on_top(faces, config, "extra_soft_share", training.SOFT_FAKE)

    every_face_on_top = dataclasses.replace(config, extra_soft_share=1.0, soft_share=0.0)
    # each face's pseudo-fake as the recipe draws it (no softer copy at soft_share 0), and its softer one
    assert (
        blend_shares_of_one_epoch(faces, every_face_on_top, monkeypatch, "soft_share") == [0.0] * reals + [1.0] * reals
    )
    # and the softer ones on top take the recipe's share of smoothed copies, as every softer copy does:
    # by default half of them (the shipped model's last stage)
    assert blend_shares_of_one_epoch(faces, every_face_on_top, monkeypatch, "smooth_share") == [0.5] * (2 * reals)
    assert training.TrainConfig().smooth_share == 0.5
    smoothed = dataclasses.replace(every_face_on_top, smooth_share=0.8)
    assert blend_shares_of_one_epoch(faces, smoothed, monkeypatch, "smooth_share") == [0.8] * (2 * reals)
    # the softer ones on top are blended over one part of the face at their own share, the others at theirs
    assert training.TrainConfig().soft_part_share == training.TrainConfig().part_share == 0.3
    parts = dataclasses.replace(every_face_on_top, part_share=0.2, soft_part_share=0.7)
    assert blend_shares_of_one_epoch(faces, parts, monkeypatch, "part_share") == [0.2] * reals + [0.7] * reals


def test_extra_part_only_pseudo_fakes_are_shown_on_top_of_the_others(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    reals = int((faces.labels == 0).sum())
    config = training.TrainConfig(
        input_size=64, batch_size=8, degrade=False, dfdc_fake_share=0.0, swap_share=0.0, extra_soft_share=0.0
    )
    fakes = len(faces) - reals
    for share, draws in ((0.0, fakes), (0.25, fakes + reals)):  # no draw at 0: older plans stay as drawn
        counted = CountedDraws(5)
        training.epoch_plan(faces, dataclasses.replace(config, extra_part_share=share), counted)
        assert counted.draws == draws

    both = dataclasses.replace(config, extra_part_share=0.25, extra_soft_share=0.5)
    shown = [training.epoch_plan(faces, both, np.random.default_rng(seed)) for seed in range(400)]
    for plan in shown:  # every real face as itself and as a pseudo-fake still, the part-only ones on top
        kinds = [kind for _, kind in plan]
        assert kinds.count(training.REAL) == reals and kinds.count(training.PSEUDO_FAKE) == reals
        parts = [index for index, kind in plan if kind == training.PART_FAKE]
        assert len(set(parts)) == len(parts) and all(faces.labels[i] == 0 for i in parts)
    counts = {
        kind: np.mean([sum(shown_kind == kind for _, shown_kind in plan) for plan in shown])
        for kind in (training.PART_FAKE, training.SOFT_FAKE)
    }
    assert counts[training.PART_FAKE] == pytest.approx(reals / 4, rel=0.1)
    assert counts[training.SOFT_FAKE] == pytest.approx(reals / 2, rel=0.1)  # drawn apart from the part-only ones

    every_face_on_top = dataclasses.replace(config, extra_part_share=1.0, part_share=0.0)
    # each face's pseudo-fake as the recipe draws it (never part-only at part_share 0), and its part-only one
    assert (
        blend_shares_of_one_epoch(faces, every_face_on_top, monkeypatch, "part_share") == [0.0] * reals + [1.0] * reals
    )


def test_softened_real_faces_are_shown_on_top_and_labelled_real(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    reals = int((faces.labels == 0).sum())
    config = training.TrainConfig(
        input_size=64, batch_size=8, degrade=False, dfdc_fake_share=0.0, swap_share=0.0, extra_soft_share=0.0
    )
    assert_shown_on_top(faces, config, "soft_real_share", training.SOFT_REAL)

    batches = training.training_batches(faces, dataclasses.replace(config, soft_real_share=1.0))
    labels = np.concatenate([next(batches)[1] for _ in range(4)])  # batches of 8: one epoch of 27
    assert len(labels) == 3 * reals and labels.sum() == reals  # the softened face is a real one


def test_a_softened_real_face_is_its_whole_face_region_made_softer(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    shown = dict(degrade=True, recolour=1.0, light_and_pose=1.0, codec_share=0.5)
    reals = np.flatnonzero(faces.labels == 0)
    softer = []
    for seed, index in enumerate(reals):  # shown alike (paired views), so they differ by the softening alone
        real, soft = (
            faces.crop(index, kind, None, np.random.default_rng(seed), False, view_rng=np.random.default_rng(seed))
            for kind in (training.REAL, training.SOFT_REAL)
        )
        assert real.shape == soft.shape
        softer.append(face.sharpness(soft) < face.sharpness(real))
        real, soft = (
            faces.crop(index, kind, None, np.random.default_rng(seed), view_rng=np.random.default_rng(99), **shown)
            for kind in (training.REAL, training.SOFT_REAL)
        )
        assert real.shape == soft.shape and not np.array_equal(real, soft)
    assert all(softer)

    grey = np.full_like(faces.contexts[reals[0]], 128)
    monkeypatch.setattr(augmentation, "softened_copy", lambda image, rng: grey)
    whole = faces.crop(reals[0], training.SOFT_REAL, None, np.random.default_rng(0), degrade=False)
    assert (whole == 128).all()  # the copy taken whole, no blend with the face as filmed
    xray = faces.crop_and_xray(reals[0], training.SOFT_REAL, 64, np.random.default_rng(0), degrade=False, xray_size=16)
    assert not xray[1].any()  # no blend: a real face's X-ray


def test_sharpness_matched_fakes_are_drawn_spread_over_sharpness_as_the_real_faces_are():
    # Real faces of sharpness 1 to 8 (two in each quarter); fakes half in the softest quarter.
    labels = np.array([0] * 8 + [1] * 8, dtype=np.float32)
    rows = [{"group": f"g{i}"} for i in range(16)]
    faces = training.Faces(
        contexts=[], keypoints=np.zeros((16, 5, 2)), boxes=np.zeros((16, 4)), labels=labels, rows=rows
    )
    faces.__dict__["crop_sharpness"] = np.array([*range(1, 9), 0.5, 0.5, 0.5, 0.5, 3.5, 3.5, 5.5, 8.5])
    odds = training.sharpness_matched_odds(faces)
    assert odds == pytest.approx([1.0] * 8 + [0.5] * 4 + [1.0] * 2 + [2.0] * 2)  # real share 1/4 over the fakes'

    config = training.TrainConfig(dfdc_fake_share=0.25, sharpness_matched_fakes=True)
    counted = CountedDraws(5)
    training.epoch_plan(faces, config, counted)
    assert counted.draws == 8 + 8  # one draw a fake, as without matching: the other draws stay as they were
    shown = np.zeros(16)
    for seed in range(4000):
        for index, kind in training.epoch_plan(faces, config, np.random.default_rng(seed)):
            shown[index] += kind == training.DATASET_FAKE
    per_band = [shown[8:12].sum(), shown[12:14].sum(), shown[14], shown[15]]
    assert per_band == pytest.approx([4000 * 0.5] * 4, rel=0.1)  # as many fakes shown from each band
    assert shown[8:].sum() == pytest.approx(4000 * 8 * 0.25 * odds[8:].mean(), rel=0.05)


def test_the_tiny_datasets_blurred_fakes_are_its_softest_faces_and_shown_less_when_matched(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    fake = faces.labels == 1
    assert faces.crop_sharpness[fake].max() < faces.crop_sharpness[~fake].min()
    assert training.sharpness_matched_odds(faces)[fake] == pytest.approx(0.25)  # all in the softest quarter


def test_the_training_pipeline_recolours_real_and_fake_faces_alike(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    recoloured = []

    def spy(image, rng):
        recoloured.append(image.shape)
        return real_recolour(image, rng)

    real_recolour = augmentation.recolour
    monkeypatch.setattr(augmentation, "recolour", spy)
    for kind in (training.REAL, training.PSEUDO_FAKE, training.DATASET_FAKE):
        rng = np.random.default_rng(kind)
        plain = faces.crop(0, kind, 32, np.random.default_rng(kind), False)
        assert not recoloured
        coloured = faces.crop(0, kind, 32, rng, False, recolour=1.0)
        assert len(recoloured) == 1 and not np.array_equal(plain, coloured)
        recoloured.clear()

    def recoloured_share(config: training.TrainConfig) -> float:
        recoloured.clear()
        batches = training.training_batches(faces, config)
        examples = sum(len(next(batches)[1]) for _ in range(4))
        return len(recoloured) / examples

    config = training.TrainConfig(input_size=32, batch_size=9, degrade=False, dfdc_fake_share=1.0)
    assert 0.5 < recoloured_share(config) < 1.0  # about RECOLOUR_SHARE of every kind of example
    assert recoloured_share(dataclasses.replace(config, recolour=False)) == 0.0

    sets = training.validation_sets(faces, 32, seed=1)  # every val crop once more, recoloured
    assert len(sets.recoloured[0]) == len(sets.dfdc[0]) and np.array_equal(sets.recoloured[1], sets.dfdc[1])
    assert not np.array_equal(sets.recoloured[0], sets.dfdc[0])


def test_the_training_pipeline_tilts_reframes_and_lights_real_and_fake_faces_alike(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    calls = {"reframed": 0, "relight": 0}

    def spy(name, real):
        def counted(*args):
            calls[name] += 1
            return real(*args)

        return counted

    for name in calls:
        monkeypatch.setattr(augmentation, name, spy(name, getattr(augmentation, name)))
    for kind in (training.REAL, training.PSEUDO_FAKE, training.DATASET_FAKE):
        plain = faces.crop(0, kind, 32, np.random.default_rng(kind), False)
        assert calls == {"reframed": 0, "relight": 0}
        posed = faces.crop(0, kind, 32, np.random.default_rng(kind), False, light_and_pose=1.0)
        assert calls == {"reframed": 1, "relight": 1} and not np.array_equal(plain, posed)
        calls.update(reframed=0, relight=0)

    def shares(config: training.TrainConfig) -> list[float]:
        calls.update(reframed=0, relight=0)
        batches = training.training_batches(faces, config)
        examples = sum(len(next(batches)[1]) for _ in range(6))
        return [calls["reframed"] / examples, calls["relight"] / examples]

    config = training.TrainConfig(input_size=32, batch_size=9, degrade=False, recolour=False, dfdc_fake_share=1.0)
    assert all(0.3 < share < 0.7 for share in shares(config))  # about LIGHT_AND_POSE_SHARE each
    assert shares(dataclasses.replace(config, light_and_pose=False)) == [0.0, 0.0]

    sets = training.validation_sets(faces, 32, seed=1)  # every val crop once more, tilted and side-lit
    assert len(sets.light_and_pose[0]) == len(sets.dfdc[0])
    assert np.array_equal(sets.light_and_pose[1], sets.dfdc[1])
    assert not np.array_equal(sets.light_and_pose[0], sets.dfdc[0])


def test_the_training_pipeline_blends_other_real_faces_into_some_pseudo_fakes(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    pairs, outline_shares, deform_shares = [], set(), set()

    def spy(image, keypoints, donor, donor_keypoints, rng, part_share=0.0, outline_share=0.0, deform_share=0.0):
        pairs.append((image, donor))
        outline_shares.add(outline_share)
        deform_shares.add(deform_share)
        return real_blend(image, keypoints, donor, donor_keypoints, rng, part_share, outline_share, deform_share)

    real_blend = augmentation.blend_other_face
    monkeypatch.setattr(augmentation, "blend_other_face", spy)

    def swapped_share(config: training.TrainConfig) -> float:
        pairs.clear()
        batches = training.training_batches(faces, config)
        fakes = sum(next(batches)[1].sum() for _ in range(6))  # 3 epochs of 9 real faces and 9 pseudo-fakes
        return len(pairs) / fakes

    config = training.TrainConfig(
        input_size=32,
        batch_size=9,
        degrade=False,
        recolour=False,
        light_and_pose=False,
        dfdc_fake_share=0.0,
        swap_share=0.3,
        outline_share=0.5,
        deform_share=0.6,
    )
    assert 0.1 < swapped_share(config) < 0.55  # about swap_share (0.3) of the pseudo-fakes
    assert outline_shares == {0.5}  # their masks reach the outline as often as the self-blends' do
    assert deform_shares == {0.6}  # and are bent out of shape as often
    assert swapped_share(dataclasses.replace(config, swap_share=0.0)) == 0.0
    reals = [faces.contexts[i] for i in np.flatnonzero(faces.labels == 0)]
    for image, donor in pairs:  # a real face of the split, never the face itself
        assert donor is not image and any(donor is real for real in reals)

    pairs.clear()
    sets = training.validation_sets(faces, 32, seed=1)  # a val set of its own, unscored
    assert len(pairs) == 9 and sets.swapped[1].tolist() == [0.0] * 9 + [1.0] * 9


def unseen_blend(monkeypatch) -> None:
    """Pseudo-fakes whose blend changes nothing but still draws its random numbers, as a real blend does."""

    def unchanged(image, *args, **named):
        rng = next(arg for arg in args if isinstance(arg, np.random.Generator))
        rng.random(7)
        return image, np.zeros(image.shape[:2], dtype=np.float32)

    monkeypatch.setattr(augmentation, "self_blend", unchanged)
    monkeypatch.setattr(augmentation, "blend_other_face", unchanged)


def test_with_paired_views_a_real_face_and_its_pseudo_fake_differ_by_the_blend_alone(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    shown = dict(degrade=True, recolour=1.0, light_and_pose=1.0, codec_share=0.5)
    for seed in range(6):  # every view step drawn (tilt and framing, jitter, light, colours, damage, flip)
        real = faces.crop(
            0, training.REAL, None, np.random.default_rng(seed), view_rng=np.random.default_rng(99), **shown
        )
        fake = faces.crop(
            0, training.PSEUDO_FAKE, None, np.random.default_rng(50 + seed), view_rng=np.random.default_rng(99), **shown
        )
        # A real blend changes the face; the views are the same, so the crops have the same size.
        assert real.shape == fake.shape and not np.array_equal(real, fake)
    unseen_blend(monkeypatch)
    for seed in range(6):
        real = faces.crop(
            0, training.REAL, None, np.random.default_rng(seed), view_rng=np.random.default_rng(seed), **shown
        )
        fake = faces.crop(
            0,
            training.PSEUDO_FAKE,
            None,
            np.random.default_rng(50 + seed),
            view_rng=np.random.default_rng(seed),
            **shown,
        )
        assert np.array_equal(real, fake)  # a blend that changes nothing leaves nothing to tell them apart
        apart = faces.crop(0, training.PSEUDO_FAKE, None, np.random.default_rng(seed), **shown)
        assert not np.array_equal(real, apart)  # one generator for both: the blend's draws move the views'


def pseudo_fake_twins(faces: training.Faces, config: training.TrainConfig) -> int:
    """Of one epoch's 9 real faces (of the tiny dataset, without its fakes), how many have a pseudo-fake
    shown exactly as the face is (one pseudo-fake a face: none on top)."""
    batches = training.training_batches(faces, dataclasses.replace(config, extra_soft_share=0.0, extra_part_share=0.0))
    crops, labels = zip(*((x, y) for x, y, _ in (next(batches) for _ in range(3))), strict=True)
    crops, labels = np.concatenate(crops), np.concatenate(labels)
    assert len(labels) == 18 and labels.sum() == 9
    fakes = crops[labels == 1]
    return sum(any(np.array_equal(real, fake) for fake in fakes) for real in crops[labels == 0])


def test_erasing_is_drawn_last_so_the_crop_is_otherwise_as_without_it(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    shown = dict(degrade=True, recolour=1.0, light_and_pose=1.0, swap_share=0.5, xray_size=16)
    for seed in range(8):
        for kind in (training.REAL, training.PSEUDO_FAKE):
            plain, plain_xray = faces.crop_and_xray(0, kind, 64, np.random.default_rng(seed), **shown)
            erased, xray = faces.crop_and_xray(0, kind, 64, np.random.default_rng(seed), erase_share=1.0, **shown)
            changed = (plain != erased).any(axis=2)
            ys, xs = np.nonzero(changed)
            assert len(ys)  # a patch was painted over
            box = np.zeros_like(changed)
            box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
            assert 0.04 <= box.mean() <= 0.2 and changed.mean() > 0.5 * box.mean()  # one rectangle, all else alike
            flat = erased[box]
            assert (flat == flat[0]).all()  # painted in one colour
            cells = box.reshape(16, 4, 16, 4).mean(axis=(1, 3))  # the share of each X-ray cell the patch covers
            assert not xray[cells == 1].any()  # no blend left under the patch
            assert np.array_equal(xray[cells == 0], plain_xray[cells == 0])
            assert np.allclose(xray, plain_xray * (1 - cells), atol=1e-6)


def test_with_paired_views_a_real_face_and_its_pseudo_fake_are_erased_alike(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    unseen_blend(monkeypatch)
    erased_at = []
    real_erased = augmentation.erased

    def spy(image, rng):
        out, box = real_erased(image, rng)
        erased_at.append(box)
        return out, box

    monkeypatch.setattr(augmentation, "erased", spy)
    config = training.TrainConfig(input_size=32, batch_size=6, dfdc_fake_share=0.0, swap_share=0.5, erase_share=1.0)
    assert pseudo_fake_twins(faces, config) == 9
    assert len(erased_at) == 18  # every crop, real and fake
    assert len(set(erased_at)) > 1  # each pair its own patch

    erased_at.clear()
    next(training.training_batches(faces, dataclasses.replace(config, erase_share=0.0)))
    assert erased_at == []  # by default nothing is painted over
    assert training.TrainConfig().erase_share == 0.0


def test_the_training_pipeline_shows_pairs_alike_only_with_paired_views(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    unseen_blend(monkeypatch)
    config = training.TrainConfig(
        input_size=32, batch_size=6, dfdc_fake_share=0.0, swap_share=0.5, codec_share=0.3, extra_soft_share=0.0
    )

    assert pseudo_fake_twins(faces, config) == 9  # by default
    # apart: each example drawn for itself alone
    assert pseudo_fake_twins(faces, dataclasses.replace(config, paired_views=False)) == 0

    seen = []
    real_crop_and_xray = training.Faces.crop_and_xray

    def spy(self, index, kind, *args, **kwargs):
        view_rng = args[-1]
        seen.append((index, kind, None if view_rng is None else float(copy.deepcopy(view_rng).random())))
        return real_crop_and_xray(self, index, kind, *args, **kwargs)

    monkeypatch.setattr(training.Faces, "crop_and_xray", spy)
    batches = training.training_batches(faces, dataclasses.replace(config, dfdc_fake_share=1.0))
    for _ in range(10):  # two epochs of 9 real faces, 9 pseudo-fakes and 9 dataset fakes, 5 batches each
        next(batches)
    epochs = [seen[:27], seen[27:]]
    for epoch in epochs:
        views = {(index, kind): draw for index, kind, draw in epoch}
        reals = [index for index, kind, _ in epoch if kind == training.REAL]
        assert all(views[i, training.REAL] == views[i, training.PSEUDO_FAKE] for i in reals)
        assert len({views[i, training.REAL] for i in reals}) == 9  # each face its own views
        assert all(draw is None for _, kind, draw in epoch if kind == training.DATASET_FAKE)  # no pair
    assert {draw for *_, draw in epochs[0]}.isdisjoint(draw for *_, draw in epochs[1] if draw is not None)


def test_a_donor_face_is_the_one_laid_out_most_like_the_face(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    rng = np.random.default_rng(0)
    reals = np.flatnonzero(faces.labels == 0)
    for index in reals:  # every other real face: features spread differently
        faces.keypoints[index] = faces.keypoints[index] + rng.uniform(-15, 15, size=(5, 2))
    target, twin = reals[0], reals[3]
    faces.keypoints[twin] = faces.keypoints[target] * 1.3 + np.array([20.0, -5.0])  # the same layout, bigger, moved
    assert faces.donor_for(int(target), np.random.default_rng(1), candidates=len(reals)) == twin


def test_each_stage_of_a_chain_sees_new_examples(tmp_path):
    """Fine-tuning draws its examples from the seed and the starting model: the same start gives the
    same examples (a rerun is reproducible), another start gives others (a chain's stage does not replay
    the examples its starting model was trained on)."""
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    first, second = tmp_path / "first.keras", tmp_path / "second.keras"
    first.write_bytes(b"one model")
    second.write_bytes(b"another model")

    def examples(init: str) -> np.ndarray:
        config = training.TrainConfig(input_size=32, batch_size=18, init=init)
        return next(training.training_batches(faces, config))[0]

    assert np.array_equal(examples(str(first)), examples(str(first)))
    assert not np.array_equal(examples(str(first)), examples(str(second)))
    assert not np.array_equal(examples(""), examples(str(first)))
    assert training.stream_entropy(training.TrainConfig()) == [training.TrainConfig.seed]


def test_a_turned_face_weighs_turned_weight_times_another_of_its_class():
    labels = np.array([1, 1, 0, 0, 0], dtype=np.float32)
    turned = np.array([True, False, False, True, False])
    config = training.TrainConfig(turned_weight=3.0, fake_weight=0.45)
    weights = training.example_weights(labels, turned, config)
    assert weights == pytest.approx([5 * 0.45 * 3 / 4, 5 * 0.45 / 4, 5 * 0.55 / 5, 5 * 0.55 * 3 / 5, 5 * 0.55 / 5])
    assert weights[labels == 1].sum() == pytest.approx(0.45 * 5)  # the fakes' share of the loss is kept
    alike = training.example_weights(labels, turned, training.TrainConfig(fake_weight=0.45))
    assert alike == pytest.approx([5 * 0.45 / 2] * 2 + [5 * 0.55 / 3] * 3)  # the default: the class alone


def test_the_training_batches_weigh_the_turned_faces_examples_as_told(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    turned = np.arange(len(faces)) % 3 == 0
    monkeypatch.setattr(training.Faces, "turned", lambda self: turned)
    config = training.TrainConfig(input_size=32, batch_size=256, turned_weight=3.0, light_and_pose=False)
    _, labels, weights = next(training.training_batches(faces, config))
    plan = training.epoch_plan(
        faces, config, np.random.default_rng(np.random.SeedSequence(training.stream_entropy(config)).spawn(1)[0])
    )
    assert np.array_equal(labels, [kind != training.REAL for _, kind in plan])
    assert weights == pytest.approx(training.example_weights(labels, turned[[index for index, _ in plan]], config))
    assert len(set(np.round(weights[labels == 0], 5))) == 2  # turned real faces and the others


def test_each_epoch_draws_its_examples_from_its_own_child_of_the_training_stream(tmp_path, monkeypatch):
    """The n-th epoch's plan comes from the n-th child of the stream's seed sequence, as it did when the
    children were spawned all at once: stages trained before see the same examples when retrained."""
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    turned = np.arange(len(faces)) % 2 == 0  # weights tell the examples' order apart
    monkeypatch.setattr(training.Faces, "turned", lambda self: turned)
    config = training.TrainConfig(input_size=32, batch_size=256, turned_weight=3.0, degrade=False)
    batches = training.training_batches(faces, config)
    children = np.random.SeedSequence(training.stream_entropy(config)).spawn(3)
    for child in children:
        _, labels, weights = next(batches)  # one batch: the whole epoch
        plan = training.epoch_plan(faces, config, np.random.default_rng(child))
        assert np.array_equal(labels, [kind not in training.REAL_KINDS for _, kind in plan])
        assert weights == pytest.approx(training.example_weights(labels, turned[[index for index, _ in plan]], config))


def test_epoch_plan_keeps_a_group_together_and_weighs_the_datasets_fakes():
    rows = [{"group": g} for g in ["a", "a", "b", "b", "c", "a"]]
    labels = np.array([0, 1, 0, 1, 0, 1], dtype=np.float32)
    faces = training.Faces(contexts=[], keypoints=np.zeros((6, 5, 2)), boxes=np.zeros((6, 4)), labels=labels, rows=rows)
    config = training.TrainConfig(dfdc_fake_share=0.5)
    kept_fakes = []
    for seed in range(2000):
        plan = training.epoch_plan(faces, config, np.random.default_rng(seed))
        kinds = [kind for _, kind in plan]
        assert kinds.count(training.REAL) == 3 and kinds.count(training.PSEUDO_FAKE) == 3
        kept_fakes.append(kinds.count(training.DATASET_FAKE))
        sequence = [rows[index]["group"] for index, _ in plan]
        runs = [g for position, g in enumerate(sequence) if position == 0 or sequence[position - 1] != g]
        assert sorted(runs) == sorted(set(sequence))  # each group in one unbroken run
    assert np.mean(kept_fakes) == pytest.approx(1.5, abs=0.1)  # half of the 3 dataset fakes

    without = training.epoch_plan(faces, training.TrainConfig(pseudo_fakes=False), np.random.default_rng(0))
    assert sorted(without) == [(i, training.REAL if labels[i] == 0 else training.DATASET_FAKE) for i in range(6)]


class BrightnessClassifier:
    """A classifier whose answer is known by hand: P(DeepFake) is the crop's mean red value / 255."""

    name = "brightness"

    def classify(self, images):
        return [
            Prediction({DEEPFAKE: float(i[..., 0].mean()) / 255, REAL: 1 - float(i[..., 0].mean()) / 255})
            for i in images
        ]


# (label, red value, group, source) of the crops of `known_dataset`: with BrightnessClassifier P(DeepFake) = red / 255
KNOWN_CASES = [
    ("fake", 230, "g1", "v1"),
    ("fake", 200, "g1", "v1"),
    ("fake", 60, "g2", "v2"),
    ("real", 30, "g1", "v3"),
    ("real", 150, "g2", "v4"),
    ("real", 20, "g2", "v4"),
]


def known_dataset(
    folder: Path, texture: float = 0.0, side: int = 40, turns: list[float] | None = None
) -> tuple[Path, list[np.ndarray]]:
    """A build-dataset folder of KNOWN_CASES' ``side`` x ``side`` crops in its test split, each all red
    at its red value, with ``texture`` the spread of a fixed random pattern about it; and the crops.
    With ``turns``, each crop's keypoints show a head turned that far (`face.head_turn`)."""
    (folder / "crops").mkdir(parents=True)
    pattern = np.random.default_rng(0).normal(0.0, texture, size=(side, side))
    images = []
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(training.LABEL_COLUMNS)
        for index, (label, red, group, source) in enumerate(KNOWN_CASES):
            image = np.zeros((side, side, 3), dtype=np.uint8)
            image[..., 0] = np.clip(np.rint(red + pattern), 0, 255)
            cv2.imwrite(str(folder / "crops" / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            row = (f"crops/{index}.png", label, group, "test", source, 0)
            if turns is not None:  # eyes 20 px apart, the nose 20 x turn off their midpoint
                points = ((10, 10), (30, 10), (20 + 20 * turns[index], 20), (12, 30), (28, 30))
                row += ("", " ".join(f"{x:.1f} {y:.1f}" for x, y in points), "")
            writer.writerow(row)
            images.append(image)
    return folder, images


def test_evaluate_on_a_case_known_by_hand(runner, app, tmp_path):
    folder, _ = known_dataset(tmp_path / "known")
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    assert result.exit_code == 0, result.output
    clean, degraded, recoloured, side_lit, re_encoded = json.loads(result.output[result.output.index("{") :])["sets"]
    report = clean
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
    assert report["condition"] == "as cut" and report["quality_flagged"] == 1.0  # 40 px crops are small faces
    # One real crop of three called fake; calibration: bins 0.0-0.1 (20/255: real), 0.1-0.2 (30/255: real)...
    assert crops["false_alarms"] == pytest.approx(1 / 3, abs=1e-4)
    low, high = crops["roc_auc_ci95"]
    assert low <= crops["roc_auc"] <= high <= 1.0
    assert "known test" in result.output and "known test, degraded" in result.output

    assert degraded["condition"] == "degraded" and degraded["name"] == "known test, degraded"
    assert degraded["crop_level"]["confusion"] == crops["confusion"]  # flat colours survive the degradation
    assert re_encoded["condition"] == "re-encoded" and re_encoded["name"] == "known test, re-encoded"
    assert re_encoded["crop_level"]["confusion"] == crops["confusion"]  # and the codec (H.264 keeps flat red)

    def by_hand(change, prefix: str) -> list[float]:
        """P(DeepFake) of each case's crop after ``change``, drawn from sha256 of ``prefix`` + its name."""
        scores = []
        for index, (_, red, _, _) in enumerate(KNOWN_CASES):
            image = np.zeros((40, 40, 3), dtype=np.uint8)
            image[..., 0] = red
            seed = int.from_bytes(hashlib.sha256(f"{prefix}crops/{index}.png".encode()).digest()[:8], "big")
            scores.append(change(image, np.random.default_rng(seed))[..., 0].mean() / 255)
        return scores

    # Recoloured: each crop in the colours drawn from its name, the same in every run.
    assert recoloured["condition"] == "recoloured" and recoloured["name"] == "known test, recoloured"
    expected = by_hand(augmentation.recolour, "")
    labels = [label == "fake" for label, *_ in KNOWN_CASES]
    assert recoloured["crop_level"]["roc_auc"] == pytest.approx(
        metrics.roc_auc(np.array(labels), np.array(expected)), abs=1e-4
    )
    assert expected != [red / 255 for _, red, _, _ in KNOWN_CASES]

    # Side-lit: each crop lit from the side its name draws.
    assert side_lit["condition"] == "side-lit" and side_lit["name"] == "known test, side-lit"
    lit = by_hand(augmentation.relight, "side-lit ")
    assert side_lit["crop_level"]["roc_auc"] == pytest.approx(
        metrics.roc_auc(np.array(labels), np.array(lit)), abs=1e-4
    )
    ece = side_lit["crop_level"]["calibration"]["ece"]  # the exact scores, not only their order
    assert ece == pytest.approx(metrics.calibration(np.array(labels), np.array(lit))["ece"], abs=1e-4)
    assert ece != pytest.approx(crops["calibration"]["ece"], abs=1e-3)


def test_evaluate_reads_the_crops_apart_by_head_turn(runner, app, tmp_path):
    # KNOWN_CASES' turns: fake 230 at 0.0, fake 200 at 0.35, fake 60 at 0.15, real 30 at 0.05, real 150
    # at 0.4, real 20 at 0.25; called DeepFake: 230, 200 and 150.
    folder, _ = known_dataset(tmp_path / "turned", turns=[0.0, 0.35, 0.15, 0.05, 0.4, 0.25])
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    assert result.exit_code == 0, result.output
    as_cut = json.loads(result.output[result.output.index("{") :])["sets"][0]
    facing, slightly, turned, far = as_cut["per_turn"]
    assert (facing["turn"], facing["count"], facing["roc_auc"]) == ("0.0 to 0.1", 2, 1.0)
    assert (facing["false_alarms"], facing["fakes_found"]) == (0.0, 1.0)
    assert (slightly["count"], slightly["roc_auc"], slightly["false_alarms"], slightly["fakes_found"]) == (
        1,
        None,  # one class only
        None,
        0.0,  # the fake at 60 is missed
    )
    assert (turned["count"], turned["false_alarms"], turned["fakes_found"]) == (1, 0.0, None)
    assert (far["turn"], far["count"], far["roc_auc"], far["false_alarms"], far["fakes_found"]) == (
        "0.3 and more",
        2,
        1.0,
        1.0,  # the real face at 150 is called DeepFake
        1.0,
    )
    assert "by head turn" in result.output and "0.3 and more" in result.output
    assert sum(band["count"] for band in as_cut["per_sharpness"]) == 6 and "by sharpness" in result.output


def test_the_crops_are_read_apart_in_bands_of_sharpness_cut_at_the_real_crops_quarters():
    # Real crops of sharpness 1 to 8, the two softest called DeepFake; fakes at 0.5, 3.5, 9 and 9.
    sharpness = [0.5, 3.5, 9.0, 9.0, *range(1, 9)]
    labels = [True] * 4 + [False] * 8
    scores = [0.95, 0.3, 0.9, 0.9, 0.8, 0.7, 0.2, 0.1, 0.2, 0.1, 0.2, 0.1]
    called_fake = [score > 0.5 for score in scores]
    soft, low, high, sharp = evaluation.per_sharpness(labels, scores, called_fake, sharpness)
    assert [band["sharpness"] for band in (soft, low, high, sharp)] == [[0.0, 2.8], [2.8, 4.5], [4.5, 6.2], [6.2, None]]
    assert [band["count"] for band in (soft, low, high, sharp)] == [3, 3, 2, 4]  # two real crops in each
    assert [band["false_alarms"] for band in (soft, low, high, sharp)] == [1.0, 0.0, 0.0, 0.0]
    assert (soft["fakes_found"], low["fakes_found"], high["fakes_found"], sharp["fakes_found"]) == (1.0, 0.0, None, 1.0)
    assert [band["roc_auc"] for band in (soft, low, high, sharp)] == [1.0, 1.0, None, 1.0]  # None: real crops only
    assert evaluation.per_sharpness([True, True], [0.9, 0.8], [True, True], [1.0, 2.0]) is None  # no real crop

    image = face_image()[100:300, 150:330]
    assert face.sharpness(cv2.GaussianBlur(image, (0, 0), 2.0)) < face.sharpness(image) / 4


def test_a_dataset_without_keypoints_is_not_read_by_head_turn(runner, app, tmp_path):
    folder, _ = known_dataset(tmp_path / "known")
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    assert json.loads(result.output[result.output.index("{") :])["sets"][0]["per_turn"] is None
    assert "by head turn" not in result.output


class SizeRecorder(BrightnessClassifier):
    """BrightnessClassifier, keeping the size of every crop it is given."""

    def __init__(self):
        self.sizes = []

    def classify(self, images):
        self.sizes += [image.shape[:2] for image in images]
        return super().classify(images)


def test_evaluate_says_how_many_false_alarms_carry_a_quality_flag(runner, app, tmp_path):
    # Real: a large bright crop and a small bright one (both called DeepFake, only the small one
    # flagged), and a large dark one; fake: a large bright one. Textured, so none is blurry.
    folder = tmp_path / "sizes"
    (folder / "crops").mkdir(parents=True)
    texture = np.random.default_rng(0).normal(0.0, 40.0, size=(200, 200))
    cases = [("real", 200, 200), ("real", 200, face.SMALL_CROP_PX - 8), ("real", 20, 200), ("fake", 220, 200)]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(training.LABEL_COLUMNS)
        for index, (label, red, side) in enumerate(cases):
            image = np.zeros((side, side, 3), dtype=np.uint8)
            image[..., 0] = np.clip(np.rint(red + texture[:side, :side]), 0, 255)
            cv2.imwrite(str(folder / "crops" / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            writer.writerow((f"crops/{index}.png", label, f"g{index}", "test", f"v{index}", 0))
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    assert result.exit_code == 0, result.output
    as_cut = json.loads(result.output[result.output.index("{") :])["sets"][0]
    assert as_cut["crop_level"]["false_alarms"] == pytest.approx(2 / 3, abs=1e-4)
    assert as_cut["quality_flagged"] == 0.25  # the small crop alone
    assert as_cut["false_alarms_flagged"] == 0.5  # one of the two real crops called DeepFake
    assert "of the real crops called DeepFake: 50.0%" in result.output
    assert evaluation.flag_figures([False, True], [False, True], [True, False]) == {
        "quality_flagged": 0.5,
        "false_alarms_flagged": None,  # no real crop was called DeepFake
    }


def test_probe_damage_scores_every_rung_as_the_crops_damaged_by_hand(runner, app, tmp_path):
    # 240 px, so the flags differ from rung to rung: none as cut, the coded ones blurry, a quarter (60 px) a small face.
    folder, images = known_dataset(tmp_path / "known", texture=40.0, side=240)
    classifier = SizeRecorder()
    app.extensions["deepfake"].classifier = classifier
    result = runner.invoke(args=["probe-damage", str(folder), "--split", "test", "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["split"] == "test" and report["classifier"] == "brightness"
    assert [rung["damage"] for rung in report["rungs"]] == [name for name, *_ in evaluation.DAMAGE_LADDER]
    labels = np.array([label == "fake" for label, *_ in KNOWN_CASES])
    damaged_first = set()
    for rung, (name, times, codec, level) in zip(report["rungs"], evaluation.DAMAGE_LADDER, strict=True):
        damaged = [augmentation.damaged(image, times, codec, level) for image in images]
        scores = np.array([image[..., 0].mean() / 255 for image in damaged])
        assert rung["roc_auc"] == pytest.approx(metrics.roc_auc(labels, scores), abs=1e-4), name
        assert rung["false_alarms"] == pytest.approx(np.mean(scores[~labels] >= 0.5), abs=1e-4), name
        assert rung["count"] == 6 and (rung["times_smaller"], rung["codec"], rung["level"]) == (times, codec, level)
        assert rung["mean_real"] == pytest.approx(scores[~labels].mean(), abs=1e-4), name
        assert rung["mean_fake"] == pytest.approx(scores[labels].mean(), abs=1e-4), name
        flagged = [bool(face.quality_flags(image)) for image in damaged]
        assert rung["quality_flagged"] == pytest.approx(np.mean(flagged), abs=1e-4), name
        assert f"{name:<36} ROC AUC" in result.output
        damaged_first.add(damaged[0].tobytes())
    assert len(damaged_first) == len(evaluation.DAMAGE_LADDER)  # the textured crop comes out of each rung differently
    assert set(classifier.sizes) == {(240, 240), (120, 120), (80, 80), (60, 60)}  # as cut, a half, a third, a quarter
    flagged_by_rung = {rung["damage"]: rung["quality_flagged"] for rung in report["rungs"]}
    assert flagged_by_rung["as cut"] == 0.0
    assert flagged_by_rung["a quarter, H.264 rate factor 36"] == 1.0

    # The last rung is evaluate's re-encoded condition.
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    evaluated = runner.invoke(args=["evaluate", str(folder), "--json", "-"])
    re_encoded = json.loads(evaluated.output[evaluated.output.index("{") :])["sets"][-1]
    assert re_encoded["condition"] == "re-encoded"
    assert report["rungs"][-1]["roc_auc"] == re_encoded["crop_level"]["roc_auc"]
    assert report["rungs"][-1]["false_alarms"] == re_encoded["crop_level"]["false_alarms"]


def test_probe_damage_refuses_a_split_without_crops(runner, app, tmp_path):
    folder, _ = known_dataset(tmp_path / "known")
    app.extensions["deepfake"].classifier = BrightnessClassifier()
    result = runner.invoke(args=["probe-damage", str(folder)])  # the default split, val, is empty here
    assert result.exit_code != 0
    assert "has no crops in split 'val'" in result.output


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
    (report,) = json.loads(result.output[result.output.index("{") :])["sets"]
    assert [(v["file"], v["label"], v["verdict"], v["crops"]) for v in report["videos"]] == [
        ("real/clip.mp4", "real", "DeepFake", 2),
        ("fake/swap.avi", "fake", "DeepFake", 1),
    ]
    assert report["video_level"]["confusion"] == {"true_fake": 1, "false_fake": 1, "true_real": 0, "false_real": 0}
    assert report["crop_level"]["count"] == 3 and report["crop_level"]["roc_auc"] == 0.5
    assert [f["file"] for f in report["failed"]] == ["fake/notes.mp4"]
    assert "real/clip.mp4: real -> DeepFake (0.800, 2 crops)" in result.output
    assert report["video_level"]["false_alarms"] == 1.0  # the one real video called DeepFake
    # Every crop scores 0.8, so however few frames each video is judged on, the two tie.
    assert report["by_frames"] == [
        {"frames": count, "roc_auc_mean": 0.5, "roc_auc_p10_p90": [0.5, 0.5]} for count in (1, 2, 3, 5, 10, 20, 40)
    ]
    assert (
        "video ROC AUC judged on a few of each video's frames" in result.output
        and "   1  0.500 [0.500, 0.500]" in result.output
    )


def test_evaluate_reports_several_sets_side_by_side(runner, app, source_folder, tmp_path, mock_prediction_client):
    from .conftest import azure_with

    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    dataset = tiny_dataset(tmp_path / "tiny")
    result = runner.invoke(
        args=["evaluate", str(dataset), str(source_folder), f"{source_folder}@25", "--split", "val", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    sets = json.loads(result.output[result.output.index('{\n  "classifier"') :])["sets"]
    assert [s["name"] for s in sets] == [
        "tiny val",
        "tiny val, degraded",
        "tiny val, recoloured",
        "tiny val, side-lit",
        "tiny val, re-encoded",
        "src (1 frame in 50, at least 1 a video)",
        "src (1 frame in 25, at least 1 a video)",
    ]
    assert sets[0]["crop_level"]["count"] == 6
    # One frame in 25 samples the 60-frame clip 3 times, one in 50 twice.
    assert [v["crops"] for v in sets[5]["videos"]] == [2, 1] and [v["crops"] for v in sets[6]["videos"]] == [3, 2]
    table = result.output.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("set "))
    assert [line.split("  ")[0].strip() for line in table[header + 2 : header + 9]] == [s["name"] for s in sets]
    assert "ROC AUC [95% CI]" in table[header] and "ECE" in table[header]


@pytest.mark.parametrize(("argument", "message"), [("nowhere", "is not a folder"), ("{src}@0", "at least 1")])
def test_evaluate_refuses_a_bad_set(runner, source_folder, argument, message):
    result = runner.invoke(args=["evaluate", argument.format(src=source_folder)])
    assert result.exit_code == 2 and message in result.output


def test_a_pseudo_fakes_xray_is_its_blend_mask_cut_and_flipped_as_the_crop(tmp_path, monkeypatch):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    seen = {}

    def blend_spy(*args, **kwargs):
        seen["fake"], seen["mask"] = real_self_blend(*args, **kwargs)
        return seen["fake"], seen["mask"]

    def box_spy(box, width, height, rng):
        seen["box"] = real_jittered_box(box, width, height, rng)
        return seen["box"]

    real_self_blend, real_jittered_box = augmentation.self_blend, augmentation.jittered_box
    monkeypatch.setattr(augmentation, "self_blend", blend_spy)
    monkeypatch.setattr(augmentation, "jittered_box", box_spy)
    flips = set()
    for seed in range(12):
        crop, xray = faces.crop_and_xray(0, training.PSEUDO_FAKE, None, np.random.default_rng(seed), False, xray_size=8)
        # The same random draws as `crop`: the same crop.
        same = faces.crop(0, training.PSEUDO_FAKE, None, np.random.default_rng(seed), False)
        assert np.array_equal(crop, same)
        x1, y1, x2, y2 = seen["box"]
        cut_fake = seen["fake"][y1:y2, x1:x2]
        flipped = not np.array_equal(crop, cut_fake)
        assert not flipped or np.array_equal(crop, cut_fake[:, ::-1])  # the pseudo-fake as cut, or mirrored
        cut = seen["mask"][y1:y2, x1:x2]
        expected = cv2.resize(4 * cut * (1 - cut), (8, 8), interpolation=cv2.INTER_AREA)
        assert xray.shape == (8, 8) and np.allclose(xray, expected[:, ::-1] if flipped else expected)
        assert xray.min() >= 0.0 and xray.max() <= 1.0 and xray.max() > 0.1  # the seam is in the crop
        flips.add(flipped)
    assert flips == {True, False}


def test_a_turned_pseudo_fakes_xray_turns_with_it(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    for seed in range(4):
        plain = faces.crop_and_xray(0, training.PSEUDO_FAKE, 64, np.random.default_rng(seed), False, xray_size=8)[1]
        posed = faces.crop_and_xray(
            0, training.PSEUDO_FAKE, 64, np.random.default_rng(seed), False, light_and_pose=1.0, xray_size=8
        )[1]
        assert posed.shape == (8, 8) and posed.max() > 0.1 and not np.allclose(plain, posed)


def test_a_real_faces_xray_is_empty_and_a_dataset_fakes_unknown(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    real = faces.crop_and_xray(0, training.REAL, 64, np.random.default_rng(0), True, light_and_pose=1.0, xray_size=8)
    assert real[0].shape == (64, 64, 3) and np.array_equal(real[1], np.zeros((8, 8), dtype=np.float32))
    fake = int(np.flatnonzero(faces.labels == 1)[0])
    assert faces.crop_and_xray(fake, training.DATASET_FAKE, 64, np.random.default_rng(0), True, xray_size=8)[1] is None
    assert faces.crop_and_xray(0, training.PSEUDO_FAKE, 64, np.random.default_rng(0), True)[1] is None  # not asked


def test_with_xray_weight_the_batches_carry_each_crops_xray_weighed_where_known(tmp_path):
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    config = training.TrainConfig(
        input_size=64, batch_size=27, dfdc_fake_share=1.0, xray_weight=1.0, extra_soft_share=0.0
    )
    crops, (labels, xrays), (weights, known) = next(training.training_batches(faces, config))
    assert crops.shape == (27, 64, 64, 3) and xrays.shape == (27, 8, 8, 1) and known.shape == (27, 1, 1)
    plain = next(training.training_batches(faces, dataclasses.replace(config, xray_weight=0.0)))
    assert np.array_equal(plain[0], crops) and np.array_equal(plain[1], labels)  # the same examples
    assert np.array_equal(plain[2], weights)
    # 9 real faces (X-ray all 0), their 9 pseudo-fakes (a seam) and 9 DFDC fakes (unknown: weight 0).
    assert known.sum() == 18 and np.all(xrays[known[:, 0, 0] == 0] == 0)
    seams = xrays[(known[:, 0, 0] == 1) & (labels == 1)]
    assert len(seams) == 9 and all(seam.max() > 0.1 for seam in seams)
    assert np.all(xrays[labels == 0] == 0)


def test_the_xray_head_trains_the_network_it_shares_its_layers_with():
    import keras

    network = model.build(64, (8, 8, 8, 8, 8), stem=0, dropout=0.0)
    trainee = model.with_xray_head(network)
    assert trainee.outputs[1].shape[1:] == (8, 8, 1)
    before = [w.copy() for w in network.get_weights()]
    trainee.compile(optimizer=keras.optimizers.SGD(0.1), loss=["binary_crossentropy", "binary_crossentropy"])
    crops = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    xrays = np.ones((4, 8, 8, 1), dtype=np.float32)
    trainee.train_on_batch(crops, (np.ones(4, dtype=np.float32), xrays))
    assert any(not np.array_equal(a, b) for a, b in zip(before, network.get_weights(), strict=True))
    with pytest.raises(ValueError, match="no features at 0 x 0"):  # an input too small to have any
        model.with_xray_head(model.build(4, (8, 8, 8, 8, 8), stem=0))


def test_train_with_xray_weight_saves_the_network_without_its_head(runner, tmp_path):
    import keras

    dataset = tiny_dataset(tmp_path / "tiny")
    result = runner.invoke(
        args=["train", str(dataset), "--out", str(tmp_path / "x"), "--xray-weight", "1", *TINY_TRAINING]
    )
    assert result.exit_code == 0, result.output
    assert "xray_loss" in result.output and "p_deepfake_loss" in result.output
    saved = keras.models.load_model(tmp_path / "x" / "deepfake_crop_cnn.keras", compile=False)
    assert len(saved.outputs) == 1 and model.widths_of(saved) == (8, 8, 8, 8, 8)
    metrics = json.loads((tmp_path / "x" / "metrics.json").read_text())
    assert metrics["config"]["xray_weight"] == 1.0 and metrics["history"][-1]["xray_loss"] > 0
    sharp = ["--xray-weight", "1", "--sharpness-rho", "0.05"]  # both heads through sharpness-aware steps
    result = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "xs"), *sharp, *TINY_TRAINING])
    assert result.exit_code == 0, result.output
    assert "xray_loss" in result.output and "p_deepfake_loss" in result.output
    refused = runner.invoke(args=["train", str(dataset), "--xray-weight", "-1", *TINY_TRAINING])
    assert refused.exit_code != 0 and "--xray-weight" in refused.output


def test_the_training_pipeline_codes_codec_share_of_the_degradations_as_h264(tmp_path, monkeypatch):
    coded = []
    h264 = augmentation.h264
    monkeypatch.setattr(augmentation, "h264", lambda image, crf: coded.append(crf) or h264(image, crf))
    faces = training.load_faces(tiny_dataset(tmp_path / "tiny"), "train")
    config = training.TrainConfig(input_size=32, batch_size=8)
    counts = {}
    for share in (0.0, 0.5, 1.0):
        coded.clear()
        batches = training.training_batches(faces, dataclasses.replace(config, codec_share=share))
        for _ in range(6):  # about two epochs of the tiny split
            next(batches)
        counts[share] = len(coded)
        assert all(18 <= crf <= 42 for crf in coded)
    assert counts[0.0] == 0  # at 0 every degradation is JPEG
    assert 0 < counts[0.5] < counts[1.0]  # by default half of them are H.264, at 1 all
    assert training.TrainConfig().codec_share == 0.5


def test_label_smoothing_makes_the_loss_least_at_its_drawn_in_labels():
    probabilities = np.array([0.8, 0.85, 0.9, 0.95, 0.999], dtype=np.float32)

    def losses(smoothing: float) -> np.ndarray:
        loss = training.crop_loss(training.TrainConfig(label_smoothing=smoothing))
        return np.array([float(loss(np.ones((1, 1)), np.full((1, 1), p))) for p in probabilities])

    assert np.all(np.diff(losses(0.0)) < 0)  # plain cross-entropy: ever more certain, ever lower
    smoothed = losses(0.2)
    assert np.argmin(smoothed) == 2  # least at 1 - 0.2 / 2 = 0.9, and more certain costs more
    assert smoothed[2] == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), abs=1e-4)
    assert training.TrainConfig().label_smoothing == 0.0


RECIPE_OPTIONS = [  # (flag, value, TrainConfig field): each away from its default
    ("--codec-share", 1.0, "codec_share"),
    ("--erase-share", 0.5, "erase_share"),
    ("--soft-share", 0.5, "soft_share"),
    ("--smooth-share", 0.0, "smooth_share"),
    ("--soft-part-share", 0.6, "soft_part_share"),
    ("--extra-soft-share", 0.25, "extra_soft_share"),
    ("--extra-part-share", 0.25, "extra_part_share"),
    ("--soft-real-share", 0.25, "soft_real_share"),
    ("--deform-share", 0.5, "deform_share"),
    ("--turned-weight", 3.0, "turned_weight"),
    ("--label-smoothing", 0.1, "label_smoothing"),
    ("--sharpness-rho", 0.05, "sharpness_rho"),
    ("--limit", 16, "limit"),
]


def test_train_takes_the_recipe_options_and_records_them(runner, tmp_path):
    """One training with every recipe option away from its default (a training each would cost the
    suite 15-30 s apiece): it runs with them all and records each; what each does is tested on its own."""
    defaults = training.TrainConfig()
    assert all(getattr(defaults, field) != value for _, value, field in RECIPE_OPTIONS)
    assert defaults.paired_views is True  # the shipped model's last stage showed its pairs alike
    options = [str(part) for flag, value, _ in RECIPE_OPTIONS for part in (flag, value)]
    out = tmp_path / "m"
    result = runner.invoke(
        args=[
            "train",
            str(tiny_dataset(tmp_path / "tiny")),
            "--out",
            str(out),
            "--apart-views",
            "--sharpness-matched-fakes",
            *options,
            *TINY_TRAINING,
        ]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {field: metrics["config"][field] for _, _, field in RECIPE_OPTIONS} == {
        field: value for _, value, field in RECIPE_OPTIONS
    }
    assert metrics["config"]["paired_views"] is False and metrics["config"]["sharpness_matched_fakes"] is True
    assert defaults.sharpness_matched_fakes is False
    assert metrics["train_faces"] == 16  # of the tiny train split's 18, at --limit 16


def test_train_refuses_a_label_smoothing_past_one_half(runner, tmp_path):
    """At 0.5 both labels are 0.5 already: there is nothing left to learn."""
    refused = runner.invoke(args=["train", str(tiny_dataset(tmp_path / "tiny")), "--label-smoothing", "0.6"])
    assert refused.exit_code == 2 and "--label-smoothing" in refused.output


@pytest.mark.parametrize(
    "flag",
    [
        "--codec-share",
        "--dfdc-fake-share",
        "--part-share",
        "--low-res-share",
        "--swap-share",
        "--outline-share",
        "--erase-share",
        "--soft-share",
        "--smooth-share",
        "--soft-part-share",
        "--extra-soft-share",
        "--extra-part-share",
        "--soft-real-share",
        "--deform-share",
    ],
)
def test_train_refuses_a_share_outside_0_to_1(runner, tmp_path, flag):
    dataset = tiny_dataset(tmp_path / "tiny")
    for value in ("1.5", "-0.1"):
        refused = runner.invoke(args=["train", str(dataset), "--out", str(tmp_path / "m"), flag, value])
        assert refused.exit_code == 2 and flag in refused.output and "0<=x<=1" in refused.output
    assert not (tmp_path / "m").exists()  # refused before any training
