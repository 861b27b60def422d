"""One video (or photo) in, one `Result` out: frames -> MTCNN crops -> classifier -> verdict.

No Flask here: the web app, the CLI and the tests call `analyze` with paths and settings, and get
progress through a callback. `result_to_dict` is the one JSON form of a result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import confidence
import custom_vision
import face
import people
from config import Settings
from custom_vision import Classifier, Prediction, TagStats

DETECT_BATCH = 8  # sampled frames per MTCNN call
READ_AHEAD = 2 * DETECT_BATCH  # decoded frames waiting for MTCNN at most (the decode thread then waits)
# The stages analyze() reports as it goes, in order (a job page names each one in words).
DECODING, DETECTING, CLASSIFYING, SAVING = "decoding", "detecting faces", "classifying", "saving"
STAGES = (DECODING, DETECTING, CLASSIFYING, SAVING)
LOW_QUALITY_WARNING = "low-quality video: this verdict is less reliable"

Progress = Callable[[str, int, int], None]  # stage, frames done, frames total (an estimate)


class TooManyFramesError(face.UnreadableMediaError):
    """More sampled frames than MAX_SAMPLED_FRAMES (a very high frame rate, say)."""

    def __init__(self, limit: int):
        super().__init__(f"The video has more than {limit} frames to sample, the most that is analysed.")
        self.limit = limit


class VideoTooLongError(face.UnreadableMediaError):
    """The video's frames run past the most that is analysed, whatever its header said."""

    def __init__(self, limit_s: float):
        super().__init__(f"The video is longer than {limit_s:g} s, the most that is analysed.")
        self.limit_s = limit_s


@dataclass
class CropResult:
    frame: int
    time_s: float
    face: int
    box: list[int]  # x1, y1, x2, y2 in the full-resolution frame
    confidence: float
    probabilities: dict[str, float]
    image: str | None  # JPEG path relative to the analysis folder
    quality_flags: list[str] = field(default_factory=list)
    person: int = 0  # which person of `Result.people` (1, 2, ...); 0 in results made before people


@dataclass
class PersonResult:
    """One person (the faces people.py tracked across sampled frames) and the original's rule over
    their crops alone."""

    person: int
    verdict: str
    deepfake_probability: float
    stats: dict[str, TagStats]
    crops: list[int]  # indexes into `Result.crops`


@dataclass
class Result:
    file: str
    verdict: str
    deepfake_probability: float | None
    rule: str
    stats: dict[str, TagStats]
    classifier: str
    media: str  # video or photo
    frame_interval: int
    frames_total: int
    frames_sampled: int
    fps: float
    duration_s: float
    crops: list[CropResult]
    timings_s: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    confidence: str = confidence.LOW  # high or low (confidence.py)
    confidence_reasons: list[str] = field(default_factory=list)  # confidence.py's reason codes
    people: list[PersonResult] = field(default_factory=list)
    analysed_at: float | None = None  # when the analysis ended (time.time()); set by the job runner
    source_url: str | None = None  # the link the video was fetched from, when it was not uploaded

    @property
    def fake_crop_count(self) -> int:
        """How many crops were labelled DeepFake (the sentence "7 of 10 face crops look fake")."""
        stats = self.stats.get(custom_vision.DEEPFAKE)
        return stats.count if stats else 0


