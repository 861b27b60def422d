"""The original's manual workflow as commands: videos -> MTCNN crops -> labelled dataset -> model.

No Flask in here: app.py wraps these functions as CLI commands with progress bars.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import augmentation
import custom_vision
import face
import metrics
import model
import pipeline
import sharpness
import tf_runtime
from unfinished_training import UnfinishedTraining

log = logging.getLogger(__name__)

LABELS = ("real", "fake")
LABELS_FILE = "labels.csv"
NO_FACE_FILE = "no_face.csv"
LABEL_COLUMNS = ("crop", "label", "group", "split", "source", "frame", "context", "keypoints", "crop_box")
DETECT_BATCH = 32
# The face region kept around each crop (the MTCNN box grown this much about its centre), so that
# pseudo-fakes can be blended from the whole face and the crop cut from the blend afterwards.
CONTEXT_SCALE = 1.6
UNFINISHED_FOLDER = "unfinished"  # in train's out folder: what a stopped training goes on from (`UnfinishedTraining`)


@dataclass(frozen=True)
class Source:
    """One labelled video or image to take crops from."""

    path: Path
    name: str  # the path relative to the source folder, as written in labels.csv
    label: str
    group: str
    split: str


@dataclass
class BuildReport:
    sources_total: int = 0
    sources_skipped: int = 0  # done by an earlier run
    sources_done: int = 0
    crops_written: int = 0
    no_face: int = 0  # sources (images, or videos with no face in any sampled frame) with no face
    unreadable: int = 0


def find_sources(src: Path) -> list[Source]:
    """The labelled files under ``src``: its ``metadata.csv`` (file, label, group, split) if it has
    one, else every video and image in its ``real/`` and ``fake/`` folders."""
    metadata = src / "metadata.csv"
    if metadata.is_file():
        with metadata.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        missing = {"file", "label"} - set(rows[0] if rows else {})
        if missing:
            raise ValueError(f"{metadata} lacks the column(s) {', '.join(sorted(missing))}")
        return [
            Source(
                path=src / row["file"],
                name=row["file"],
                label=_label(row["label"], metadata),
                group=row.get("group") or row["file"],
                split=row.get("split") or split_for(row.get("group") or row["file"]),
            )
            for row in rows
        ]
    sources = []
    for label in LABELS:
        folder = src / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in face.VIDEO_EXTENSIONS + face.IMAGE_EXTENSIONS and path.is_file():
                name = path.relative_to(src).as_posix()
                sources.append(Source(path, name, label, group=name, split=split_for(name)))
    if not sources:
        raise ValueError(f"{src} has neither a metadata.csv nor videos or images in real/ and fake/")
    return sources


def split_for(group: str) -> str:
    """A stable train/val/test split (80/10/10) by group, so no group crosses splits."""
    bucket = int(hashlib.sha256(group.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def build_dataset(
    src: Path,
    out: Path,
    *,
    detector: face.FaceDetector,
    frame_interval: int,
    min_confidence: float,
    margin: float,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Crop every labelled source under ``src`` with face.py's own crop step into ``out``.

    Writes ``out/crops/<label>/...jpg`` and ``out/labels.csv``; sources with no face go to
    ``out/no_face.csv``. Sources already in either file are skipped, so a rerun resumes.
    ``progress`` is called with the number of sources finished since the last call.
    """
    sources = find_sources(src)
    out.mkdir(parents=True, exist_ok=True)
    done = _done_sources(out)
    report = BuildReport(sources_total=len(sources))
    todo = [source for source in sources if source.name not in done]
    report.sources_skipped = len(sources) - len(todo)
    if progress and report.sources_skipped:
        progress(report.sources_skipped)

    labels_path, no_face_path = out / LABELS_FILE, out / NO_FACE_FILE
    new_labels = not labels_path.exists()
    new_no_face = not no_face_path.exists()
    with labels_path.open("a", newline="") as labels_handle, no_face_path.open("a", newline="") as no_face_handle:
        labels = csv.writer(labels_handle)
        no_faces = csv.writer(no_face_handle)
        if new_labels:
            labels.writerow(LABEL_COLUMNS)
        if new_no_face:
            no_faces.writerow(("source", "reason"))
        pending: dict[str, list[tuple]] = {}  # a source's rows, written once all its frames are done
        for batch in pipeline.batches(_frames_of(todo, frame_interval, report, no_faces), DETECT_BATCH):
            found = detector.detect_many([frame.image for _, frame, _ in batch])
            for (source, frame, last), faces in zip(batch, found, strict=True):
                crops = face.crop_faces(
                    frame.image,
                    faces,
                    min_confidence=min_confidence,
                    margin=margin,
                    frame_index=frame.index,
                    time_s=frame.time_s,
                )
                for crop in crops:
                    relative = _crop_name(source, crop)
                    context_name, keypoints, crop_box = _write_context(out, relative, frame.image, crop)
                    target = out / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(face.encode_jpeg(crop.image))
                    rows = pending.setdefault(source.name, [])
                    rows.append(
                        (
                            relative,
                            source.label,
                            source.group,
                            source.split,
                            source.name,
                            crop.frame_index,
                            context_name,
                            keypoints,
                            crop_box,
                        )
                    )
                if last:
                    rows = pending.pop(source.name, [])
                    labels.writerows(rows)
                    if not rows:
                        no_faces.writerow((source.name, "no face"))
                        report.no_face += 1
                    report.crops_written += len(rows)
                    report.sources_done += 1
                    if progress:
                        progress(1)
            labels_handle.flush()
            no_face_handle.flush()
    return report


def _frames_of(
    sources: list[Source], interval: int, report: BuildReport, no_faces
) -> Iterator[tuple[Source, face.Frame, bool]]:
    """Every sampled frame of every source, flagged when it is its source's last, so that frames
    of many images share one MTCNN batch. Unreadable sources are recorded and passed over."""
    for source in sources:
        try:
            frames = list(face.FrameSampler(source.path, interval))
            if not frames:
                raise face.UnreadableMediaError("no frame could be decoded")
        except (face.UnreadableMediaError, OSError, cv2.error) as error:
            log.warning("skipping %s: %s", source.name, error)
            no_faces.writerow((source.name, f"unreadable: {error}"))
            report.unreadable += 1
            report.sources_done += 1
            continue
        for position, frame in enumerate(frames):
            yield source, frame, position == len(frames) - 1


def _write_context(out: Path, crop_name: str, frame: np.ndarray, crop: face.FaceCrop) -> tuple[str, str, str]:
    """Save the face region around ``crop`` (``contexts/...``, JPEG quality 95) and give its name,
    the five keypoints and the crop's box in its own pixel coordinates, as labels.csv writes them."""
    height, width = frame.shape[:2]
    fx1, fy1, fx2, fy2 = crop.face.box
    cx, cy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
    half = max(fx2 - fx1, fy2 - fy1) * CONTEXT_SCALE / 2
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    # The crop must lie inside the context, even where keypoints stray outside the face box.
    x1, y1 = min(x1, crop.box[0]), min(y1, crop.box[1])
    x2, y2 = max(x2, crop.box[2]), max(y2, crop.box[3])
    name = "contexts/" + crop_name.removeprefix("crops/")
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(face.encode_jpeg(frame[y1:y2, x1:x2], quality=95))
    keypoints = " ".join(
        f"{crop.face.keypoints[key][0] - x1:.1f} {crop.face.keypoints[key][1] - y1:.1f}" for key in face.KEYPOINT_NAMES
    )
    box = crop.box
    return name, keypoints, f"{box[0] - x1} {box[1] - y1} {box[2] - x1} {box[3] - y1}"


def _crop_name(source: Source, crop: face.FaceCrop) -> str:
    stem = Path(source.name).with_suffix("").as_posix().replace("/", "__")
    return f"crops/{source.label}/{stem}_f{crop.frame_index:06d}_{crop.face_index}.jpg"


