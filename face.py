"""Frames and faces: sample a video, find faces with MTCNN, crop the eye/nose/mouth region.

This module imports nothing of the project but video (decoding), tf_runtime (TensorFlow, quietly) and
model (how the network resizes a crop, which the quality flags measure it at).
Images are RGB ``uint8`` arrays throughout.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

import model
import tf_runtime
import video
from video import UnreadableMediaError

# Pillow only reads photo headers here (sizes are checked against MAX_PIXELS before any decoding);
# its own bomb check would refuse to tell the size of exactly the files that need telling.
PIL.Image.MAX_IMAGE_PIXELS = None

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Quality flags. A crop whose shorter side is below SMALL_CROP_PX is one a video codec turns against the
# local model: of the real DFDC val crops shrunk and coded as H.264 at rate factor 36, it calls about a
# quarter or more DeepFake once they are under 80 px, several times its rate as cut (`flask probe-damage`
# measures it for any model; the shipped model's figures are in MODEL_CARD.md "Which damage it is").
# Until 2026-12-06 the bar was 48 px, and fewer than half of the re-encoded crops were flagged.
# BLUR_THRESHOLD is a variance of the Laplacian at 112 x 112 grey, the crop resized as the network
# resizes it (`model.resize`: by area when shrinking, linearly when enlarging): on DFDC crops the median
# is 61 and about one in eight falls below 15; the same crops shrunk 4x and blown up again have a median
# of 9. Video compression adds block edges that raise it, hence not a lower bar. Enlarged by area (in
# nearest-neighbour steps), as before 2026-12-05, a small face's pixel steps read as detail.
SMALL_CROP_PX = 80
MTCNN_SMALLEST_FACE = 20  # pixels of the reduced copy: the smallest face MTCNN looks for by default
BLUR_THRESHOLD = 15.0
SMALL_FACE = "small face"
BLURRY = "blurry"


class TooManyPixelsError(UnreadableMediaError):
    """The photo or the video's frames are larger than the limit: refused before decoding (a small
    PNG can unpack to gigabytes)."""

    def __init__(self, width: int, height: int, limit: int):
        super().__init__(f"The image is {width} x {height} pixels; at most {limit / 1e6:g} million can be analysed.")
        self.width, self.height, self.limit = width, height, limit


@dataclass(frozen=True)
class MediaInfo:
    """What is known of a video (or a photo, seen as a one-frame video) before decoding it."""

    kind: str  # "video" or "photo"
    fps: float
    known_frame_count: int | None  # from the container, an estimate (the decoder's count is final); None: untold
    width: int
    height: int

    @property
    def frame_count(self) -> int:
        """``known_frame_count``, or 1 when the container tells none (one frame at least is sampled)."""
        return self.known_frame_count or 1

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    image: np.ndarray


@dataclass(frozen=True)
class Face:
    """One MTCNN detection, in the coordinates of the image it was asked about."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    confidence: float
    keypoints: dict[str, tuple[float, float]]


@dataclass
class FaceCrop:
    """The eye/nose/mouth region of one face in one frame."""

    frame_index: int
    time_s: float
    face_index: int
    box: tuple[int, int, int, int]  # the crop's box in the full-resolution frame: x1, y1, x2, y2
    face: Face
    image: np.ndarray
    quality_flags: list[str] = field(default_factory=list)


def probe(path: str | Path, max_pixels: int | None = None) -> MediaInfo:
    """Tell whether ``path`` holds a photo or a video, by its content, and describe it.

    Raises UnreadableMediaError when it is neither (a text file renamed .mp4, a truncated file), and
    TooManyPixelsError, before decoding anything, when a photo or a video frame has more than
    ``max_pixels`` pixels.
    """
    path = str(path)
    size = _photo_size(path)
    if size is not None:
        _check_pixels(*size, max_pixels)
        photo = _read_photo(path)
        if photo is not None:
            height, width = photo.shape[:2]
            return MediaInfo("photo", fps=0.0, known_frame_count=1, width=width, height=height)
    with video.Video(path) as clip:
        _check_pixels(*clip.stored_size, max_pixels)
        height, width = clip.first_frame().shape[:2]  # upright
        return MediaInfo("video", fps=clip.fps, known_frame_count=clip.frame_count, width=width, height=height)


