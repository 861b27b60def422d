"""People (faces tracked across sampled frames), the original's rule per person, and how sure a
verdict is: on fixed crop sets whose answers are known by hand, then end to end on a generated video
with two people of whom one is "swapped"."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

import confidence
import face
import pipeline
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction
from people import Sighting, assign_people

from .conftest import face_image, write_video


def p(deepfake: float) -> Prediction:
    return Prediction({DEEPFAKE: deepfake, REAL: round(1 - deepfake, 6)})


def crop(frame: int, box: tuple[int, int, int, int]) -> pipeline.CropResult:
    return pipeline.CropResult(
        frame=frame, time_s=frame / 25, face=0, box=list(box), confidence=0.99, probabilities={}, image=None
    )


LEFT, RIGHT = (100, 200, 180, 280), (500, 210, 580, 290)


def test_two_people_side_by_side_stay_two_people_as_they_move():
    sightings = []
    for step in range(10):
        shift = 6 * step  # both drift right a little each sampled frame
        sightings.append(Sighting(step * 50, (LEFT[0] + shift, LEFT[1], LEFT[2] + shift, LEFT[3])))
        sightings.append(Sighting(step * 50, (RIGHT[0] + shift, RIGHT[1], RIGHT[2] + shift, RIGHT[3])))
    assert assign_people(sightings) == [1, 2] * 10


def test_a_face_that_jumps_changes_size_or_comes_back_late_is_a_new_person():
    sightings = [
        Sighting(0, LEFT),
        Sighting(50, LEFT),
        Sighting(100, RIGHT),  # too far from the last face: somebody else
        Sighting(150, (100, 200, 260, 360)),  # where person 1 was, but twice as big: a cut, say
        Sighting(150, RIGHT),  # person 3 again
        Sighting(400, RIGHT),  # person 3 not seen for four sampled frames... but frames 150 -> 400
    ]
    people = assign_people(sightings)
    assert people[:5] == [1, 1, 2, 3, 2]
    assert people[5] == 2  # only sampled frames count: 400 is the next one after 150


def test_a_person_missing_for_longer_than_the_gap_comes_back_as_someone_new():
    frames = [0, 50, 100, 150, 200, 250]
    sightings = [Sighting(frame, LEFT) for frame in frames] + [Sighting(300, RIGHT)]
    sightings += [Sighting(350, RIGHT), Sighting(400, RIGHT), Sighting(450, RIGHT), Sighting(500, LEFT)]
    people = assign_people(sightings)
    assert people[-1] == 3 and set(people[:6]) == {1}


def test_the_rule_applies_per_person_and_a_swapped_one_is_named():
    crops, predictions = [], []
    for step in range(10):
        crops += [crop(step * 50, LEFT), crop(step * 50, RIGHT)]
        predictions += [p(0.2), p(0.9 if step else 0.3)]  # person 2: 9 of 10 crops fake
    found = pipeline.people_of(crops, predictions)
    assert [crop.person for crop in crops] == [1, 2] * 10
    one, two = found
    assert (one.verdict, one.crops) == (REAL, list(range(0, 20, 2)))
    assert two.verdict == DEEPFAKE and two.stats[DEEPFAKE].count == 9 and len(two.crops) == 10
    assert two.deepfake_probability == pytest.approx((9 * 0.9 + 0.3) / 10)


@pytest.mark.parametrize(
    ("probabilities", "level", "reasons"),
    [
        ([0.9] * 10, "high", []),
        ([0.1] * 7 + [0.6] * 2, "high", []),  # 2 of 9 against: within the quarter
        ([0.504], "low", [confidence.NEAR_HALF_REASON, confidence.FEW_CROPS_REASON]),  # the photo at 50.4%
        ([0.9, 0.9], "low", [confidence.FEW_CROPS_REASON]),
        # 4 fake / 3 real that the original rule calls DeepFake: near one half and split
        (
            [0.55, 0.6, 0.52, 0.58, 0.45, 0.4, 0.42],
            "low",
            [confidence.NEAR_HALF_REASON, confidence.CROPS_DISAGREE_REASON],
        ),
        ([0.99] * 6 + [0.3] * 4, "low", [confidence.CROPS_DISAGREE_REASON]),  # mean 0.71, 4 of 10 against
    ],
)
def test_confidence_on_crop_sets_known_by_hand(probabilities, level, reasons):
    from custom_vision import decide

    predictions = [p(x) for x in probabilities]
    verdict = decide(predictions)
    sure = confidence.assess(
        verdict.deepfake_probability, [x.label == DEEPFAKE for x in predictions], verdict.label == DEEPFAKE
    )
    assert (sure.level, sure.reasons) == (level, reasons)


def test_most_faces_turned_to_one_side_make_a_verdict_less_sure():
    turned = confidence.assess(0.9, [True] * 4, True, [True, True, True, False])
    assert turned == confidence.Confidence("low", [confidence.FACES_TURNED_REASON])
    assert confidence.assess(0.9, [True] * 4, True, [True, True, False, False]) == confidence.Confidence("high", [])


def turned_to_one_side(image: np.ndarray, about_x: float) -> np.ndarray:
    """``image`` stretched to the left of column ``about_x`` (the nose) and squeezed to its right, as a
    head turned to one side shows the near half of the face wider than the far half."""
    height, width = image.shape[:2]
    columns = np.arange(width, dtype=np.float32)
    source = np.where(columns < about_x, about_x - (about_x - columns) / 1.4, about_x + (columns - about_x) / 0.4)
    map_x = np.tile(source.astype(np.float32), (height, 1))
    map_y = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_a_video_of_a_face_turned_to_one_side_says_its_verdict_is_less_sure(tmp_path):
    person = cv2.resize(face_image(), (256, 256), interpolation=cv2.INTER_AREA)
    detector = face.get_detector(640)
    facing = detector.detect(person)[0]
    turned = turned_to_one_side(person, facing.keypoints["nose"][0])
    assert face.head_turn(facing.keypoints) < 0.1 and face.head_turn(detector.detect(turned)[0].keypoints) > 0.25
    for image, reasons in ((person, []), (turned, [confidence.FACES_TURNED_REASON])):
        video = write_video(tmp_path / f"{len(reasons)}.mp4", [image] * 150)
        result = pipeline.analyze(video, Settings.from_mapping({}), detector=detector, classifier=ColourClassifier())
        assert len(result.crops) == 10 and result.verdict == REAL  # MIN_FRAMES; a colour face: P(DeepFake) 0.1
        assert result.confidence_reasons == reasons


def test_every_reason_for_a_less_sure_verdict_is_said_in_words(app):
    import wording

    codes = [
        confidence.NEAR_HALF_REASON,
        confidence.FEW_CROPS_REASON,
        confidence.CROPS_DISAGREE_REASON,
        confidence.FACES_TURNED_REASON,
    ]
    result = types.SimpleNamespace(deepfake_probability=0.55, crops=[None, None], confidence_reasons=codes)
    with app.test_request_context():
        english = wording.confidence_reasons(result)
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        korean = wording.confidence_reasons(result)
    assert len(english) == len(korean) == 4 and not set(english + korean) & set(codes)
    assert "turned to one side" in english[3] and "한쪽으로" in korean[3]


def test_no_face_claims_nothing():
    assert confidence.assess(None, [], None) == confidence.Confidence("low", [])


class ColourClassifier:
    """Scores a crop by how grey it is: the test's "swap" is a face with its colour taken out."""

    name = "test-colour"

    def classify(self, images):
        out = []
        for image in images:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            grey = float(hsv[..., 1].mean()) < 25
            out.append(p(0.9 if grey else 0.1))
        return out


