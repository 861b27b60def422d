"""Classifiers (crop in, probability per tag out) and the original project's verdict rule.

Every classifier answers with the canonical tags `DeepFake` and `Not DeepFake`, whatever the tags
are called in the Azure project (DEEPFAKE_TAG, REAL_TAG), so the verdict cannot tell them apart.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

import face
import model
from config import Settings

log = logging.getLogger(__name__)

DEEPFAKE = "DeepFake"
REAL = "Not DeepFake"
TAGS = (DEEPFAKE, REAL)
NO_FACE = "No face found"
AZURE_MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_RETRY_WAIT_S = 60.0


class ClassifierError(RuntimeError):
    """A classifier could not answer; the message is meant for the person who uploaded the video."""


@dataclass(frozen=True)
class Prediction:
    """One crop's probability per canonical tag."""

    probabilities: dict[str, float]

    @property
    def deepfake_probability(self) -> float:
        return self.probabilities.get(DEEPFAKE, 0.0)

    @property
    def label(self) -> str:
        """The higher-probability tag; a tie goes to DeepFake, the cautious answer."""
        return DEEPFAKE if self.deepfake_probability >= self.probabilities.get(REAL, 0.0) else REAL


class Classifier(Protocol):
    name: str

    def classify(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """One prediction per RGB crop, in order."""


@dataclass(frozen=True)
class TagStats:
    max: float
    min: float
    mean: float
    sum: float
    count: int


@dataclass(frozen=True)
class Verdict:
    label: str  # DeepFake, Not DeepFake or No face found
    deepfake_probability: float | None  # mean over crops of P(DeepFake); None without crops
    stats: dict[str, TagStats]  # per tag that labelled at least one crop
    rule: str  # how the label was reached, in words


def decide(predictions: Sequence[Prediction]) -> Verdict:
    """The original project's rule.

    Each crop's label is its higher-probability tag, and that probability is recorded under that tag.
    Only DeepFake crops -> DeepFake; only Not DeepFake -> Not DeepFake; both -> the tag with the higher
    mean probability (a tie goes to DeepFake). No crops -> No face found.
    """
    if not predictions:
        return Verdict(NO_FACE, None, {}, "no face was found in the sampled frames")
    recorded: dict[str, list[float]] = {}
    for prediction in predictions:
        recorded.setdefault(prediction.label, []).append(prediction.probabilities[prediction.label])
    stats = {
        tag: TagStats(
            max=max(values), min=min(values), mean=sum(values) / len(values), sum=sum(values), count=len(values)
        )
        for tag in TAGS
        if (values := recorded.get(tag))
    }
    deepfake_probability = sum(p.deepfake_probability for p in predictions) / len(predictions)
    if REAL not in stats:
        return Verdict(DEEPFAKE, deepfake_probability, stats, "every crop was labelled DeepFake")
    if DEEPFAKE not in stats:
        return Verdict(REAL, deepfake_probability, stats, "every crop was labelled Not DeepFake")
    fake_mean, real_mean = stats[DEEPFAKE].mean, stats[REAL].mean
    label = DEEPFAKE if fake_mean >= real_mean else REAL
    comparison = ">=" if label == DEEPFAKE else "<"
    rule = f"crops of both labels: mean DeepFake probability {fake_mean:.3f} {comparison} mean Not DeepFake probability {real_mean:.3f}"
    return Verdict(label, deepfake_probability, stats, rule)


def make_classifier(settings: Settings) -> Classifier:
    """The classifier CLASSIFIER asks for: `azure`, `local`, or `auto` (Azure when all four
    VISION_PREDICTION_* / VISION_PROJECT_ID settings are present, else the local model)."""
    wants_azure = settings.classifier == "azure" or (settings.classifier == "auto" and settings.azure_configured)
    if wants_azure:
        if not settings.azure_configured:
            raise ClassifierError(
                "CLASSIFIER=azure needs VISION_PREDICTION_ENDPOINT, VISION_PREDICTION_KEY, "
                "VISION_PROJECT_ID and VISION_PUBLISHED_NAME."
            )
        return AzureClassifier.from_settings(settings)
    return LocalClassifier.load(settings.local_model_path)


class LocalClassifier:
    """The embedded network that `flask --app app train` produces (models/ ships one)."""

    name = "local"

    def __init__(self, network: model.LocalModel):
        self.network = network

    @classmethod
    def load(cls, path: Path) -> LocalClassifier:
        if not path.is_file():
            raise ClassifierError(
                f"The local model {path} does not exist: train one with `flask --app app train DATASET`, "
                "or set the VISION_PREDICTION_* settings to use Azure Custom Vision."
            )
        return cls(_load_local_model(path.resolve()))

    def classify(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        scores = self.network.predict(list(images))
        return [Prediction({DEEPFAKE: float(score), REAL: 1.0 - float(score)}) for score in scores]


@functools.cache
def _load_local_model(path: Path) -> model.LocalModel:
    """Each model file is loaded once per process, however many apps or settings ask for it."""
    log.info("loading the local model %s", path)
    return model.LocalModel(path)


class RateLimiter:
    """Spaces the starts of calls at least 1 / ``per_second`` seconds apart, across threads."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class AzureClassifier:
    """A trained Azure Custom Vision classification model, through the SDK's prediction client."""

    name = "azure"

    def __init__(
        self,
        client,
        project_id: str,
        published_name: str,
        *,
        deepfake_tag: str = DEEPFAKE,
        real_tag: str = REAL,
        store_images: bool = False,
        max_tps: float = 10.0,
        max_retries: int = 5,
        retry_backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.project_id = project_id
        self.published_name = published_name
        self.tag_map = {deepfake_tag: DEEPFAKE, real_tag: REAL}
        self.store_images = store_images
        self.max_tps = max_tps
        self.retry = AzureRetry(max_retries, retry_backoff_s, RateLimiter(max_tps, sleep=sleep), sleep)

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureClassifier:
        from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
        from msrest.authentication import ApiKeyCredentials

        credentials = ApiKeyCredentials(in_headers={"Prediction-key": settings.vision_prediction_key})
        client = CustomVisionPredictionClient(settings.vision_prediction_endpoint.rstrip("/"), credentials)
        # Retries are ours (429 with Retry-After, bounded 5xx), not urllib3's hidden ones.
        client.config.retry_policy.retries = 0
        client.config.connection.timeout = settings.azure_timeout_s
        return cls(
            client,
            settings.vision_project_id,
            settings.vision_published_name,
            deepfake_tag=settings.deepfake_tag,
            real_tag=settings.real_tag,
            store_images=settings.store_prediction_images,
            max_tps=settings.azure_max_tps,
            max_retries=settings.azure_max_retries,
            retry_backoff_s=settings.azure_retry_backoff_s,
        )

    def close(self) -> None:
        """Close the SDK client's pooled connections."""
        self.client.close()

    def classify(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        if not images:
            return []
        workers = max(1, min(len(images), int(np.ceil(self.max_tps)), 16))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="azure") as pool:
            return list(pool.map(self._classify_one, images))

    def _classify_one(self, image: np.ndarray) -> Prediction:
        data = jpeg_under(image, AZURE_MAX_IMAGE_BYTES)
        call = self.client.classify_image if self.store_images else self.client.classify_image_with_no_store
        result = self.retry.call(
            lambda: call(self.project_id, self.published_name, data),
            key="prediction",
            not_found="project or published iteration not found (HTTP 404): check VISION_PROJECT_ID and VISION_PUBLISHED_NAME.",
        )
        return self._to_prediction(result)

    def _to_prediction(self, result) -> Prediction:
        probabilities = dict.fromkeys(TAGS, 0.0)
        for item in result.predictions or []:
            tag = self.tag_map.get(item.tag_name)
            if tag is not None:
                probabilities[tag] = float(item.probability)
        return Prediction(probabilities)


class AzureRetry:
    """How every Azure Custom Vision call is made: rate-limited, retried on 429 (after Retry-After),
    5xx and timeouts a bounded number of times, and failed at once, with a plain message, on the
    answers that retrying cannot fix (a rejected key, an unknown project)."""

    def __init__(self, max_retries: int, backoff_s: float, limiter: RateLimiter | None = None, sleep=time.sleep):
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.limiter = limiter
        self._sleep = sleep

    def call(self, request: Callable[[], object], *, key: str, not_found: str):
        """The result of ``request()``; raises ClassifierError when Azure cannot give one."""
        from msrest.exceptions import ClientRequestError

        attempt = 0
        while True:
            if self.limiter:
                self.limiter.wait()
            try:
                return request()
            except ClientRequestError as error:  # connection refused, timeout
                if attempt >= self.max_retries:
                    raise ClassifierError(
                        f"Azure Custom Vision did not answer after {attempt + 1} tries: {error}"
                    ) from error
                wait = self._backoff(attempt)
            except Exception as error:
                status = _status_of(error)
                if status is None:
                    raise
                if status in (401, 403):
                    raise ClassifierError(f"Azure rejected the {key} key (HTTP {status}).") from error
                if status == 404:
                    raise ClassifierError(f"Azure Custom Vision {not_found}") from error
                if status != 429 and status < 500:
                    raise ClassifierError(
                        f"Azure Custom Vision refused the request (HTTP {status}): {error}"
                    ) from error
                if attempt >= self.max_retries:
                    what = (
                        "kept throttling the requests (HTTP 429)" if status == 429 else f"kept failing (HTTP {status})"
                    )
                    raise ClassifierError(f"Azure Custom Vision {what} after {attempt + 1} tries.") from error
                wait = _retry_after(error) if status == 429 else None
                if wait is None:
                    wait = self._backoff(attempt)
            log.info("Azure call failed, retrying in %.2fs (attempt %d)", wait, attempt + 1)
            self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, MAX_RETRY_WAIT_S)


def jpeg_under(image: np.ndarray, limit: int) -> bytes:
    """JPEG bytes of ``image`` no larger than ``limit``: lower quality first, then smaller sizes."""
    for quality in (92, 80, 65):
        data = face.encode_jpeg(image, quality)
        if len(data) <= limit:
            return data
    while len(data) > limit:
        height, width = image.shape[:2]
        image = cv2.resize(image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
        data = face.encode_jpeg(image, 65)
    return data


def _status_of(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(error: Exception) -> float | None:
    """Seconds from the response's Retry-After header (seconds or an HTTP date), if any."""
    value = getattr(error.response, "headers", {}).get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_WAIT_S)
