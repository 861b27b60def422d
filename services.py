"""What the app's analyses need, built once per process from the settings: MTCNN, the classifier,
the analysis folders, the job store and the job queue. No Flask in here; app.py keeps one in
``app.extensions``, and a Celery worker (tasks.py) builds its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

import numpy as np

import custom_vision
import face
import jobs
from config import Settings
from job_queue import CeleryJobQueue, JobQueue, LocalJobQueue
from storage import AnalysisFolders

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_ALLOCATION = 1 << 20  # bytes: a decoded 720p frame is 2.8 MB, a 1080p one 6.2 MB


class Services:
    """The heavy parts are made on first use (MTCNN and TensorFlow take seconds to load), or at
    start with `warm_up`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._detector: face.FaceDetector | None = None
        self._classifier: custom_vision.Classifier | None = None
        self.folders = AnalysisFolders(settings.upload_path)
        self.store = jobs.JobStore(settings.database, max_attempts=settings.job_max_attempts)
        self.analysis = jobs.VideoAnalysis(
            self.store, self.folders, settings, lambda: self.detector, lambda: self.classifier
        )
        sweep_interval_s = min(600.0, settings.result_retention_hours * 360)
        self.queue: JobQueue
        if settings.job_backend == "celery":
            self.queue = CeleryJobQueue(self.store, settings, sweep=self.sweep, sweep_interval_s=sweep_interval_s)
        else:
            self.queue = LocalJobQueue(
                self.store,
                self.analysis,
                settings,
                workers=settings.worker_count,
                sweep=self.sweep,
                sweep_interval_s=sweep_interval_s,
            )

    @property
    def detector(self) -> face.FaceDetector:
        with self._lock:  # one detector, however many threads ask first
            if self._detector is None:
                self._detector = face.get_detector(self.settings.detect_max_side)
            return self._detector

    @detector.setter
    def detector(self, detector: face.FaceDetector) -> None:
        self._detector = detector

    @property
    def classifier(self) -> custom_vision.Classifier:
        with self._lock:
            if self._classifier is None:
                self._classifier = custom_vision.make_classifier(self.settings)
            return self._classifier

    @classifier.setter
    def classifier(self, classifier: custom_vision.Classifier) -> None:
        self._classifier = classifier

    def warm_up(self) -> float:
        """Load MTCNN and the local model and run each once (their first call builds TensorFlow
        graphs), so that the first analysis is no slower than the next; large blocks of memory are
        mapped on their own from here on (`map_large_allocations`). Seconds taken. A classifier
        that cannot be made (no model, say) is left for the job to report."""
        started = time.perf_counter()
        map_large_allocations()
        blank = np.zeros((160, 160, 3), dtype=np.uint8)
        self.detector.detect_many([blank, blank], min_face_fraction=self.settings.min_face_fraction)
        try:
            classifier = self.classifier
        except custom_vision.ClassifierError as error:
            log.warning("no classifier to warm up: %s", error)
        else:
            if isinstance(classifier, custom_vision.LocalClassifier):
                classifier.classify([blank])
        seconds = time.perf_counter() - started
        log.info("models warmed up in %.1f s", seconds)
        return seconds

    def sweep(self) -> int:
        """Delete the analyses older than RESULT_RETENTION_HOURS; how many."""
        return jobs.sweep_expired(self.store, self.folders, self.settings.result_retention_hours)


def map_large_allocations() -> None:
    """Have glibc give every allocation of LARGE_ALLOCATION or more (decoded frames, MTCNN's feature
    maps) its own memory mapping, returned to the system when freed. By default glibc raises that
    limit to the largest block freed so far, so after the first video such blocks come from the heap,
    which keeps the largest size it reached: measured, the steady memory of a worker after a 1080p
    minute fell from 1.30 to 1.14 GB and the peak by about 100 MB. Elsewhere than glibc: nothing."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION)
    except (OSError, AttributeError, TypeError):
        log.debug("mallopt is not available here; the allocator keeps its defaults")
