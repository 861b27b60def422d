"""Settings: code defaults, then the environment (and `.env`), then a test mapping.

The pipeline takes a `Settings` object, never the Flask app, so the CLI, the web app and the tests
share one reading of every setting. `.env.example` documents each of them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import limits

PROJECT_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    # frames and faces
    frame_interval: int = 50
    min_frames: int = 10  # a video that would give fewer frames at FRAME_INTERVAL is sampled more closely
    min_face_confidence: float = 0.9
    crop_margin: float = 0.5
    detect_max_side: int = 640
    min_face_fraction: float = 0.05  # faces smaller than this share of a frame's shorter side are not looked for
    # classifier
    classifier: str = "auto"  # auto | azure | local
    deepfake_tag: str = "DeepFake"
    real_tag: str = "Not DeepFake"
    local_model: str = "models/deepfake_crop_cnn.keras"
    vision_prediction_endpoint: str = ""
    vision_prediction_key: str = ""
    vision_project_id: str = ""
    vision_published_name: str = ""
    vision_training_endpoint: str = ""
    vision_training_key: str = ""
    store_prediction_images: bool = False
    azure_max_tps: float = 10.0
    azure_max_retries: int = 5
    azure_retry_backoff_s: float = 1.0
    azure_timeout_s: float = 30.0
    # web app
    max_upload_mb: int = 200
    max_video_seconds: float = 600.0
    upload_folder: str = "uploads"
    upload_rate_limit: str = "10 per minute"
    allow_private_urls: bool = False  # links to loopback/private/link-local addresses (tests only)
    download_timeout_s: float = 300.0  # a link's video must arrive within this
    proxy_hops: int = 0  # reverse proxies in front that set X-Forwarded-For / -Proto / -Host (trusted)
    # jobs and privacy
    job_backend: str = "local"  # local (threads in the app's process) | celery
    database_url: str = ""  # "": sqlite:///instance/jobs.sqlite3; or postgresql://user:pass@host/db
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    workers: int = 0  # local backend: 0 = one per two cores
    job_lease_s: float = 30.0  # a worker renews its claim this often x3; a claim not renewed for this long is free
    job_max_attempts: int = 3  # a job whose worker died this many times fails instead of running again
    job_timeout_s: float = 1800.0
    keep_uploads: bool = False
    result_retention_hours: float = 24.0
    # bounded work per upload
    max_pixels: int = 40_000_000  # a photo or video frame larger than this is refused before decoding
    max_sampled_frames: int = 400  # a little over 600 s at 30 fps, one frame in 50
    max_faces_per_frame: int = 8  # the largest ones

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> Settings:
        """Read every field from its UPPER_CASE key in ``mapping``, where present, by the field's type."""
        values = {}
        for field in dataclasses.fields(cls):
            key = field.name.upper()
            if key in mapping and mapping[key] is not None:
                values[field.name] = _parse(field.name, field.type, mapping[key])
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def from_environment(cls, overrides: Mapping[str, object] | None = None) -> Settings:
        return cls.from_mapping({**os.environ, **(overrides or {})})

    def as_mapping(self) -> dict[str, object]:
        return {field.name.upper(): getattr(self, field.name) for field in dataclasses.fields(self)}

    @property
    def local_model_path(self) -> Path:
        """LOCAL_MODEL, relative to the project folder unless absolute."""
        path = Path(self.local_model)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def upload_path(self) -> Path:
        """UPLOAD_FOLDER, relative to the project folder unless absolute."""
        path = Path(self.upload_folder)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def database(self) -> str:
        """DATABASE_URL; a relative SQLite path is taken from the project folder."""
        url = self.database_url or "sqlite:///instance/jobs.sqlite3"
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            url = prefix + str(PROJECT_ROOT / url[len(prefix) :])
        return url

    @property
    def worker_count(self) -> int:
        """WORKERS, or one analysis at a time per two cores (MTCNN and TensorFlow use both of a pair)."""
        return self.workers or max(1, (os.cpu_count() or 2) // 2)

    @property
    def azure_configured(self) -> bool:
        return all(
            (
                self.vision_prediction_endpoint,
                self.vision_prediction_key,
                self.vision_project_id,
                self.vision_published_name,
            )
        )

    def validate(self) -> None:
        if self.frame_interval < 1:
            raise ValueError("FRAME_INTERVAL must be at least 1")
        if self.min_frames < 1:
            raise ValueError("MIN_FRAMES must be at least 1")
        if not 0.0 <= self.min_face_confidence <= 1.0:
            raise ValueError("MIN_FACE_CONFIDENCE must be between 0 and 1")
        if not 0.0 <= self.min_face_fraction < 1.0:
            raise ValueError("MIN_FACE_FRACTION must be at least 0 and below 1")
        if self.crop_margin < 0:
            raise ValueError("CROP_MARGIN must not be negative")
        if self.classifier not in ("auto", "azure", "local"):
            raise ValueError("CLASSIFIER must be auto, azure or local")
        if self.azure_max_tps <= 0:
            raise ValueError("AZURE_MAX_TPS must be above 0")
        try:
            limits.parse_many(self.upload_rate_limit)
        except ValueError:
            raise ValueError(
                f"UPLOAD_RATE_LIMIT must read like '10 per minute', not {self.upload_rate_limit!r}"
            ) from None
        if self.max_video_seconds <= 0:
            raise ValueError("MAX_VIDEO_SECONDS must be above 0")
        if self.workers < 0:
            raise ValueError("WORKERS must not be negative")
        if self.proxy_hops < 0:
            raise ValueError("PROXY_HOPS must not be negative")
        if self.job_backend not in ("local", "celery"):
            raise ValueError("JOB_BACKEND must be local or celery")
        if not self.database.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
        for name in (
            "job_lease_s",
            "job_timeout_s",
            "job_max_attempts",
            "max_pixels",
            "max_sampled_frames",
            "max_faces_per_frame",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.upper()} must be above 0")
        if self.result_retention_hours <= 0:
            raise ValueError("RESULT_RETENTION_HOURS must be above 0")
        if self.deepfake_tag == self.real_tag:
            raise ValueError("DEEPFAKE_TAG and REAL_TAG must differ")


def _parse(name: str, kind: str, value: object):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name.upper()} must be true or false, not {value!r}")
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except ValueError:
        raise ValueError(f"{name.upper()} must be a{'n' if kind == 'int' else ''} {kind}, not {value!r}") from None