class FrameSampler:
    """Frame 0, ``interval``, 2 * ``interval``, ... of a video, upright, as RGB; a photo is frame 0.

    Iterate it once. Frames in between are decoded only when a later frame needs them (video.py).
    After iteration, ``frames_seen`` holds the number of frames the video really has (containers
    misreport it) and ``frames_decoded`` how many of them were decoded.
    """

    def __init__(self, path: str | Path, interval: int, max_pixels: int | None = None):
        if interval < 1:
            raise ValueError("interval must be at least 1")
        self.path = str(path)
        self.interval = interval
        self.max_pixels = max_pixels
        self.frames_seen = 0
        self.frames_decoded = 0

    def __iter__(self) -> Iterator[Frame]:
        size = _photo_size(self.path)
        if size is not None:
            _check_pixels(*size, self.max_pixels)
            photo = _read_photo(self.path)
            if photo is not None:
                self.frames_seen = 1
                yield Frame(0, 0.0, photo)
                return
        with video.Video(self.path) as clip:
            _check_pixels(*clip.stored_size, self.max_pixels)
            fps = clip.fps
            for index, image in clip.sampled(self.interval):
                yield Frame(index, index / fps, image)
            self.frames_seen, self.frames_decoded = clip.frames_seen, clip.frames_decoded


class FaceDetector:
    """MTCNN with a lock (TensorFlow graphs are shared) and detection on a reduced copy."""

    def __init__(self, max_side: int = 640):
        tf_runtime.load()  # here, not at the top: TensorFlow takes seconds to load
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self._lock = threading.Lock()
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (RGB), with boxes and keypoints in its own pixel coordinates."""
        return self.detect_many([image])[0]

    def detect_many(self, images: list[np.ndarray], min_face_fraction: float = 0.0) -> list[list[Face]]:
        """Faces in each of ``images``, in one MTCNN batch (several times faster than one by one).
        Faces smaller than ``min_face_fraction`` of an image's shorter side need not be found: the
        reduced copy is then made just large enough that such a face still spans MTCNN's smallest
        size (20 pixels), never larger than ``max_side``; 0: the copy is ``max_side`` long. (MTCNN's
        own `min_face_size` would say the same, but mtcnn 1.0 then builds a pyramid that finds
        nothing at all past about 28 pixels.)"""
        if not images:
            return []
        scales, smalls = [], []
        for image in images:
            height, width = image.shape[:2]
            scale = min(1.0, self.max_side / max(height, width)) if self.max_side else 1.0
            if min_face_fraction > 0:
                scale = min(scale, MTCNN_SMALLEST_FACE / (min_face_fraction * min(height, width)))
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scales.append(scale)
            smalls.append(image)
        with self._lock:
            found = self._mtcnn.detect_faces(smalls)
        return [[_to_face(item, scale) for item in items] for items, scale in zip(found, scales, strict=True)]


def _to_face(item: dict, scale: float) -> Face:
    x, y, w, h = (float(v) / scale for v in item["box"])
    keypoints = {
        name: (float(item["keypoints"][name][0]) / scale, float(item["keypoints"][name][1]) / scale)
        for name in KEYPOINT_NAMES
    }
    return Face(
        box=(round(x), round(y), round(x + w), round(y + h)), confidence=float(item["confidence"]), keypoints=keypoints
    )


@functools.cache
def get_detector(max_side: int = 640) -> FaceDetector:
    """The process's MTCNN detector, built on first use and then shared."""
    log.info("loading the MTCNN face detector")
    return FaceDetector(max_side=max_side)


def crop_box(keypoints: dict[str, tuple[float, float]], margin: float, width: int, height: int):
    """The box spanned by the five keypoints, widened by ``margin`` of its size on every side,
    clipped to the image. None when the keypoints span no area."""
    xs = [keypoints[name][0] for name in KEYPOINT_NAMES]
    ys = [keypoints[name][1] for name in KEYPOINT_NAMES]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    pad_x, pad_y = (x2 - x1) * margin, (y2 - y1) * margin
    box = (
        max(0, int(np.floor(x1 - pad_x))),
        max(0, int(np.floor(y1 - pad_y))),
        min(width, int(np.ceil(x2 + pad_x))),
        min(height, int(np.ceil(y2 + pad_y))),
    )
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    return box


