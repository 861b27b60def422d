"""The model that ships in models/: it loads, answers in the documented shape, and separates real
from fake crops of a small fixed set built from ../shared/data (skipped where that is absent)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import face
import model
from config import PROJECT_ROOT, Settings
from custom_vision import DEEPFAKE, REAL, LocalClassifier

SHARED_FACES = PROJECT_ROOT.parent / "shared" / "data" / "dfdc_faces"
PER_CLASS = 40


@pytest.fixture(scope="module")
def shipped():
    return LocalClassifier.load(Settings().local_model_path)


def test_the_shipped_model_loads_and_answers_for_crops_of_any_size(shipped):
    assert shipped.network.network.input_shape == (None, model.INPUT_SIZE, model.INPUT_SIZE, 3)
    crops = [np.full((60, 80, 3), 120, dtype=np.uint8), np.zeros((200, 150, 3), dtype=np.uint8)]
    predictions = shipped.classify(crops)
    assert len(predictions) == 2
    for prediction in predictions:
        assert set(prediction.probabilities) == {DEEPFAKE, REAL}
        assert 0.0 <= prediction.deepfake_probability <= 1.0
        assert prediction.probabilities[REAL] == pytest.approx(1.0 - prediction.deepfake_probability)


@pytest.mark.skipif(not SHARED_FACES.is_dir(), reason="../shared/data is absent")
def test_fake_crops_score_higher_than_real_ones_on_a_fixed_test_set(shipped):
    with (SHARED_FACES / "metadata.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    settings = Settings()
    detector = face.get_detector(settings.detect_max_side)
    means = {}
    for label in ("real", "fake"):
        images = [face.read_image(SHARED_FACES / row["file"]) for row in rows if row["label"] == label][:PER_CLASS]
        crops = [
            crop.image
            for image, faces in zip(images, detector.detect_many(images), strict=True)
            for crop in face.crop_faces(
                image, faces, min_confidence=settings.min_face_confidence, margin=settings.crop_margin
            )
        ]
        assert len(crops) > PER_CLASS * 0.8
        means[label] = float(np.mean([p.deepfake_probability for p in shipped.classify(crops)]))
    assert means["fake"] > means["real"] + 0.05
