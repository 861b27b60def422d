"""What the app's analyses need, built once per process from the settings: MTCNN, the classifier,
the analysis folders, the job store and the job queue. No Flask in here; app.py keeps one in
``app.extensions``, and a Celery worker (tasks.py) builds its own.
"""

from __future__ import annotations

from functools import cached_property

import custom_vision
import face
import jobs
from config import Settings
from job_queue import CeleryJobQueue, JobQueue, LocalJobQueue
from storage import AnalysisFolders


class Services:
    """The heavy parts are made on first use (MTCNN and TensorFlow take seconds to load)."""

    def __init__(self, settings: Settings):
        self.settings = settings
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

    @cached_property
    def detector(self) -> face.FaceDetector:
        return face.get_detector(self.settings.detect_max_side)

    @cached_property
    def classifier(self) -> custom_vision.Classifier:
        return custom_vision.make_classifier(self.settings)

    def sweep(self) -> int:
        """Delete the analyses older than RESULT_RETENTION_HOURS; how many."""
        return jobs.sweep_expired(self.store, self.folders, self.settings.result_retention_hours)
