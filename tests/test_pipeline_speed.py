"""The overlapped pipeline (decoding on its own thread, ahead of MTCNN) against the sequential one,
decoding that fails half-way, abandoning an analysis, and the minimum face size."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import face
import pipeline
from config import Settings
from custom_vision import DEEPFAKE, REAL, Prediction

from .conftest import face_frames, face_image, write_video


class ByBrightness:
    """A classifier whose answer depends on the crop alone: the same crops give the same verdict."""

    name = "test-brightness"

    def classify(self, images):
        return [Prediction({DEEPFAKE: float(i.mean()) / 255, REAL: 1 - float(i.mean()) / 255}) for i in images]


def decode_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "decode"]


def crops_of(result: pipeline.Result) -> list[tuple]:
    return [(c.frame, c.face, tuple(c.box), c.probabilities[DEEPFAKE]) for c in result.crops]


@pytest.mark.parametrize("frames", [1, 9, 57, 120])
def test_overlapped_and_sequential_give_the_same_crops_and_verdict(tmp_path, frames):
    video = write_video(tmp_path / "v.mp4", face_frames(frames))
    settings = Settings.from_mapping({"FRAME_INTERVAL": 3, "MIN_FRAMES": 1})
    detector = face.get_detector(640)
    runs = [
        pipeline.analyze(video, settings, detector=detector, classifier=ByBrightness(), read_ahead=ahead)
        for ahead in (0, 2, pipeline.READ_AHEAD)
    ]
    assert len(runs[0].crops) == -(-frames // 3)
    for run in runs[1:]:
        assert crops_of(run) == crops_of(runs[0])
        assert (run.verdict, run.deepfake_probability, run.frames_sampled) == (
            runs[0].verdict,
            runs[0].deepfake_probability,
            runs[0].frames_sampled,
        )
    assert decode_threads() == []


RealSampler = face.FrameSampler


class BreaksHalfWay:
    """A sampler whose decoder fails after ``good`` frames, as a damaged file's does."""

    def __init__(self, path, interval, max_pixels=None, good=10):
        self.inner = RealSampler(path, interval, max_pixels)
        self.good = good
        self.frames_seen = 0

    def __iter__(self):
        for count, frame in enumerate(self.inner):
            if count == self.good:
                raise face.UnreadableMediaError("The video could not be decoded past frame 10.")
            self.frames_seen += 1
            yield frame


def test_a_video_that_fails_to_decode_half_way_is_a_clear_error_and_leaves_no_thread(tmp_path, monkeypatch):
    video = write_video(tmp_path / "v.mp4", face_frames(60))
    monkeypatch.setattr(face, "FrameSampler", BreaksHalfWay)
    reported = []
    with pytest.raises(face.UnreadableMediaError, match="past frame 10"):
        pipeline.analyze(
            video,
            Settings.from_mapping({"FRAME_INTERVAL": 2}),
            detector=face.get_detector(640),
            classifier=ByBrightness(),
            progress=lambda stage, done, total: reported.append(done),
        )
    assert decode_threads() == []
    assert max(reported) == 8  # the first batch of eight was analysed before the error arrived


def test_an_abandoned_analysis_stops_its_decoder(tmp_path):
    video = write_video(tmp_path / "v.mp4", face_frames(200))

    def stop_at_once(stage, done, total):
        if stage == "detecting faces":
            raise KeyboardInterrupt  # any exception: a deleted job, a stopping worker

    with pytest.raises(KeyboardInterrupt):
        pipeline.analyze(
            video,
            Settings.from_mapping({"FRAME_INTERVAL": 1}),
            detector=face.get_detector(640),
            classifier=ByBrightness(),
            progress=stop_at_once,
        )
    assert decode_threads() == []