def _done_sources(out: Path) -> set[str]:
    done = set()
    for name, column in ((LABELS_FILE, "source"), (NO_FACE_FILE, "source")):
        path = out / name
        if path.exists():
            with path.open(newline="") as handle:
                done.update(row[column] for row in csv.DictReader(handle))
    return done


def _label(value: str, where: Path) -> str:
    label = value.strip().lower()
    if label not in LABELS:
        raise ValueError(f"{where}: label {value!r} is neither 'real' nor 'fake'")
    return label


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 6
    input_size: int = model.INPUT_SIZE
    group_batches: bool = True  # a group's crops (a real video and the fakes made from it) share a batch
    pseudo_fakes: bool = True  # every real face is also shown as a self-blended pseudo-fake, new each epoch
    degrade: bool = True  # the same random degradations of poor video for every class
    codec_share: float = 0.5  # the share of those degradations coded as H.264 rather than JPEG (0: JPEG only)
    paired_views: bool = True  # a real face and its pseudo-fake shown alike: they differ by the blend alone
    recolour: bool = True  # the same random colours of other cameras, light and grading for every class
    light_and_pose: bool = True  # the same random head tilts, framings and side light for every class
    dfdc_fake_share: float = 0.25  # with pseudo-fakes: the share of the dataset's own fakes shown each epoch
    sharpness_matched_fakes: bool = False  # draw those fakes spread over sharpness as the real faces are
    part_share: float = 0.3  # the share of pseudo-fakes blended over one part of the face (mouth, eyes, nose)
    low_res_share: float = 0.3  # the share of pseudo-fakes whose blended-in face was rendered at a lower resolution
    swap_share: float = 0.6  # the share of pseudo-fakes that blend in another real face of the split (Face X-ray)
    outline_share: float = 0.5  # the share of whole-face pseudo-fake masks drawn out to where a swap's seam runs
    erase_share: float = 0.0  # the share of crops, every class alike, with a patch painted over (`augmentation.erased`)
    soft_share: float = 0.0  # the share of self-blends whose copy is only softer (`augmentation.softened_copy`)
    smooth_share: float = 0.5  # of the softer copies, the share smoothed with edges kept (`augmentation.smoothed_copy`)
    extra_soft_share: float = 0.2  # the share of real faces shown once more, as a softer self-blend (SOFT_FAKE)
    soft_part_share: float = 0.3  # the share of those softer self-blends blended over one part of the face
    extra_part_share: float = 0.0  # the share of real faces shown once more, as a self-blend over one part (PART_FAKE)
    soft_real_share: float = 0.0  # the share of real faces shown once more, softened whole, as real (SOFT_REAL)
    deform_share: float = 0.0  # the share of pseudo-fake masks bent out of shape (`augmentation.deformed`)
    fake_weight: float = 0.45  # the fakes' share of the loss: below half, a face that shows no trace leans real
    turned_weight: float = 1.0  # how much more an example of a turned face (`face.TURNED`) counts in the loss; 1: alike
    label_smoothing: float = 0.0  # labels drawn in to s/2 and 1 - s/2: the loss stops rewarding certainty past them
    sharpness_rho: float = 0.0  # sharpness-aware steps of this radius (`sharpness`; SBI's 0.05); 0: plain steps
    xray_weight: float = 0.0  # the weight of a second loss: the blend boundary's map (face X-ray) of each crop; 0: none
    init: str = ""  # a trained .keras model of the same shape to start from (fine-tuning); "": from scratch
    widths: tuple[int, ...] = model.WIDTHS  # the filters of each stage of the network (see `model.build`)
    batch_size: int = 128
    learning_rate: float = 5e-4
    keep_epoch: str = "best"  # the epoch whose weights are kept (`kept_of`): "best" val score, or "last"
    weight_decay: float = 1e-4
    stem: int = 16
    dropout: float = 0.3
    seed: int = 1234
    limit: int = 0  # use at most this many crops per split (0: all); for quick trials


# What a training example is made as. A SOFT_FAKE is a self-blend whose copy is only softer
# (`augmentation.softened_copy`), shown on top of the face's pseudo-fake (`TrainConfig.extra_soft_share`);
# a PART_FAKE a self-blend over one part of the face (`augmentation.part_mask`: the mouth, the eyes or the
# nose, where a reenactment changes the face), shown on top of it too (`TrainConfig.extra_part_share`).
# A SOFT_REAL is a real face whose whole face region is softened as a SOFT_FAKE's copy is: the softness
# without the seam, labelled real (`TrainConfig.soft_real_share`), so that a face filmed soft is no cue.
REAL, PSEUDO_FAKE, DATASET_FAKE, SOFT_FAKE, PART_FAKE, SOFT_REAL = 0, 1, 2, 3, 4, 5
REAL_KINDS = (REAL, SOFT_REAL)


def count_rows(dataset: Path, splits: str | tuple[str, ...] | None) -> int:
    """How many crops of ``splits`` (all when None) labels.csv lists."""
    splits = (splits,) if isinstance(splits, str) else splits
    with (dataset / LABELS_FILE).open(newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if splits is None or row["split"] in splits)