# A face turned at least this far (`head_turn`) counts as turned: on DFDC's test crops the shipped
# model tells fakes at ROC AUC 0.92 below it and 0.82 past it (`evaluate`, by head turn; MODEL_CARD.md,
# "Turned faces").
TURNED = 0.2


def head_turn(keypoints: dict[str, tuple[float, float]]) -> float | None:
    """How far a face is turned to one side, read from its keypoints: the nose's offset from the
    midpoint of the eyes, along the line through them, in eye distances (about 0 facing the camera,
    0.3 and more well turned to one side). The same whatever the face's size, place and tilt; None
    when the eyes fall on one point."""
    (lx, ly), (rx, ry), (nx, ny) = (keypoints[name] for name in ("left_eye", "right_eye", "nose"))
    across_x, across_y = rx - lx, ry - ly
    squared = across_x**2 + across_y**2
    if squared == 0:
        return None
    along = (nx - (lx + rx) / 2) * across_x + (ny - (ly + ry) / 2) * across_y
    return abs(along) / squared


def is_turned(keypoints: dict[str, tuple[float, float]]) -> bool:
    """Whether a face is turned to one side: `head_turn` at least TURNED."""
    turn = head_turn(keypoints)
    return turn is not None and turn >= TURNED


def crop_faces(
    image: np.ndarray,
    faces: list[Face],
    *,
    min_confidence: float,
    margin: float,
    frame_index: int = 0,
    time_s: float = 0.0,
) -> list[FaceCrop]:
    """Every face of ``faces`` (found in ``image`` by FaceDetector) with confidence >=
    ``min_confidence``, as eye/nose/mouth crops, left to right.

    The same function serves video frames (at analysis time) and single photos (when building a
    training set), so a model sees the same kind of crop in training and in use.
    """
    height, width = image.shape[:2]
    crops = []
    for face in sorted(faces, key=lambda face: face.box[0]):
        if face.confidence < min_confidence:
            continue
        box = crop_box(face.keypoints, margin, width, height)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        crops.append(
            FaceCrop(
                frame_index=frame_index,
                time_s=time_s,
                face_index=len(crops),
                box=box,
                face=face,
                image=np.ascontiguousarray(image[y1:y2, x1:x2]),
                quality_flags=quality_flags(image[y1:y2, x1:x2]),
            )
        )
    return crops


def quality_flags(crop: np.ndarray, detail: float | None = None) -> list[str]:
    """What makes a crop a weak witness: too few pixels, or too little detail (blur, heavy compression).
    ``detail``: the crop's `sharpness` when it has been measured already."""
    flags = []
    if min(crop.shape[:2]) < SMALL_CROP_PX:
        flags.append(SMALL_FACE)
    if (sharpness(crop) if detail is None else detail) < BLUR_THRESHOLD:
        flags.append(BLURRY)
    return flags


def sharpness(crop: np.ndarray) -> float:
    """How much fine detail a crop holds: the variance of the Laplacian of its grey at 112 x 112, resized
    as the network resizes it (see BLUR_THRESHOLD)."""
    grey = cv2.cvtColor(model.resize(crop, 112), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def encode_jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    """JPEG bytes of an RGB image."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return buffer.tobytes()


def read_image(path: str | Path) -> np.ndarray:
    """A photo as an RGB array, upright by its EXIF orientation."""
    image = _read_photo(str(path))
    if image is None:
        raise UnreadableMediaError(f"{path} is not a photo that can be read.")
    return image


def _photo_size(path: str) -> tuple[int, int] | None:
    """A photo's width and height from its header alone (Pillow reads no pixels to tell them);
    None when the file is not a photo Pillow knows."""
    try:
        with PIL.Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise TooManyPixelsError(width, height, max_pixels)


def _read_photo(path: str) -> np.ndarray | None:
    # imread looks at the file's signature, not its name, and applies EXIF orientation.
    try:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