def faces_at(sizes: list[float], side: int = 720) -> np.ndarray:
    """A 16:9 frame with the astronaut's head at each of ``sizes``: her face box's width as a share
    of the frame's height (MTCNN finds her face at x 182-265, y 64-171 of the photo)."""
    head = face_image()[30:210, 150:300]
    canvas = np.full((side, side * 16 // 9, 3), 200, np.uint8)
    x = 10
    for size in sizes:
        scale = size * side / 83
        picture = cv2.resize(head, (round(150 * scale), round(180 * scale)), interpolation=cv2.INTER_AREA)
        h, w = picture.shape[:2]
        top = (side - h) // 2
        canvas[top : top + h, x : x + w] = picture
        x += w + 20
    return canvas


def test_the_minimum_face_size_keeps_every_face_it_should(tmp_path):
    frame = faces_at([0.07, 0.12, 0.2, 0.3])
    video = write_video(tmp_path / "sizes.mp4", [frame] * 3)
    found = {}
    for fraction in (0.0, Settings().min_face_fraction):
        settings = Settings.from_mapping({"FRAME_INTERVAL": 1, "MIN_FACE_FRACTION": fraction})
        result = pipeline.analyze(video, settings, detector=face.get_detector(640), classifier=ByBrightness())
        found[fraction] = sorted(crop.box[0] for crop in result.crops if crop.frame == 0)
    assert len(found[0.0]) == 4
    default = found[Settings().min_face_fraction]
    assert len(default) == 4  # the default loses none of today's faces (the boxes may move a pixel or two)
    assert all(abs(a - b) < 20 for a, b in zip(default, found[0.0], strict=True))


def test_forty_crops_through_azure_at_150_ms_each_take_under_five_seconds(fake_azure):
    """AZURE_MAX_TPS=10 spaces the calls 0.1 s apart; with 150 ms of service latency they overlap."""
    import time

    from custom_vision import AzureClassifier

    from .conftest import azure_settings

    fake_azure.delay_s = 0.15
    classifier = AzureClassifier.from_settings(azure_settings(fake_azure, AZURE_MAX_TPS=10))
    crops = [np.full((64, 64, 3), n, np.uint8) for n in range(40)]
    started = time.perf_counter()
    predictions = classifier.classify(crops)
    seconds = time.perf_counter() - started
    classifier.close()
    assert len(predictions) == 40 and len(fake_azure.requests) == 40
    assert seconds <= 5.0, f"{seconds:.2f} s"


def test_the_benchmark_command_times_analyze_against_the_sequential_pass_on_its_own_crops(make_app, media):
    """`benchmark` with the shipped local model: one line per video with the figures the issue asks
    for, then the classifier timed on exactly the crops analyze made (3 for this 120-frame video)."""
    run = (
        make_app(CLASSIFIER="local")
        .test_cli_runner()
        .invoke(args=["benchmark", "--repeat", "2", str(media["face_video"])])
    )
    assert run.exit_code == 0, run.output
    video_line, classifier_line = run.output.strip().splitlines()[-2:]
    assert video_line.startswith("face.mp4: 120 frames, 3 sampled, 3 crops; analyze total ")
    for figure in ("grab() alone", "sequential decode + detect", "ratio", "without overlap", "peak memory"):
        assert figure in video_line
    assert classifier_line.startswith("classifier local: 3 crops a batch, median ")


MAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
import services
if sys.argv[1] == "mapped":
    services.map_large_allocations()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(16 << 20))  # a 1080p frame or two: glibc would now keep blocks this size in its heap
before = libc.mallinfo2().hblks
block = libc.malloc(3 << 20)  # a 720p frame
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.parametrize(("mode", "mapped"), [("default", "0"), ("mapped", "1")])
def test_once_warmed_up_frame_sized_blocks_get_their_own_mapping(mode, mapped):
    """What keeps a worker's memory from settling at its largest video (warm_up calls it; glibc)."""
    run = subprocess.run(
        [sys.executable, "-c", MAPPED_AFTER_A_LARGE_FREE, mode],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert run.stdout.strip() == mapped
