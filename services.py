"""What the app's analyses need, built once per app: MTCNN, the classifier, the analysis folders,
the job store and the worker pool. No Flask in here; app.py keeps one in ``app.extensions``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import custom_vision
import face
import jobs
from config import Settings
from storage import AnalysisFolders


class Services:
    """The heavy parts are made on first use (MTCNN and TensorFlow take seconds to load)."""

    def __init__(self, settings: Settings, upload_folder: Path, database: Path):
        self.settings = settings
        self.folders = AnalysisFolders(upload_folder)
        self.store = jobs.JobStore(database)
        self.runner = jobs.JobRunner(
            self.store,
            jobs.VideoAnalysis(self.store, self.folders, settings, lambda: self.detector, lambda: self.classifier),
            workers=settings.worker_count,
            sweep=self.sweep,
            sweep_interval_s=min(600.0, settings.result_retention_hours * 360),
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