def test_a_video_where_one_of_two_people_is_swapped_says_which(tmp_path):
    person = cv2.resize(face_image(), (256, 256), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(cv2.cvtColor(person, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    frames = [np.roll(np.hstack([person, grey]), i // 10, axis=0) for i in range(150)]
    video = write_video(tmp_path / "two.mp4", frames)
    result = pipeline.analyze(
        video, Settings.from_mapping({}), detector=face.get_detector(640), classifier=ColourClassifier()
    )
    assert len(result.crops) == 20 and len(result.people) == 2  # two faces in each of MIN_FRAMES frames
    left, right = result.people
    assert (left.verdict, right.verdict) == (REAL, DEEPFAKE)
    assert all(result.crops[i].box[0] >= 256 for i in right.crops)  # the grey one is on the right
    # The overall verdict is still the original's rule over all crops: 10 fake at 0.9, 10 real at 0.9.
    assert result.verdict == DEEPFAKE and result.confidence == "low"
    assert result.confidence_reasons == [confidence.NEAR_HALF_REASON, confidence.CROPS_DISAGREE_REASON]
    data = pipeline.result_to_dict(result)
    assert {"confidence", "confidence_reasons", "people"} <= set(data)
    assert data["people"][1]["crops"] == right.crops and data["crops"][right.crops[0]]["person"] == 2
    assert pipeline.result_from_dict(data) == result
