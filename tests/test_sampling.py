"""How many frames of a video are analysed: one in every FRAME_INTERVAL, and at least MIN_FRAMES of a
short clip (pipeline.sampling_interval); and what more frames of a clip are worth (evaluation.by_frames)."""

from __future__ import annotations

import pytest

import evaluation
import face
import pipeline
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction

from .conftest import face_frames, write_video


@pytest.mark.parametrize(
    ("frames", "interval", "least", "expected"),
    [
        (469, 50, 10, 50),  # 10 frames at 50: as the original samples it
        (5000, 50, 10, 50),
        (450, 50, 10, 45),  # 9 at 50: 10 at 45
        (24, 50, 10, 2),  # a Celeb-DF clip: 12 of its 24 frames
        (24, 5, 10, 2),  # a closer FRAME_INTERVAL is closed up too
        (5, 50, 10, 1),  # fewer frames than MIN_FRAMES: all of them
        (1, 50, 10, 1),  # a photo
        (24, 50, 1, 50),  # MIN_FRAMES=1: the original's sampling, whatever the length
        (24, 3, 2, 3),  # the interval is never made larger
    ],
)
def test_a_short_clip_is_sampled_closely_enough_to_give_min_frames(frames, interval, least, expected):
    settings = Settings.from_mapping({"FRAME_INTERVAL": interval, "MIN_FRAMES": least})
    chosen = pipeline.sampling_interval(frames, settings)
    assert chosen == expected
    assert -(-frames // chosen) >= min(least, frames)


def test_min_frames_below_one_is_refused_by_name():
    with pytest.raises(ValueError, match="MIN_FRAMES must be at least 1"):
        Settings.from_mapping({"MIN_FRAMES": 0})


class Constant:
    name = "test-constant"

    def classify(self, images):
        return [Prediction({DEEPFAKE: 0.7, REAL: 0.3}) for _ in images]


def test_a_one_second_clip_is_judged_on_min_frames_frames_and_says_at_which_interval(tmp_path):
    video = write_video(tmp_path / "short.mp4", face_frames(25))
    detector = face.get_detector(640)
    closely = pipeline.analyze(video, Settings(), detector=detector, classifier=Constant())
    assert (closely.frame_interval, closely.frames_sampled, closely.frames_total) == (2, 13, 25)
    assert [crop.frame for crop in closely.crops] == list(range(0, 25, 2))
    as_original = pipeline.analyze(
        video, Settings.from_mapping({"MIN_FRAMES": 1}), detector=detector, classifier=Constant()
    )
    assert (as_original.frame_interval, as_original.frames_sampled) == (50, 1)
    assert pipeline.result_to_dict(closely)["frame_interval"] == 2


def test_by_frames_reads_the_video_roc_auc_on_a_few_frames_of_each_video():
    # The real clip's two frames disagree (0.1 and 0.9), the fake's agree (0.6, 0.7): on one frame drawn
    # from each, the fake outranks the real half the time; on both frames always.
    videos = [(False, [[0.1], [0.9]]), (True, [[0.6], [0.7]])]
    one, two, three = evaluation.by_frames(videos, counts=(1, 2, 3), draws=400)
    assert one["frames"] == 1 and 0.4 < one["roc_auc_mean"] < 0.6 and one["roc_auc_p10_p90"] == [0.0, 1.0]
    assert two == {"frames": 2, "roc_auc_mean": 1.0, "roc_auc_p10_p90": [1.0, 1.0]}
    assert three["roc_auc_mean"] == 1.0  # a video with fewer frames gives all it has
    # A frame's crops count as the verdict rule counts them: two crops of one frame weigh twice.
    assert evaluation.by_frames([(False, [[0.2, 0.2]]), (True, [[0.1, 0.9, 0.9]])], counts=(1,), draws=5) == [
        {"frames": 1, "roc_auc_mean": 1.0, "roc_auc_p10_p90": [1.0, 1.0]}
    ]
    assert evaluation.by_frames([(True, [[0.5]])]) is None  # one label only
