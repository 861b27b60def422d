"""One video (or photo) in, one `Result` out: frames -> MTCNN crops -> classifier -> verdict.

No Flask here: the web app, the CLI and the tests call `analyze` with paths and settings, and get
progress through a callback. `result_to_dict` is the one JSON form of a result.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import custom_vision
import face
from config import Settings
from custom_vision import Classifier, Prediction, TagStats

DETECT_BATCH = 8  # sampled frames per MTCNN call
LOW_QUALITY_WARNING = "low-quality video: this verdict is less reliable"

Progress = Callable[[str, int, int], None]  # stage, frames done, frames total (an estimate)


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


def analyze(
    path: str | Path,
    settings: Settings,
    *,
    detector: face.FaceDetector,
    classifier: Classifier,
    crops_dir: Path | None = None,
    progress: Progress | None = None,
    max_seconds: float | None = None,
) -> Result:
    """Analyse one video or photo. Raises face.UnreadableMediaError for a file that is neither (or,
    with ``max_seconds``, for a video that turns out longer than that, whatever its header said),
    and custom_vision.ClassifierError when the classifier cannot answer."""
    started = time.perf_counter()
    path = Path(path)
    info = face.probe(path)
    report = progress or (lambda stage, done, total: None)
    expected = max(1, -(-info.frame_count // settings.frame_interval))

    sampler = face.FrameSampler(path, settings.frame_interval)
    crops: list[face.FaceCrop] = []
    timings = {"decode": 0.0, "detect": 0.0}
    sampled = 0
    report("decoding", 0, expected)
    for batch in _timed_batches(sampler, DETECT_BATCH, timings):
        if max_seconds is not None and batch[-1].time_s > max_seconds:
            raise face.UnreadableMediaError(f"The video is longer than {max_seconds:g} s, the most that is analysed.")
        report("detecting faces", sampled, expected)
        tick = time.perf_counter()
        found = detector.detect_many([frame.image for frame in batch])
        timings["detect"] += time.perf_counter() - tick
        for frame, faces in zip(batch, found, strict=True):
            crops += face.crop_faces(
                frame.image,
                faces,
                min_confidence=settings.min_face_confidence,
                margin=settings.crop_margin,
                frame_index=frame.index,
                time_s=frame.time_s,
            )
        sampled += len(batch)
        report("detecting faces", sampled, max(sampled, expected))

    report("classifying", sampled, sampled)
    tick = time.perf_counter()
    predictions = classifier.classify([crop.image for crop in crops])
    timings["classify"] = time.perf_counter() - tick
    verdict = custom_vision.decide(predictions)

    crop_results = [
        _crop_result(crop, prediction, crops_dir) for crop, prediction in zip(crops, predictions, strict=True)
    ]
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
        frame_interval=settings.frame_interval,
        frames_total=frames_total,
        frames_sampled=sampled,
        fps=round(fps, 3),
        duration_s=round(frames_total / fps, 3) if fps else 0.0,
        crops=crop_results,
        timings_s={name: round(seconds, 4) for name, seconds in timings.items()},
        warnings=warnings_for(crops),
    )


@dataclass(frozen=True)
class TimelinePoint:
    frame: int
    time_s: float
    deepfake_probability: float  # mean over the frame's faces


def timeline(result: Result) -> list[TimelinePoint]:
    """P(DeepFake) of each sampled frame that had a face, in time order: where in the video the
    suspicious parts are."""
    by_frame: dict[int, list[CropResult]] = {}
    for crop in result.crops:
        by_frame.setdefault(crop.frame, []).append(crop)
    return [
        TimelinePoint(
            frame,
            crops[0].time_s,
            round(sum(c.probabilities[custom_vision.DEEPFAKE] for c in crops) / len(crops), 4),
        )
        for frame, crops in sorted(by_frame.items())
    ]


def warnings_for(crops: list[face.FaceCrop]) -> list[str]:
    """The low-quality warning when most crops carry a quality flag (small face, blur)."""
    flagged = sum(1 for crop in crops if crop.quality_flags)
    return [LOW_QUALITY_WARNING] if crops and flagged * 2 > len(crops) else []


def _rounded(stats: TagStats) -> TagStats:
    return TagStats(*(round(value, 4) if isinstance(value, float) else value for value in dataclasses.astuple(stats)))


def _timed_batches(frames: Iterable[face.Frame], size: int, timings: dict[str, float]) -> Iterator[list[face.Frame]]:
    """Batches of frames, with the time spent decoding them added to ``timings["decode"]``."""
    iterator = iter(frames)
    while True:
        batch = []
        tick = time.perf_counter()
        for frame in iterator:
            batch.append(frame)
            if len(batch) == size:
                break
        timings["decode"] += time.perf_counter() - tick
        if not batch:
            return
        yield batch


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
    return Result(**values)
