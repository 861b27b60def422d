"""What `flask --app app benchmark` compares `analyze` with: a plain sequential pass over the same
frames (every frame grabbed, the sampled ones decoded, detected in batches, one after the other), and
the peak memory of a piece of work. No Flask in here."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

import face
from config import Settings
from custom_vision import Classifier, Prediction
from pipeline import DETECT_BATCH, batches, sampling_interval

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def sequential_decode_and_detect(path: str | Path, settings: Settings, detector: face.FaceDetector) -> float:
    """Seconds for a plain `grab()` over every frame, `retrieve()` of the sampled ones, and MTCNN on
    them in batches of DETECT_BATCH, one after the other on one thread: the figure that overlapping
    decode and detection has to beat. The frames are those `analyze` samples (`sampling_interval`)."""
    interval = sampling_interval(face.probe(path, settings.max_pixels).known_frame_count, settings)  # as analyze does
    started = time.perf_counter()
    for batch in batches(_grabbed_samples(path, interval), DETECT_BATCH):
        detector.detect_many(batch, min_face_fraction=settings.min_face_fraction)
    return time.perf_counter() - started


def _grabbed_samples(path: str | Path, interval: int) -> Iterator[np.ndarray]:
    """Frames 0, ``interval``, ... as RGB, by OpenCV `grab()` of every frame and `retrieve()` of these."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    index = 0
    try:
        while capture.grab():
            if index % interval == 0:
                ok, frame = capture.retrieve()
                if ok:
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


def grab_all(path: str | Path) -> float:
    """Seconds for a plain `grab()` over every frame: what demuxing and decoding alone cost."""
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        while capture.grab():
            pass
    finally:
        capture.release()
    return time.perf_counter() - started


class RecordingClassifier:
    """A classifier that keeps the crops it was given, so the classifier alone can then be timed on
    exactly the crops `analyze` made, without detecting them again."""

    def __init__(self, classifier: Classifier):
        self.classifier = classifier
        self.name = classifier.name
        self.crops: list[np.ndarray] = []

    def classify(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        self.crops += images
        return self.classifier.classify(images)


def resident_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


class PeakMemory:
    """The largest resident memory of this process while the block runs (sampled every 20 ms)."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.peak_mb = resident_mb()
        self._thread = threading.Thread(target=self._watch, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, resident_mb())

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, resident_mb())