@dataclass
class Faces:
    """The faces of one split as build-dataset kept them: the face region around each crop, its
    keypoints and crop box in that region's pixels, the label (1 = fake) and the labels.csv row."""

    contexts: list[np.ndarray]
    keypoints: np.ndarray  # n x 5 x 2
    boxes: np.ndarray  # n x 4: x1, y1, x2, y2
    labels: np.ndarray
    rows: list[dict]

    def __len__(self) -> int:
        return len(self.rows)

    def donor_for(self, index: int, rng: np.random.Generator, candidates: int = 16) -> int:
        """Another real face to blend into face ``index``: of ``candidates`` drawn at random, the one
        whose keypoints are laid out most like this face's (as Face X-ray picks its donors), so that
        the faces line up when one is moved onto the other."""
        reals = np.flatnonzero(self.labels == 0)
        drawn = rng.choice(reals, size=min(candidates, len(reals)), replace=False)
        drawn = drawn[drawn != index]
        if not len(drawn):
            return index
        layouts = _layouts(self.keypoints[drawn])
        distances = np.linalg.norm(layouts - _layouts(self.keypoints[index : index + 1]), axis=(1, 2))
        return int(drawn[np.argmin(distances)])

    @functools.cached_property
    def crop_sharpness(self) -> np.ndarray:
        """`face.sharpness` of each face's crop as cut."""
        return np.array(
            [
                face.sharpness(context[y1:y2, x1:x2])
                for context, (x1, y1, x2, y2) in zip(self.contexts, self.boxes, strict=True)
            ]
        )

    def turned(self) -> np.ndarray:
        """Which faces are turned to one side (`face.head_turn` at least `face.TURNED`)."""
        return head_turns(self.keypoints) >= face.TURNED  # NaN (eyes on one point) is not turned

    def crop(self, index: int, kind: int, *args, **kwargs) -> np.ndarray:
        """The crop alone of `crop_and_xray` (the same arguments, without ``xray_size``)."""
        return self.crop_and_xray(index, kind, *args, **kwargs)[0]

    def crop_and_xray(
        self,
        index: int,
        kind: int,
        size: int | None,
        rng: np.random.Generator | None,
        degrade: bool,
        part_share: float = 0.0,
        recolour: float = 0.0,
        light_and_pose: float = 0.0,
        low_res_share: float = 0.0,
        swap_share: float = 0.0,
        xray_size: int = 0,
        codec_share: float = 0.0,
        view_rng: np.random.Generator | None = None,
        outline_share: float = 0.0,
        erase_share: float = 0.0,
        soft_share: float = 0.0,
        deform_share: float = 0.0,
        smooth_share: float = 0.0,
        soft_part_share: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The crop the network sees for face ``index`` made as ``kind`` (a SOFT_FAKE blends in a copy only made
        softer, a PART_FAKE blends over one part of the face, whatever the shares; a SOFT_REAL is such a softer
        copy whole, with no blend), resized to size x size (None: as cut). With ``rng`` the box is jittered and
        the crop flipped at random; ``part_share`` of the pseudo-fakes are blended over one part of the face
        (of the SOFT_FAKEs ``soft_part_share``, when given: a reenactment re-renders a part of a face softer),
        ``swap_share`` of them blend in another real face (`augmentation.blend_other_face`), ``soft_share`` of
        the others a copy only made softer (`augmentation.softened_copy`; ``smooth_share`` of the softer copies,
        a SOFT_FAKE's too, smoothed with their edges kept, `augmentation.smoothed_copy`) and ``low_res_share``
        of the rest a copy rendered at a lower resolution; ``outline_share`` of the whole-face masks reach the
        face's outline (`augmentation.outline_mask`), and ``deform_share`` of all masks are bent out of shape
        (`augmentation.deformed`); ``recolour`` of the crops are shown in other colours
        (`augmentation.recolour`); ``light_and_pose`` of them tilted and reframed (`augmentation.reframed`) and,
        drawn apart, lit from one side (`augmentation.relight`); ``degrade`` adds the random degradations,
        ``codec_share`` of them coded as H.264; and ``erase_share`` of the crops have a patch painted over
        (`augmentation.erased`), drawn last, so that every other draw is as without it.

        ``view_rng``, when given, draws how the face is shown (tilt and framing, box jitter, side
        light, colours, degradations, flip) in place of ``rng``, which still draws the blend: a real
        face and its pseudo-fake given generators seeded alike are shown alike and differ by the blend
        alone, as Self-Blended Images shows its pairs (`TrainConfig.paired_views`).

        Beside it, with ``xray_size``, the crop's face X-ray (Li et al., CVPR 2020) at xray_size x
        xray_size: 4 m (1 - m) for the blend mask m cut, turned and flipped as the crop was, so it is
        1 where a pixel is an even mix of two sources and 0 where it comes from one. A real face's
        X-ray is all 0; a dataset fake's is unknown (None). The X-ray draws no random numbers: the
        crop is the same with or without it."""
        image, mask = self.contexts[index], None
        if kind == PSEUDO_FAKE and swap_share and rng.random() < swap_share:
            donor = self.donor_for(index, rng)
            image, mask = augmentation.blend_other_face(
                image,
                self.keypoints[index],
                self.contexts[donor],
                self.keypoints[donor],
                rng,
                part_share,
                outline_share,
                deform_share,
            )
        elif kind in (PSEUDO_FAKE, SOFT_FAKE, PART_FAKE):  # a self-blend; the kinds on top fix its copy or its mask
            image, mask = augmentation.self_blend(
                image,
                self.keypoints[index],
                rng,
                1.0 if kind == PART_FAKE else _part_share_of(kind, part_share, soft_part_share),
                low_res_share,
                outline_share,
                1.0 if kind == SOFT_FAKE else soft_share,
                deform_share=deform_share,
                smooth_share=smooth_share,
            )
        elif kind == SOFT_REAL:
            image = augmentation.softened_copy(image, rng)
        box = tuple(int(v) for v in self.boxes[index])
        keep_mask = xray_size and mask is not None  # a pseudo-fake's
        view = rng if view_rng is None else view_rng
        if light_and_pose and view.random() < light_and_pose:
            if keep_mask:  # turned with the image, as a fourth channel
                mask_channel = np.rint(mask * 255).astype(np.uint8)[..., None]
                turned, box = augmentation.reframed(np.concatenate([image, mask_channel], axis=2), box, view)
                image, mask = turned[..., :3], turned[..., 3].astype(np.float32) / 255
            else:
                image, box = augmentation.reframed(image, box, view)
        if view is not None:
            box = augmentation.jittered_box(box, image.shape[1], image.shape[0], view)
        x1, y1, x2, y2 = box
        crop = image[y1:y2, x1:x2]
        if light_and_pose and view.random() < light_and_pose:
            crop = augmentation.relight(crop, view)
        if recolour and view.random() < recolour:
            crop = augmentation.recolour(crop, view)
        if degrade:
            crop = augmentation.degrade(crop, view, codec_share)
        if size:
            crop = model.resize(crop, size)
        xray = None
        if keep_mask:
            cut = mask[y1:y2, x1:x2]
            xray = cv2.resize(4 * cut * (1 - cut), (xray_size, xray_size), interpolation=cv2.INTER_AREA)
        elif kind in REAL_KINDS and xray_size:
            xray = np.zeros((xray_size, xray_size), dtype=np.float32)
        if view is not None and view.random() < 0.5:
            crop = crop[:, ::-1]
            xray = None if xray is None else xray[:, ::-1]
        if erase_share and view is not None and view.random() < erase_share:
            crop, (x1, y1, x2, y2) = augmentation.erased(crop, view)
            if xray is not None:  # no blend left under the patch: each X-ray cell keeps the share it leaves
                covered = np.zeros(crop.shape[:2], dtype=np.float32)
                covered[y1:y2, x1:x2] = 1
                xray = xray * (1 - cv2.resize(covered, xray.shape[::-1], interpolation=cv2.INTER_AREA))
        return crop, xray


def keypoints_of(rows: list[dict]) -> np.ndarray:
    """The keypoints of labels.csv rows (x y of each of `face.KEYPOINT_NAMES`), n x 5 x 2."""
    return np.array([row["keypoints"].split() for row in rows], dtype=np.float32).reshape(-1, 5, 2)


def head_turns(keypoints: np.ndarray) -> np.ndarray:
    """`face.head_turn` of each face of ``keypoints`` (n x 5 x 2); NaN where the eyes fall on one point."""
    turns = [face.head_turn(dict(zip(face.KEYPOINT_NAMES, points, strict=True))) for points in keypoints]
    return np.array([np.nan if turn is None else turn for turn in turns], dtype=float)


def _layouts(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints (n x 5 x 2) about their centre, in units of their spread: how a face's features are
    laid out, whatever its size and place."""
    centred = keypoints - keypoints.mean(axis=1, keepdims=True)
    return centred / np.maximum(np.linalg.norm(centred, axis=(1, 2), keepdims=True), 1e-6)


def load_faces(dataset: Path, split: str, limit: int = 0) -> Faces:
    """The faces of ``split``, read into memory."""
    with (dataset / LABELS_FILE).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    if rows and not rows[0].get("context"):
        raise ValueError(f"{dataset / LABELS_FILE} has no face regions (context column): rebuild it with build-dataset")
    if limit and len(rows) > limit:
        keep = np.random.default_rng(0).choice(len(rows), size=limit, replace=False)
        rows = [rows[index] for index in sorted(keep)]
    return Faces(
        contexts=[face.read_image(dataset / row["context"]) for row in rows],
        keypoints=keypoints_of(rows),
        boxes=np.array([row["crop_box"].split() for row in rows], dtype=np.int32).reshape(-1, 4),
        labels=np.array([row["label"] == "fake" for row in rows], dtype=np.float32),
        rows=rows,
    )


def epoch_plan(faces: Faces, config: TrainConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """One epoch's examples as (face index, kind), in the order they are shown.

    Every real face is shown as itself and, with pseudo-fakes, once more as a pseudo-fake made anew, and
    ``extra_soft_share`` of them once more as a softer self-blend (SOFT_FAKE) and ``extra_part_share`` once
    more as a self-blend over one part of the face (PART_FAKE), so that these add to the other pseudo-fakes
    instead of taking their place (``soft_share``, ``part_share``), and ``soft_real_share`` once more
    softened whole, as a real face (SOFT_REAL); the dataset's own fakes are shown at ``dfdc_fake_share``
    (all of them without pseudo-fakes; with ``sharpness_matched_fakes`` each at that share times its
    `sharpness_matched_odds`). With group batches a group's examples are next to each other, so a real face,
    its pseudo-fake and the swaps made from it share a batch and the network learns what changed, not who is
    filmed.
    """
    groups: dict[str, list[tuple[int, int]]] = {}
    matched = config.pseudo_fakes and config.sharpness_matched_fakes
    fake_odds = sharpness_matched_odds(faces) if matched else None
    for index, row in enumerate(faces.rows):
        if faces.labels[index] == 0:
            kinds = [REAL, PSEUDO_FAKE] if config.pseudo_fakes else [REAL]
            if config.pseudo_fakes and config.extra_soft_share and rng.random() < config.extra_soft_share:
                kinds.append(SOFT_FAKE)  # no draw at 0: older plans stay as drawn
            if config.pseudo_fakes and config.extra_part_share and rng.random() < config.extra_part_share:
                kinds.append(PART_FAKE)  # likewise
            if config.soft_real_share and rng.random() < config.soft_real_share:
                kinds.append(SOFT_REAL)  # likewise
        else:
            share = config.dfdc_fake_share if config.pseudo_fakes else 1.0
            if fake_odds is not None:
                share = min(1.0, share * fake_odds[index])
            kinds = [DATASET_FAKE] if rng.random() < share else []
        key = row["group"] if config.group_batches else f"{index}"
        groups.setdefault(key, []).extend((index, kind) for kind in kinds)
    blocks = list(groups.values())
    plan = []
    for position in rng.permutation(len(blocks)):
        block = blocks[position]
        plan.extend(block[i] for i in rng.permutation(len(block)))
    return plan


def sharpness_matched_odds(faces: Faces, bands: int = 4) -> np.ndarray:
    """For each dataset fake, how much more (above 1) or less often to show it than the share says, so
    that the fakes shown are spread over sharpness (`Faces.crop_sharpness`) as the real faces are: the
    real faces' share of its band (``bands`` bands, each holding as many real faces) over the fakes'
    share. DFDC's fakes are softer than its real faces (38% of its test fakes in the softest quarter of
    the real faces, 14% in the sharpest), and shown as they come they teach that soft is fake. 1 for the
    real faces."""
    real = faces.labels == 0
    sharpness = faces.crop_sharpness
    if real.all() or not real.any():
        return np.ones(len(faces))
    band, _ = metrics.quantile_bands(sharpness, sharpness[real], bands)
    fakes_in_band = np.bincount(band[~real], minlength=bands) / (~real).sum()
    odds = (1 / bands) / np.maximum(fakes_in_band, 1e-12)
    return np.where(real, 1.0, odds[band])


def training_batches(faces: Faces, config: TrainConfig, workers: int = 2, skip: int = 0) -> Iterator[tuple]:
    """Endless (crops, labels, sample weights) batches, epoch after epoch, each epoch with new
    pseudo-fakes and degradations; the first ``skip`` batches are passed over without being made (a
    resumed training has shown them). Sample weights give the fakes ``fake_weight`` of the loss, however
    many of them the epoch holds; within each class an example of a turned face counts
    ``turned_weight`` times another (`example_weights`). With ``xray_weight`` the labels and the
    weights are pairs: beside the labels, each crop's face X-ray at `xray_size`
    (`Faces.crop_and_xray`), weighed 1 for real faces and pseudo-fakes and 0 for the dataset's fakes,
    whose blend masks are unknown."""
    from concurrent.futures import ThreadPoolExecutor

    xray_size = model.xray_size(config.input_size) if config.xray_weight else 0
    seeds = np.random.SeedSequence(stream_entropy(config))
    turned = faces.turned()
    with ThreadPoolExecutor(workers) as pool:  # OpenCV lets go of the GIL: threads make crops in parallel
        while True:
            (epoch_seed,) = seeds.spawn(1)  # the n-th epoch's is the n-th child, as spawn(n) would give it
            rng = np.random.default_rng(epoch_seed)
            plan = epoch_plan(faces, config, rng)
            labels = np.array([kind not in REAL_KINDS for _, kind in plan], dtype=np.float32)
            weights = example_weights(labels, turned[[index for index, _ in plan]], config)
            views = int(rng.integers(2**63)) if config.paired_views else None  # no draw when not paired
            for start in range(0, len(plan), config.batch_size):
                batch = plan[start : start + config.batch_size]
                batch_seed = rng.integers(2**63)
                if skip:
                    skip -= 1
                    continue
                crop_seeds = np.random.SeedSequence(batch_seed).spawn(len(batch))
                made = list(
                    pool.map(
                        lambda item, views=views: faces.crop_and_xray(
                            item[0][0],
                            item[0][1],
                            config.input_size,
                            np.random.default_rng(item[1]),
                            config.degrade,
                            config.part_share,
                            augmentation.RECOLOUR_SHARE if config.recolour else 0.0,
                            augmentation.LIGHT_AND_POSE_SHARE if config.light_and_pose else 0.0,
                            config.low_res_share,
                            config.swap_share,
                            xray_size,
                            config.codec_share,
                            _view_rng(views, *item[0]),
                            outline_share=config.outline_share,
                            erase_share=config.erase_share,
                            soft_share=config.soft_share,
                            deform_share=config.deform_share,
                            smooth_share=config.smooth_share,
                            soft_part_share=config.soft_part_share,
                        ),
                        zip(batch, crop_seeds, strict=True),
                    )
                )
                crops = np.stack([crop for crop, _ in made])
                y, batch_weights = labels[start : start + len(batch)], weights[start : start + len(batch)]
                if not xray_size:
                    yield crops, y, batch_weights
                    continue
                unknown = np.zeros((xray_size, xray_size), dtype=np.float32)
                xrays = np.stack([unknown if xray is None else xray for _, xray in made])[..., None]
                known = np.array([xray is not None for _, xray in made], dtype=np.float32)[:, None, None]  # per pixel
                yield crops, (y, xrays), (batch_weights, known)


def _part_share_of(kind: int, part_share: float, soft_part_share: float | None) -> float:
    """The share of a self-blend of ``kind`` blended over one part of the face: a SOFT_FAKE's
    ``soft_part_share`` when given, every other pseudo-fake's ``part_share``."""
    return soft_part_share if kind == SOFT_FAKE and soft_part_share is not None else part_share


def example_weights(labels: np.ndarray, turned: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Each example's weight in the loss (``labels``: 1 for a fake; ``turned``: its face is turned):
    the fakes together weigh ``fake_weight`` of the total, the real faces the rest, and within a
    class an example of a turned face weighs ``turned_weight`` times another. The weights average 1."""
    emphasis = np.where(turned, config.turned_weight, 1.0)
    fake = labels == 1
    share = np.where(fake, config.fake_weight, 1 - config.fake_weight)
    mass = np.where(fake, max(emphasis[fake].sum(), 1.0), max(emphasis[~fake].sum(), 1.0))
    return (len(labels) * share * emphasis / mass).astype(np.float32)


def _view_rng(views: int | None, index: int, kind: int) -> np.random.Generator | None:
    """With paired views (``views``: the epoch's draw for them), how face ``index`` is shown this epoch,
    the same for the real face and its pseudo-fake; None (the example's own draws) otherwise and for
    the dataset's fakes, which have no pair."""
    if views is None or kind == DATASET_FAKE:
        return None
    return np.random.default_rng([views, index])


def stream_entropy(config: TrainConfig) -> list[int]:
    """What seeds the training examples (epoch plans, pseudo-fakes, degradations) and the dropout: the
    seed and, when fine-tuning, the starting model's digest. A stage of a chain that starts from the
    stage before thus sees new examples, not the very ones its starting model was trained on (with the
    seed alone every stage replayed the same six epochs); the val sets stay drawn from the seed alone,
    so every stage is judged on the same."""
    entropy = [config.seed]
    if config.init:
        digest = hashlib.sha256(Path(config.init).read_bytes()).digest()
        entropy.append(int.from_bytes(digest[:8], "big"))
    return entropy


@dataclass
class ValidationSets:
    """What picks the epoch, fixed once: the val split's crops as cut (``dfdc``), its real faces against
    pseudo-fakes of them (``pseudo``), its crops degraded as a poor video would give them
    (``degraded``), in the colours of other cameras (``recoloured``) and tilted, reframed and lit from
    one side (``light_and_pose``). Reported, not scored: the real faces against pseudo-fakes blended
    over one part of the face, as face reenactment leaves them (``parts``), against pseudo-fakes that
    blend in a copy rendered at a lower resolution (``low_res``), against pseudo-fakes with another real
    face blended in (``swapped``), against pseudo-fakes whose seam runs where a swap's does, round the
    face's outline (``outline``), against pseudo-fakes that blend in a copy only made softer (``soft``)
    or smoothed with its edges kept (``smoothed``), or such a copy over one part of the face
    (``soft_parts``: half of them smoothed, as a reenactment re-renders a mouth), and against pseudo-fakes
    whose masks are bent out of shape (``deformed``). Each is (crops, labels). Also reported, not scored:
    the val crops re-encoded as a small face in a video sent on again (``re_encoded``:
    `augmentation.low_quality_video`, evaluate's re-encoded condition), where the false alarms come from.
    And which val faces are turned to one side (``turned``, `Faces.turned`), read apart on the crops as
    cut, reported, not scored (None: not read)."""

    dfdc: tuple[np.ndarray, np.ndarray]
    pseudo: tuple[np.ndarray, np.ndarray]
    degraded: tuple[np.ndarray, np.ndarray]
    recoloured: tuple[np.ndarray, np.ndarray]
    light_and_pose: tuple[np.ndarray, np.ndarray]
    parts: tuple[np.ndarray, np.ndarray]
    low_res: tuple[np.ndarray, np.ndarray]
    swapped: tuple[np.ndarray, np.ndarray]
    outline: tuple[np.ndarray, np.ndarray]
    soft: tuple[np.ndarray, np.ndarray]
    deformed: tuple[np.ndarray, np.ndarray]
    re_encoded: tuple[np.ndarray, np.ndarray]
    smoothed: tuple[np.ndarray, np.ndarray]
    soft_parts: tuple[np.ndarray, np.ndarray]
    turned: np.ndarray | None = None


def validation_sets(faces: Faces, size: int, seed: int) -> ValidationSets:
    """The val sets, drawn once with ``seed`` so every epoch (and every run) is judged on the same."""
    as_cut = [faces.crop(i, REAL, None, None, False) for i in range(len(faces))]
    clean = np.stack([model.resize(crop, size) for crop in as_cut])
    reals = [i for i in range(len(faces)) if faces.labels[i] == 0]

    def against_pseudo_fakes(rng: np.random.Generator, part_share: float, **shares) -> tuple[np.ndarray, np.ndarray]:
        crops = [faces.crop(i, REAL, size, rng, True) for i in reals] + [
            faces.crop(i, PSEUDO_FAKE, size, rng, True, part_share, **shares) for i in reals
        ]
        return np.stack(crops), np.repeat(np.array([0.0, 1.0], dtype=np.float32), len(reals))

    degraded = np.stack([model.resize(augmentation.low_quality(crop), size) for crop in as_cut])
    re_encoded = np.stack([model.resize(augmentation.low_quality_video(crop), size) for crop in as_cut])
    colours = np.random.default_rng([seed, 2])
    recoloured = np.stack([model.resize(augmentation.recolour(crop, colours), size) for crop in as_cut])
    posing = np.random.default_rng([seed, 3])
    posed = np.stack([faces.crop(i, REAL, size, posing, False, light_and_pose=1.0) for i in range(len(faces))])
    return ValidationSets(
        dfdc=(clean, faces.labels),
        pseudo=against_pseudo_fakes(np.random.default_rng(seed), part_share=0.0),
        degraded=(degraded, faces.labels),
        recoloured=(recoloured, faces.labels),
        light_and_pose=(posed, faces.labels),
        parts=against_pseudo_fakes(np.random.default_rng([seed, 1]), part_share=1.0),  # leaves the others as drawn
        low_res=against_pseudo_fakes(np.random.default_rng([seed, 4]), part_share=0.0, low_res_share=1.0),
        swapped=against_pseudo_fakes(np.random.default_rng([seed, 5]), part_share=0.0, swap_share=1.0),
        outline=against_pseudo_fakes(np.random.default_rng([seed, 6]), part_share=0.0, outline_share=1.0),
        soft=against_pseudo_fakes(np.random.default_rng([seed, 7]), part_share=0.0, soft_share=1.0),
        deformed=against_pseudo_fakes(np.random.default_rng([seed, 8]), part_share=0.0, deform_share=1.0),
        re_encoded=(re_encoded, faces.labels),
        smoothed=against_pseudo_fakes(
            np.random.default_rng([seed, 9]), part_share=0.0, soft_share=1.0, smooth_share=1.0
        ),
        soft_parts=against_pseudo_fakes(
            np.random.default_rng([seed, 10]), part_share=1.0, soft_share=1.0, smooth_share=0.5
        ),
        turned=faces.turned(),
    )


SCORED = ("val_auc_dfdc", "val_auc_pseudo", "val_auc_degraded", "val_auc_recoloured", "val_auc_light_and_pose")


# Every val set's name, in the order of its field in ValidationSets (the turned faces are a mask, not a set).
VAL_SETS = tuple(field.name for field in dataclasses.fields(ValidationSets) if field.name != "turned")
# The sets that hold every val face in order; the others (AGAINST_PSEUDO_FAKES) hold the val split's real
# faces followed by a pseudo-fake of each, in the same order (`validation_sets`).
OF_EVERY_VAL_FACE = ("dfdc", "degraded", "recoloured", "light_and_pose", "re_encoded")
AGAINST_PSEUDO_FAKES = tuple(name for name in VAL_SETS if name not in OF_EVERY_VAL_FACE)


def validate(network, sets: ValidationSets) -> dict:
    """ROC AUC on each val set, the false alarms on its altered real crops, and the score that picks
    the epoch (see `val_figures`). Crops are scored as analysis scores them (`model.MirroredScorer`)."""
    return val_figures(sets, score_val_sets(network, sets))


def score_val_sets(network, sets: ValidationSets) -> dict[str, np.ndarray]:
    """P(DeepFake) of every crop of every val set, by set name, as analysis scores crops."""
    score = model.MirroredScorer(network)
    return {name: score(getattr(sets, name)[0]) for name in VAL_SETS}


def val_figures(sets: ValidationSets, scores: dict[str, np.ndarray]) -> dict:
    """ROC AUC on each val set, the false alarms on its altered real crops, and the score that picks
    the epoch: the mean ROC AUC over the val split as cut, degraded, recoloured, tilted and side-lit,
    and against pseudo-fakes (all five must hold: the swaps it was shown, poor video, other cameras'
    colours, other poses and light, and the traces of blending that any swap leaves). Until stage 35
    the score left out the recoloured set and until stage 37 the tilted and side-lit one
    (`val_score_without_colours` and `val_score_without_light_and_pose` keep those yardsticks). The
    ROC AUCs against part-of-the-face, low-resolution, other-face, outline, softer, smoothed, softer
    part-only and bent-mask pseudo-fakes, and on the re-encoded val crops, are reported beside them, not
    scored, and so is the ROC AUC on the turned faces' crops as cut (``val_auc_turned``)."""
    figures = {f"val_auc_{name}": metrics.roc_auc(getattr(sets, name)[1], scores[name]) for name in scores}
    if sets.turned is not None:
        figures["val_auc_turned"] = metrics.roc_auc(sets.dfdc[1][sets.turned], scores["dfdc"][sets.turned])
    for name in ("degraded", "recoloured", "light_and_pose", "re_encoded"):
        real = getattr(sets, name)[1] == 0
        figures[f"val_{name}_false_alarms"] = float((scores[name][real] >= 0.5).mean())
    # Without fakes in val (tiny sets) the pseudo-fakes alone pick the epoch.
    yardsticks = (("val_score_without_colours", 3), ("val_score_without_light_and_pose", 4), ("val_score", None))
    for key, parts in yardsticks:
        figures[key] = float(np.mean([figures[name] for name in SCORED[:parts] if figures[name] is not None]))
    return {key: None if value is None else round(value, 4) for key, value in figures.items()}


def val_score_difference(
    sets: ValidationSets,
    faces: Faces,
    scores: dict[str, np.ndarray],
    baseline: dict[str, np.ndarray],
    *,
    rounds: int = metrics.BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> dict:
    """The val score of ``scores`` minus that of ``baseline`` (two models' `score_val_sets` on the
    same ``sets``, drawn from ``faces``) and its 95% interval by a paired bootstrap: each round
    resamples the val groups (a real video and the fakes made from it, whose faces are alike) with
    replacement and scores both models on that one resample, so what the two models share cancels
    out. An interval that holds 0 says the difference is within the val set's noise. Beside it, under
    ``sets``, the same for each val set's ROC AUC, the unscored ones too, and for the turned faces'
    crops as cut (``turned``)."""
    groups = np.array([row["group"] for row in faces.rows])
    names, members = np.unique(groups, return_inverse=True)
    by_group = [np.flatnonzero(members == g) for g in range(len(names))]
    reals = np.flatnonzero(faces.labels == 0)
    real_position = np.full(len(faces), -1)
    real_position[reals] = np.arange(len(reals))
    scored = [name.removeprefix("val_auc_") for name in SCORED]

    def differences(faces_drawn: np.ndarray) -> dict[str, float]:
        """Each val set's ROC AUC gap on these faces, the val score's under "val_score"; a set
        without both classes among them is left out, as `val_figures` leaves it out."""
        drawn_reals = real_position[faces_drawn]
        drawn_reals = drawn_reals[drawn_reals >= 0]
        pairs = np.concatenate([drawn_reals, drawn_reals + len(reals)])  # those faces, then their pseudo-fakes
        gaps = {}
        readings = [(name, name, pairs if name in AGAINST_PSEUDO_FAKES else faces_drawn) for name in VAL_SETS]
        if sets.turned is not None:  # the turned faces' crops as cut
            readings.append(("turned", "dfdc", faces_drawn[sets.turned[faces_drawn]]))
        for key, name, pick in readings:
            labels = getattr(sets, name)[1][pick]
            ours, theirs = metrics.roc_auc(labels, scores[name][pick]), metrics.roc_auc(labels, baseline[name][pick])
            if ours is not None and theirs is not None:
                gaps[key] = ours - theirs
        if any(name in gaps for name in scored):
            gaps["val_score"] = float(np.mean([gaps[name] for name in scored if name in gaps]))
        return gaps

    whole = differences(np.arange(len(faces)))
    rng = np.random.default_rng(seed)
    drawn = {key: [] for key in whole}
    for _ in range(rounds):
        resample = differences(np.concatenate([by_group[g] for g in rng.integers(len(names), size=len(names))]))
        for key, value in resample.items():
            if key in drawn:
                drawn[key].append(value)

    def reading(key: str) -> tuple[float | None, list[float] | None]:
        if key not in whole:
            return None, None
        low, high = np.percentile(drawn[key], [2.5, 97.5])
        return round(whole[key], 4), [round(float(low), 4), round(float(high), 4)]

    val_score, interval = reading("val_score")
    per_set = {}
    for name in (*VAL_SETS, "turned"):
        difference, set_interval = reading(name)
        if difference is not None:
            per_set[name] = {"difference": difference, "interval": set_interval}
    return {"val_score": val_score, "interval": interval, "groups": len(names), "sets": per_set}


def train(
    dataset: Path,
    out: Path,
    config: TrainConfig = TrainConfig(),
    *,
    model_name: str = "deepfake_crop_cnn.keras",
    progress: Callable[[str], None] | None = None,
    resume: bool = False,
) -> dict:
    """Train the local network on the `train` split, keep the epoch ``config.keep_epoch`` names
    (`kept_of`: by default the best on `val`, see `validate`), calibrate it on `val` (see
    `metrics.fit_temperature`), and write ``out/<model_name>`` and ``out/metrics.json``. The test
    split is not touched.

    After each epoch it keeps what it needs to go on in ``out/unfinished`` (`UnfinishedTraining`);
    with ``resume`` a training stopped between epochs goes on from its last epoch done, on the same
    examples and learning rates as if it had not stopped (the dropout masks differ)."""
    check_keep_epoch(config.keep_epoch)
    tf = tf_runtime.load()
    import keras

    say = progress or log.info
    entropy = stream_entropy(config)
    unfinished = UnfinishedTraining(out / UNFINISHED_FOLDER)
    resumed = unfinished.to_resume(config, entropy, resume)
    epochs_done = resumed["epochs_done"] if resumed else 0
    dropout_entropy = [*entropy, epochs_done] if resumed else entropy  # a resumed run draws its masks anew
    keras.utils.set_random_seed(int(np.random.SeedSequence(dropout_entropy).generate_state(1)[0]))
    network = model.build(config.input_size, config.widths, stem=config.stem, dropout=config.dropout)
    if config.init:
        start = keras.models.load_model(config.init, compile=False)
        weights = start.get_weights()
        if [w.shape for w in weights] != [w.shape for w in network.get_weights()]:
            raise ValueError(
                f"{config.init} is not a network of the shape asked for (its stage widths: {model.widths_of(start)}; "
                f"asked for: {config.widths}); train with its widths, or widen it first (widen-model)"
            )
        network.set_weights(weights)
    loading = time.perf_counter()
    started = loading - (resumed["seconds"] if resumed else 0)  # the seconds of the runs before count
    train_faces = load_faces(dataset, "train", config.limit)
    val_faces = load_faces(dataset, "val", config.limit)
    if len(val_faces) == 0 or len(set(train_faces.labels)) < 2 or not (val_faces.labels == 0).any():
        raise ValueError(f"{dataset} needs real and fake crops in its train split and real crops in its val split")
    sets = validation_sets(val_faces, config.input_size, config.seed)
    say(f"loaded {len(train_faces)} train and {len(val_faces)} val faces in {time.perf_counter() - loading:.0f}s")

    examples = len(epoch_plan(train_faces, config, np.random.default_rng(config.seed)))
    steps = int(np.ceil(examples / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    size = config.input_size
    crops = tf.TensorSpec((None, size, size, 3), tf.uint8)
    per_crop = tf.TensorSpec((None,), tf.float32)
    if config.xray_weight:  # trains `network` through a model that shares its layers
        trainee = model.with_xray_head(network)
        losses = {"loss": [crop_loss(config), "binary_crossentropy"], "loss_weights": [1.0, config.xray_weight]}
        side = model.xray_size(size)
        maps = tf.TensorSpec((None, side, side, 1), tf.float32)
        signature = (crops, (per_crop, maps), (per_crop, tf.TensorSpec((None, 1, 1), tf.float32)))
    else:
        trainee = network
        losses = {"loss": crop_loss(config)}
        signature = (crops, per_crop, per_crop)
    if config.sharpness_rho:  # the same layers again, stepped sharpness-aware
        trainee = sharpness.sharpness_aware(trainee, config.sharpness_rho)
    trainee.compile(optimizer=optimizer, **losses)
    history = []
    resumed_after = []  # the epochs done when a run resumed
    if resumed:
        trainee.optimizer.build(trainee.trainable_variables)  # its variables exist before they are loaded
        trainee.load_weights(unfinished.weights(epochs_done))
        history, resumed_after = resumed["history"], [*resumed["resumed_after_epochs"], epochs_done]
        say(f"resuming at epoch {epochs_done + 1}/{config.epochs} from {unfinished.folder}")
    elif config.init:
        history.append({"epoch": 0, **validate(network, sets)})
        say("before training: " + ", ".join(f"{k} {v}" for k, v in history[-1].items() if k != "epoch"))
    train_data = tf.data.Dataset.from_generator(
        lambda: training_batches(train_faces, config, skip=epochs_done * steps), output_signature=signature
    ).prefetch(4)

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses = {key: round(float(value), 4) for key, value in (logs or {}).items() if key.endswith("loss")}
            scores = score_val_sets(network, sets)
            figures = {
                "epoch": epoch + 1,
                **losses,
                **val_figures(sets, scores),
                "seconds": round(time.perf_counter() - started),
            }
            history.append(figures)
            best = kept_of(history, config.keep_epoch)
            if best is figures:  # the epoch kept so far (`kept_of`)
                unfinished.keep_best(network, scores, epoch + 1)
            state = {
                "config": dataclasses.asdict(config),
                "stream_entropy": entropy,
                "epochs_done": epoch + 1,
                "best_epoch": best["epoch"],
                "history": history,
                "seconds": figures["seconds"],
                "resumed_after_epochs": resumed_after,
            }
            unfinished.save(trainee, state)
            say(
                f"epoch {epoch + 1}/{config.epochs}: "
                + ", ".join(f"{k} {v}" for k, v in figures.items() if k != "epoch")
            )

    trainee.fit(
        train_data,
        epochs=config.epochs,
        initial_epoch=epochs_done,
        steps_per_epoch=steps,
        callbacks=[Report()],
        shuffle=False,
        verbose=0,
    )
    best = kept_of(history, config.keep_epoch)
    network.load_weights(unfinished.best_weights(best["epoch"]))

    shipped = model.build(config.input_size, config.widths, stem=config.stem, dropout=config.dropout)
    shipped.set_weights(network.get_weights())  # no optimizer state: a third of the size
    calibration = calibrate(shipped, sets, unfinished.best_scores(best["epoch"]))  # that epoch's val scores
    shipped.save(out / model_name)
    report = {
        "config": dataclasses.asdict(config),
        "stream_entropy": entropy,  # the seed and the starting model's digest
        "train_faces": len(train_faces),
        "val_faces": len(val_faces),
        "examples_per_epoch": examples,
        "best_epoch": best["epoch"],
        "best": best,
        **calibration,
        "history": history,
        "resumed_after_epochs": resumed_after,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    unfinished.remove()
    say(f"wrote {out / model_name} and {out / 'metrics.json'}")
    return report


KEEP_EPOCHS = ("best", "last")


def check_keep_epoch(keep: str) -> None:
    if keep not in KEEP_EPOCHS:
        raise ValueError(f"keep_epoch must be one of {', '.join(KEEP_EPOCHS)}, not {keep!r}")


def kept_of(history: list[dict], keep: str = "best") -> dict:
    """The row of ``history`` of the trained epoch (not the starting model's, epoch 0) whose weights a
    training keeps: with ``keep`` "best" the one with the best val score (a tie keeps the earlier),
    with "last" the last. The val score weighs DFDC's own fakes in four of its five sets, so a lever
    aimed at another trace can teach it more each epoch while the score moves within its noise, and
    "best" then keeps the epoch where it had taught least (stages 79 and 82, MODEL_CARD.md)."""
    check_keep_epoch(keep)
    trained = [row for row in history if row["epoch"] > 0]
    return trained[-1] if keep == "last" else max(trained, key=lambda row: row["val_score"])


def crop_loss(config: TrainConfig):
    """The loss on each crop's label: binary cross-entropy, with ``label_smoothing`` s against the labels
    s/2 and 1 - s/2. The loss is then least at those labels, so certainty past them is pushed back,
    not rewarded, and the network is not driven to grow its logits on the cues it already has
    (Szegedy et al., CVPR 2016; Muller et al., NeurIPS 2019). The temperature fitted after training
    calibrates the probabilities either way."""
    import keras

    return keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)


def calibrate(network, sets: ValidationSets, scores: dict[str, np.ndarray]) -> dict:
    """Fit the temperature on the val split's real data, as filmed, degraded, recoloured, and tilted
    and lit from one side (``scores``: the network's `score_val_sets`), and fold it into ``network``'s
    last layer, so the saved network's P(DeepFake) is the calibrated one. Returns the temperature and
    the val calibration before and after."""
    kept = ("dfdc", "degraded", "recoloured", "light_and_pose")
    val_scores = np.concatenate([scores[name] for name in kept])
    val_labels = np.concatenate([getattr(sets, name)[1] for name in kept])
    temperature = metrics.fit_temperature(val_labels, val_scores)
    model.apply_temperature(network, temperature)
    calibrated = metrics.apply_temperature(val_scores, temperature)
    return {
        "temperature": round(temperature, 4),
        "val_calibration": {
            "before": metrics.calibration(val_labels, val_scores),
            "after": metrics.calibration(val_labels, calibrated),
        },
    }


def average_models(
    dataset: Path,
    paths: list[Path],
    out: Path,
    *,
    weights: list[float] | None = None,
    seed: int = TrainConfig.seed,
    model_name: str = "deepfake_crop_cnn.keras",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Average the weights of ``paths`` into one network and calibrate it on `val`, as `train` does;
    write ``out/<model_name>`` and ``out/metrics.json``. ``weights`` (one per path, positive; equal
    when None) weigh the models: ``[2, 1]`` keeps two thirds of the first and adds a third of the second.

    Models fine-tuned one from another (the stages of a chain) lie in one basin of the loss, so the
    mean of their weights is a working network, at times more robust off the training distribution
    than any of them ("model soups", Wortsman et al., ICML 2022). Each model's temperature
    is part of its last layer; the average is calibrated anew. The val figures of every model and of
    the average are reported side by side: the val score says whether the average is worth shipping.
    Models trained at different input sizes (`train --input-size`) are all scored, and averaged, at
    the first one's. Beside each model it reports the average's val score minus that model's, with a
    paired bootstrap interval over the val groups (`val_score_difference`): whether the average is
    better beyond the val set's noise.
    """
    tf_runtime.load()
    import keras

    say = progress or log.info
    started = time.perf_counter()
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or not all(w > 0 for w in weights):
        raise ValueError(f"give one positive weight per model ({len(paths)} models, {len(weights)} weights)")
    if len(paths) < 2:
        raise ValueError(f"average needs two or more models ({len(paths)} given)")
    networks = [keras.models.load_model(path, compile=False) for path in paths]
    shapes = [[weight.shape for weight in network.get_weights()] for network in networks]
    if any(shape != shapes[0] for shape in shapes):
        raise ValueError("average needs models of the same network (same layers and sizes)")
    networks, size = _at_first_size(networks)
    val_faces = _val_faces(dataset)
    sets = validation_sets(val_faces, size, seed)
    ingredients, ingredient_scores = [], []
    for path, network, weight in zip(paths, networks, weights, strict=True):
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        ingredient_scores.append(score_val_sets(network, sets))
        ingredients.append(
            {"model": str(path), "sha256": digest, "weight": weight, **val_figures(sets, ingredient_scores[-1])}
        )
        say(_val_line(f"{path} (weight {weight:g})", ingredients[-1]))
    average = networks[0]
    average.set_weights(
        [np.average(layer, axis=0, weights=weights) for layer in zip(*(n.get_weights() for n in networks), strict=True)]
    )
    average_scores = score_val_sets(average, sets)
    figures = val_figures(sets, average_scores)
    say("average: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    for path, row, scores in zip(paths, ingredients, ingredient_scores, strict=True):
        row["average_minus_this"] = gain = val_score_difference(sets, val_faces, average_scores, scores, seed=seed)
        if gain["interval"] is not None:
            say(f"average - {path}: {difference_text(gain)}")
    calibration = calibrate(average, sets, average_scores)
    out.mkdir(parents=True, exist_ok=True)
    average.save(out / model_name)
    report = {
        "averaged": ingredients,
        "seed": seed,
        "val_faces": len(val_faces),
        "best": figures,
        **calibration,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    say(f"wrote {out / model_name} and {out / 'metrics.json'}")
    return report


def compare_models(
    dataset: Path,
    path: Path,
    baseline: Path,
    *,
    seed: int = TrainConfig.seed,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The val figures of the model at ``path`` and of ``baseline``, and the first's val score minus
    the second's, each val set's too, with paired bootstrap intervals over the val groups
    (`val_score_difference`): whether one model beats another (a stage its control, say) beyond the
    val set's noise. Both are read at the first one's input size."""
    tf_runtime.load()
    import keras

    say = progress or log.info
    networks, size = _at_first_size([keras.models.load_model(p, compile=False) for p in (path, baseline)])
    val_faces = _val_faces(dataset)
    sets = validation_sets(val_faces, size, seed)
    scores = [score_val_sets(network, sets) for network in networks]
    report = {
        "model": {"model": str(path), **val_figures(sets, scores[0])},
        "baseline": {"model": str(baseline), **val_figures(sets, scores[1])},
        "difference": val_score_difference(sets, val_faces, *scores, seed=seed),
    }
    for row in (report["model"], report["baseline"]):
        say(_val_line(row["model"], row))
    return report


# How `probe_blends` can show its faces and blends: as cut, or each damaged alike in one of
# `evaluate`'s fixed ways (a quarter of the size at JPEG 30; a third of the size through H.264).
PROBE_CONDITIONS = {"as cut": None, "degraded": augmentation.low_quality, "re-encoded": augmentation.low_quality_video}


def probe_blends(dataset: Path, paths: list[Path], *, condition: str = "as cut", seed: int = TrainConfig.seed) -> dict:
    """How well each model of ``paths`` tells the val split's real faces from the same faces blended
    with one change each (`augmentation.one_change_blend`): for each change, the ROC AUC and the
    share of the blends called DeepFake (P >= 0.5), scored as analysis scores crops. A trace the
    pseudo-fakes always carry with another (the colour shift that comes with their sharpening or
    softening) can teach a model to see only that other one; this shows it. ``condition`` (one of
    PROBE_CONDITIONS) damages every real crop and every blend alike, so it also shows which traces
    a poor video leaves for the model to see. The faces are read and blended once for all the
    models, each read at the first one's input size."""
    if condition not in PROBE_CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}: one of {', '.join(PROBE_CONDITIONS)}")
    tf_runtime.load()
    import keras

    networks, size = _at_first_size([keras.models.load_model(p, compile=False) for p in paths])
    damage = PROBE_CONDITIONS[condition] or (lambda crop: crop)
    faces = _val_faces(dataset)
    reals = np.flatnonzero(faces.labels == 0)
    sets = {"real": np.stack([model.resize(damage(faces.crop(i, REAL, None, None, False)), size) for i in reals])}
    for position, change in enumerate(augmentation.ONE_CHANGE_BLENDS):
        crops = []
        for i in reals:
            blend = augmentation.one_change_blend(
                faces.contexts[i], faces.keypoints[i], np.random.default_rng([seed, position, i]), change
            )
            x1, y1, x2, y2 = (int(v) for v in faces.boxes[i])
            crops.append(model.resize(damage(blend[y1:y2, x1:x2]), size))
        sets[change] = np.stack(crops)
    labels = np.repeat(np.array([0.0, 1.0]), len(reals))
    report = {"faces": len(reals), "condition": condition, "models": []}
    for path, network in zip(paths, networks, strict=True):
        score = model.MirroredScorer(network)
        real = score(sets["real"])
        blends = {}
        for change in augmentation.ONE_CHANGE_BLENDS:
            blended = score(sets[change])
            blends[change] = {
                "roc_auc": round(metrics.roc_auc(labels, np.concatenate([real, blended])), 4),
                "called_fake": round(float((blended >= 0.5).mean()), 4),
            }
        report["models"].append({"model": str(path), "blends": blends})
    return report


def difference_text(gain: dict) -> str:
    """A `val_score_difference` (with an interval) in words, as `average-models` and `compare-models`
    print it."""
    low, high = gain["interval"]
    return (
        f"val score {gain['val_score']:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}]"
        f" (paired bootstrap over {gain['groups']} val groups)"
    )


def _val_line(name: str, figures: dict) -> str:
    """One model's val figures on a line, after its name."""
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if k.startswith("val_"))


def _at_first_size(networks: list) -> tuple[list, int]:
    """The networks, each read at the first one's input size (no weight depends on it), and that size."""
    size = int(networks[0].input_shape[1])
    return [n if int(n.input_shape[1]) == size else model.at_input_size(n, size) for n in networks], size


def _val_faces(dataset: Path) -> Faces:
    val_faces = load_faces(dataset, "val")
    if not (val_faces.labels == 0).any():
        raise ValueError(f"{dataset} needs real crops in its val split")
    return val_faces


def widen_model(path: Path, widths: tuple[int, ...], out: Path, *, seed: int = TrainConfig.seed) -> dict:
    """Write to ``out`` a copy of the model at ``path`` with ``widths`` filters in its stages that
    computes the same function (see `model.widen`): a start for `train --init` with those widths."""
    tf_runtime.load()
    import keras

    network = keras.models.load_model(path, compile=False)
    wider = model.widen(network, widths, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    wider.save(out)
    return {"from": model.widths_of(network), "to": model.widths_of(wider), "parameters": wider.count_params()}


UPLOAD_BATCH = 64  # the most images Custom Vision takes in one create_images_from_files call


@dataclass
class UploadReport:
    created_tags: list[str] = dataclasses.field(default_factory=list)
    uploaded: int = 0
    duplicates: int = 0
    failed: list[dict] = dataclasses.field(default_factory=list)


def training_client(endpoint: str, key: str):
    """The SDK's Custom Vision training client, with retries left to AzureRetry."""
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    client = CustomVisionTrainingClient(endpoint.rstrip("/"), ApiKeyCredentials(in_headers={"Training-key": key}))
    client.config.retry_policy.retries = 0
    return client


def upload_to_custom_vision(
    dataset: Path,
    client,
    project_id: str,
    *,
    retry: custom_vision.AzureRetry,
    deepfake_tag: str = custom_vision.DEEPFAKE,
    real_tag: str = custom_vision.REAL,
    splits: tuple[str, ...] = ("train", "val"),
    progress: Callable[[int], None] | None = None,
) -> UploadReport:
    """Upload the labelled crops of ``splits`` to a Custom Vision project, tagged DEEPFAKE_TAG or
    REAL_TAG (created when missing), in batches. The test split stays out by default, so the
    project's model can be evaluated on crops it never saw."""
    from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

    not_found = "project not found (HTTP 404): check VISION_PROJECT_ID."
    with (dataset / LABELS_FILE).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] in splits]
    report = UploadReport()
    tags = {
        tag.name: tag.id for tag in retry.call(lambda: client.get_tags(project_id), key="training", not_found=not_found)
    }
    for name in (deepfake_tag, real_tag):
        if name not in tags:
            created = retry.call(
                lambda name=name: client.create_tag(project_id, name), key="training", not_found=not_found
            )
            tags[name] = created.id
            report.created_tags.append(name)
    tag_for = {"fake": tags[deepfake_tag], "real": tags[real_tag]}
    for batch in pipeline.batches(rows, UPLOAD_BATCH):
        entries = [
            ImageFileCreateEntry(
                name=Path(row["crop"]).name,
                contents=(dataset / row["crop"]).read_bytes(),
                tag_ids=[tag_for[row["label"]]],
            )
            for row in batch
        ]
        summary = retry.call(
            lambda entries=entries: client.create_images_from_files(project_id, ImageFileCreateBatch(images=entries)),
            key="training",
            not_found=not_found,
        )
        for image in summary.images or []:
            if image.status == "OK":
                report.uploaded += 1
            elif image.status == "OKDuplicate":
                report.duplicates += 1
            else:
                report.failed.append({"image": image.source_url, "status": image.status})
        if progress:
            progress(len(batch))
    return report