def sampling_interval(frame_count: int | None, settings: Settings) -> int:
    """One frame in every FRAME_INTERVAL, or in fewer for a video that would then give fewer than
    MIN_FRAMES (a clip of a few seconds), so that its verdict does not rest on one or two frames: on
    the sample videos, frames far apart in a clip differ by 0.2 in P(DeepFake) (one standard
    deviation), as much as one clip's mean from another's, and judged on one frame drawn at random
    they score a video ROC AUC of 0.84 on average, on three 0.90, on ten 0.925, no more on forty
    (`evaluate`'s by_frames; MODEL_CARD.md, "Frames a video"). ``frame_count`` is the container's, an
    estimate; None when it tells none (then FRAME_INTERVAL: a clip of unknown length may be long)."""
    if frame_count is None or -(-frame_count // settings.frame_interval) >= settings.min_frames:
        return settings.frame_interval
    return max(1, min(settings.frame_interval, frame_count // settings.min_frames))


def analyze(
    path: str | Path,
    settings: Settings,
    *,
    detector: face.FaceDetector,
    classifier: Classifier,
    crops_dir: Path | None = None,
    progress: Progress | None = None,
    max_seconds: float | None = None,
    read_ahead: int = READ_AHEAD,
) -> Result:
    """Analyse one video or photo. Raises face.UnreadableMediaError for a file that is neither (or,
    with ``max_seconds``, for a video that turns out longer than that, whatever its header said),
    and custom_vision.ClassifierError when the classifier cannot answer.

    Frames are decoded on a thread of their own, up to ``read_ahead`` ahead of MTCNN, so decoding
    and detection overlap (0: one after the other, as a reference); they are streamed, never listed,
    so memory does not grow with the video's length."""
    started = time.perf_counter()
    path = Path(path)
    info = face.probe(path, settings.max_pixels)
    report = progress or (lambda stage, done, total: None)
    interval = sampling_interval(info.known_frame_count, settings)
    expected = max(1, -(-info.frame_count // interval))
    if expected > settings.max_sampled_frames:
        raise TooManyFramesError(settings.max_sampled_frames)

    sampler = face.FrameSampler(path, interval, settings.max_pixels)
    crops: list[face.FaceCrop] = []
    timings = {"decode": 0.0, "detect": 0.0}
    sampled = 0
    report(DECODING, 0, expected)
    with contextlib.closing(_decoded(sampler, read_ahead, timings)) as frames:
        for batch in batches(frames, DETECT_BATCH):
            if max_seconds is not None and batch[-1].time_s > max_seconds:
                raise VideoTooLongError(max_seconds)
            if sampled + len(batch) > settings.max_sampled_frames:
                raise TooManyFramesError(settings.max_sampled_frames)
            report(DETECTING, sampled, expected)
            tick = time.perf_counter()
            images = [frame.image for frame in batch]
            found = detector.detect_many(images, min_face_fraction=settings.min_face_fraction)
            timings["detect"] += time.perf_counter() - tick
            for frame, faces in zip(batch, found, strict=True):
                confident = [f for f in faces if f.confidence >= settings.min_face_confidence]
                crops += face.crop_faces(
                    frame.image,
                    largest(confident, settings.max_faces_per_frame),
                    min_confidence=settings.min_face_confidence,
                    margin=settings.crop_margin,
                    frame_index=frame.index,
                    time_s=frame.time_s,
                )
            sampled += len(batch)
            report(DETECTING, sampled, max(sampled, expected))

    report(CLASSIFYING, sampled, sampled)
    tick = time.perf_counter()
    predictions = classifier.classify([crop.image for crop in crops])
    timings["classify"] = time.perf_counter() - tick
    verdict = custom_vision.decide(predictions)

    report(SAVING, sampled, sampled)  # the last point where a deleted job stops before writing crops
    crop_results = [
        _crop_result(crop, prediction, crops_dir) for crop, prediction in zip(crops, predictions, strict=True)
    ]
    people_found = people_of(crop_results, predictions)
    sure = confidence.assess(
        verdict.deepfake_probability,
        [prediction.label == custom_vision.DEEPFAKE for prediction in predictions],
        None if verdict.label == custom_vision.NO_FACE else verdict.label == custom_vision.DEEPFAKE,
        [face.is_turned(crop.face.keypoints) for crop in crops],
    )
    timings["total"] = time.perf_counter() - started
    frames_total = sampler.frames_seen
    fps = info.fps
    return Result(
        file=path.name,
        verdict=verdict.label,
        deepfake_probability=None if verdict.deepfake_probability is None else round(verdict.deepfake_probability, 4),
        rule=verdict.rule,
        stats={tag: _rounded(stats) for tag, stats in verdict.stats.items()},
        classifier=classifier.name,
        media=info.kind,
        frame_interval=interval,
        frames_total=frames_total,
        frames_sampled=sampled,
        fps=round(fps, 3),
        duration_s=round(frames_total / fps, 3) if fps else 0.0,
        crops=crop_results,
        timings_s={name: round(seconds, 4) for name, seconds in timings.items()},
        warnings=warnings_for(crops),
        confidence=sure.level,
        confidence_reasons=sure.reasons,
        people=people_found,
    )


_END = object()


def _decoded(frames: Iterable[face.Frame], ahead: int, timings: dict[str, float]) -> Iterator[face.Frame]:
    """``frames``, decoded on a thread of their own at most ``ahead`` frames before the caller takes
    them (``ahead`` 0: on the caller's thread). The time spent decoding goes to ``timings["decode"]``.
    A decoding error reaches the caller in order; closing this generator stops and joins the thread."""
    if ahead <= 0:
        yield from _timed(frames, timings)
        return
    waiting: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def decode() -> None:
        timed = _timed(frames, timings)
        try:
            for frame in timed:
                put(frame)
                if stop.is_set():
                    return
            put(_END)
        except BaseException as error:  # handed to the caller, in order
            put(error)
        finally:
            timed.close()  # the sampler releases its decoder

    thread = threading.Thread(target=decode, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _timed(frames: Iterable[face.Frame], timings: dict[str, float]) -> Iterator[face.Frame]:
    """``frames``, with the time spent making each added to ``timings["decode"]``; closing this
    closes them."""
    iterator = iter(frames)
    try:
        while True:
            tick = time.perf_counter()
            frame = next(iterator, _END)
            timings["decode"] += time.perf_counter() - tick
            if frame is _END:
                return
            yield frame
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()


def batches(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def largest(faces: list[face.Face], limit: int) -> list[face.Face]:
    """At most ``limit`` faces, the largest (by box area) first; the rest are not judged."""
    if len(faces) <= limit:
        return faces
    return sorted(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)[:limit]


def people_of(crops: list[CropResult], predictions: list[Prediction]) -> list[PersonResult]:
    """Number each crop's person (in place) and apply the original's rule to each person's crops."""
    numbers = people.assign_people([people.Sighting(crop.frame, crop.box) for crop in crops])
    members: dict[int, list[int]] = {}
    for index, (crop, number) in enumerate(zip(crops, numbers, strict=True)):
        crop.person = number
        members.setdefault(number, []).append(index)
    found = []
    for number, indexes in sorted(members.items()):
        verdict = custom_vision.decide([predictions[index] for index in indexes])
        found.append(
            PersonResult(
                person=number,
                verdict=verdict.label,
                deepfake_probability=round(verdict.deepfake_probability, 4),
                stats={tag: _rounded(stats) for tag, stats in verdict.stats.items()},
                crops=indexes,
            )
        )
    return found


@dataclass(frozen=True)
class TimelinePoint:
    crop: int  # index into `Result.crops`
    frame: int
    time_s: float
    deepfake_probability: float


def timeline(result: Result) -> dict[int, list[TimelinePoint]]:
    """Per person (in their order), P(DeepFake) of each of their crops in time order: where in the
    video, and on whom, the suspicious parts are."""
    lines: dict[int, list[TimelinePoint]] = {}
    for index, crop in enumerate(result.crops):
        point = TimelinePoint(index, crop.frame, crop.time_s, crop.probabilities[custom_vision.DEEPFAKE])
        lines.setdefault(crop.person, []).append(point)
    return {person: sorted(points, key=lambda point: point.frame) for person, points in sorted(lines.items())}


def warnings_for(crops: list[face.FaceCrop]) -> list[str]:
    """The low-quality warning when most crops carry a quality flag (small face, blur)."""
    flagged = sum(1 for crop in crops if crop.quality_flags)
    return [LOW_QUALITY_WARNING] if crops and flagged * 2 > len(crops) else []


def _rounded(stats: TagStats) -> TagStats:
    return TagStats(*(round(value, 4) if isinstance(value, float) else value for value in dataclasses.astuple(stats)))


def _crop_result(crop: face.FaceCrop, prediction: Prediction, crops_dir: Path | None) -> CropResult:
    image = None
    if crops_dir is not None:
        crops_dir.mkdir(parents=True, exist_ok=True)
        name = f"f{crop.frame_index:06d}_{crop.face_index}.jpg"
        (crops_dir / name).write_bytes(face.encode_jpeg(crop.image))
        image = f"{crops_dir.name}/{name}"
    return CropResult(
        frame=crop.frame_index,
        time_s=round(crop.time_s, 3),
        face=crop.face_index,
        box=list(crop.box),
        confidence=round(crop.face.confidence, 4),
        probabilities={tag: round(p, 4) for tag, p in prediction.probabilities.items()},
        image=image,
        quality_flags=list(crop.quality_flags),
    )


def result_to_dict(result: Result) -> dict:
    """The one JSON form of a result: result.json, `analyze --json` and the pages all use it."""
    return dataclasses.asdict(result)


def result_from_dict(data: dict) -> Result:
    values = dict(data)
    values["stats"] = {tag: TagStats(**stats) for tag, stats in data["stats"].items()}
    values["crops"] = [CropResult(**crop) for crop in data["crops"]]
    values["people"] = [
        PersonResult(**{**person, "stats": {tag: TagStats(**stats) for tag, stats in person["stats"].items()}})
        for person in data.get("people", [])
    ]
    return Result(**values)
