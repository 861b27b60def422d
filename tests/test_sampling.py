"""How many frames of a video are analysed: one in every FRAME_INTERVAL, and at least MIN_FRAMES of a
short clip (pipeline.sampling_interval); and what more frames of a clip are worth (evaluation.by_frames)."""

from __future__ import annotations

import av
import numpy as np
import pytest

import evaluation
import face
import pipeline
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction

from .conftest import face_frames, write_video


class Constant:
    name = "test-constant"

    def classify(self, images):
        return [Prediction({DEEPFAKE: 0.7, REAL: 0.3}) for _ in images]


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
        (None, 50, 10, 50),  # a container that tells no length: the clip may be long
    ],
)
def test_a_short_clip_is_sampled_closely_enough_to_give_min_frames(frames, interval, least, expected):
    settings = Settings.from_mapping({"FRAME_INTERVAL": interval, "MIN_FRAMES": least})
    chosen = pipeline.sampling_interval(frames, settings)
    assert chosen == expected
    assert frames is None or -(-frames // chosen) >= min(least, frames)


def live_webm(path, frames: int):
    """A WebM as a browser's MediaRecorder writes it, live: no duration, no frame count in the container."""
    with av.open(str(path), "w", format="webm", options={"live": "1"}) as out:
        stream = out.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), index, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    return path


def test_a_video_that_tells_no_length_is_sampled_as_the_original_samples_it(tmp_path):
    video = live_webm(tmp_path / "live.webm", 120)
    assert face.probe(video).known_frame_count is None
    result = pipeline.analyze(video, Settings(), detector=face.get_detector(640), classifier=Constant())
    assert (result.frame_interval, result.frames_sampled, result.frames_total) == (50, 3, 120)


def test_min_frames_below_one_is_refused_by_name():
    with pytest.raises(ValueError, match="MIN_FRAMES must be at least 1"):
        Settings.from_mapping({"MIN_FRAMES": 0})


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
    # A frame's crops count one by one, as the verdict rule counts them: the fake's three crops at 0.7
    # and one at 0 average 0.525, above the real's 0.4 (the mean of its frames' means would be 0.35).
    assert evaluation.by_frames([(False, [[0.4]]), (True, [[0.0], [0.7, 0.7, 0.7]])], counts=(2,), draws=5) == [
        {"frames": 2, "roc_auc_mean": 1.0, "roc_auc_p10_p90": [1.0, 1.0]}
    ]
    assert evaluation.by_frames([(True, [[0.5]])]) is None  # one label only
