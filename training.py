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

import custom_vision
import face
import model

log = logging.getLogger(__name__)

LABELS = ("real", "fake")
LABELS_FILE = "labels.csv"
NO_FACE_FILE = "no_face.csv"
LABEL_COLUMNS = ("crop", "label", "group", "split", "source", "frame")
DETECT_BATCH = 32


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
        for batch in _batches(_frames_of(todo, frame_interval, report, no_faces), DETECT_BATCH):
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
                    target = out / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(face.encode_jpeg(crop.image))
                    rows = pending.setdefault(source.name, [])
                    rows.append((relative, source.label, source.group, source.split, source.name, crop.frame_index))
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


def _batches(items, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    epochs: int = 24
    input_size: int = model.INPUT_SIZE
    group_batches: bool = True  # a group's crops (a real video and the fakes made from it) share a batch
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    stem: int = 16
    dropout: float = 0.3
    seed: int = 1234
    limit: int = 0  # use at most this many training crops (0: all); for quick trials


def count_rows(dataset: Path, splits: str | tuple[str, ...] | None) -> int:
    """How many crops of ``splits`` (all when None) labels.csv lists."""
    splits = (splits,) if isinstance(splits, str) else splits
    with (dataset / LABELS_FILE).open(newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if splits is None or row["split"] in splits)


def load_split(dataset: Path, split: str, size: int, limit: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The crops of one split, resized to size x size, with labels (1 = fake) and their labels.csv rows."""
    with (dataset / LABELS_FILE).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    if limit and len(rows) > limit:
        keep = np.random.default_rng(0).choice(len(rows), size=limit, replace=False)
        rows = [rows[index] for index in sorted(keep)]
    images = np.zeros((len(rows), size, size, 3), dtype=np.uint8)
    for position, row in enumerate(rows):
        images[position] = model.resize(face.read_image(dataset / row["crop"]), size)
    labels = np.array([row["label"] == "fake" for row in rows], dtype=np.float32)
    return images, labels, rows


def train(
    dataset: Path,
    out: Path,
    config: TrainConfig = TrainConfig(),
    *,
    model_name: str = "deepfake_crop_cnn.keras",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train the local network on the `train` split, choosing the epoch by `val` ROC AUC, and write
    ``out/model.keras`` and ``out/metrics.json``. The test split is not touched."""
    import keras
    import tensorflow as tf

    say = progress or log.info
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    train_x, train_y, train_rows = load_split(dataset, "train", model.load_size(config.input_size), config.limit)
    val_x, val_y, _ = load_split(dataset, "val", config.input_size, config.limit)
    if len(train_x) == 0 or len(val_x) == 0 or len(set(train_y)) < 2:
        raise ValueError(f"{dataset} needs real and fake crops in its train split and crops in its val split")
    say(f"loaded {len(train_x)} train and {len(val_x)} val crops in {time.perf_counter() - started:.0f}s")

    positives = float(train_y.sum())
    class_weight = {0: len(train_y) / (2 * (len(train_y) - positives)), 1: len(train_y) / (2 * positives)}
    steps = int(np.ceil(len(train_x) / config.batch_size))
    network = model.build(config.input_size, stem=config.stem, dropout=config.dropout)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=steps * config.epochs, warmup_target=None
    )
    network.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    if config.group_batches:
        order = group_order([row["group"] for row in train_rows], config.epochs, config.seed)
    else:
        rng = np.random.default_rng(config.seed)
        order = np.concatenate([rng.permutation(len(train_x)) for _ in range(config.epochs)])
    images, labels = tf.constant(train_x), tf.constant(train_y)
    train_data = (
        tf.data.Dataset.from_tensor_slices(order)
        .repeat()
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
        .map(functools.partial(_augment, size=config.input_size), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / model_name
    checkpoint = out / "best.weights.h5"
    history = []

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.append({key: round(float(value), 4) for key, value in (logs or {}).items()})
            say(f"epoch {epoch + 1}/{config.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items()))

    network.fit(
        train_data,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=(val_x, val_y),
        validation_batch_size=256,
        class_weight=class_weight,
        shuffle=False,  # the order is drawn above
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor="val_auc", mode="max", save_best_only=True, save_weights_only=True
            ),
            Report(),
        ],
        verbose=0,
    )
    # Ship the best epoch's weights in an uncompiled copy: no optimizer state, a third of the size.
    network.load_weights(checkpoint)
    shipped = model.build(config.input_size, stem=config.stem, dropout=config.dropout)
    shipped.set_weights(network.get_weights())
    shipped.save(model_path)
    checkpoint.unlink()
    best = max(range(len(history)), key=lambda index: history[index]["val_auc"])
    metrics = {
        "config": dataclasses.asdict(config),
        "train_crops": len(train_x),
        "val_crops": len(val_x),
        "class_weight": class_weight,
        "best_epoch": best + 1,
        "val_auc": history[best]["val_auc"],
        "history": history,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    say(f"wrote {model_path} and {out / 'metrics.json'}")
    return metrics


def group_order(groups: list[str], epochs: int, seed: int) -> np.ndarray:
    """The order training crops are shown in, epoch after epoch: groups in random order and the
    crops of a group next to each other, so that a real video's crop and the fakes made from it
    share a batch, and the network learns what the face swap changed rather than who is filmed."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    blocks = list(members.values())
    order = []
    for _ in range(epochs):
        for position in rng.permutation(len(blocks)):
            order.extend(rng.permutation(blocks[position]))
    return np.array(order, dtype=np.int64)


def _augment(image, label, size: int):
    """Random size x size crop, flip and mild colour changes. No blur or recompression: the texture they wipe
    out is what tells a generated face from a filmed one (a trial with them learned far slower)."""
    import tensorflow as tf

    image = tf.image.random_crop(image, (size, size, 3))
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(tf.cast(image, tf.float32), 12.0)
    image = tf.image.random_contrast(image, 0.9, 1.1)
    image = tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)
    return image, label


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None without both classes."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over ties
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def binary_metrics(labels, scores, predicted) -> dict:
    """Accuracy, ROC AUC and the confusion matrix (fake is the positive class)."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    auc = roc_auc(labels, scores)
    return {
        "count": int(len(labels)),
        "accuracy": round(float((labels == predicted).mean()), 4) if len(labels) else None,
        "roc_auc": None if auc is None else round(auc, 4),
        "confusion": {
            "true_fake": int((labels & predicted).sum()),
            "false_fake": int((~labels & predicted).sum()),
            "true_real": int((~labels & ~predicted).sum()),
            "false_real": int((labels & ~predicted).sum()),
        },
    }


def evaluate_dataset(
    dataset: Path,
    classifier,
    split: str | None = "test",
    progress: Callable[[int], None] | None = None,
    low_quality: bool = False,
) -> dict:
    """Score every crop of ``split`` (all crops when None) of a build-dataset folder with ``classifier``.

    Crop level: each crop against its label, at the verdict threshold (the more probable tag).
    Video level: each source's crops through the verdict rule. Per group: accuracy of each group.
    With ``low_quality``, every crop is first degraded as a low-quality video would give it
    (see `degrade`): how many false alarms that brings is the original project's complaint.
    """
    with (dataset / LABELS_FILE).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split is None or row["split"] == split]
    if not rows:
        raise ValueError(f"{dataset / LABELS_FILE} has no crops in split {split!r}")
    predictions, flagged = [], 0
    for batch in _batches(rows, 256):
        images = [face.read_image(dataset / row["crop"]) for row in batch]
        if low_quality:
            images = [degrade(image) for image in images]
        flagged += sum(1 for image in images if face.quality_flags(image))
        predictions += classifier.classify(images)
        if progress:
            progress(len(batch))
    labels = np.array([row["label"] == "fake" for row in rows])
    scores = np.array([p.deepfake_probability for p in predictions])
    crop_level = binary_metrics(labels, scores, [p.label == custom_vision.DEEPFAKE for p in predictions])

    by_source: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_source.setdefault(row["source"], []).append(index)
    verdicts = {
        source: custom_vision.decide([predictions[i] for i in indices]) for source, indices in by_source.items()
    }
    sources = list(by_source)
    video_level = binary_metrics(
        [rows[by_source[s][0]]["label"] == "fake" for s in sources],
        [verdicts[s].deepfake_probability for s in sources],
        [verdicts[s].label == custom_vision.DEEPFAKE for s in sources],
    )
    return {
        "kind": "dataset",
        "path": str(dataset),
        "split": split,
        "low_quality": low_quality,
        "quality_flagged": round(flagged / len(rows), 4),  # the share of crops with a quality flag
        "classifier": classifier.name,
        "crop_level": crop_level,
        "video_level": video_level,
        "per_group": _per_group(rows, labels, [p.label == custom_vision.DEEPFAKE for p in predictions], scores),
    }


def degrade(image: np.ndarray) -> np.ndarray:
    """A crop as a low-quality video gives it: a quarter of its width and height, JPEG quality 30."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(8, width // 4), max(8, height // 4)), interpolation=cv2.INTER_AREA)
    data = np.frombuffer(face.encode_jpeg(small, quality=30), dtype=np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def evaluate_videos(
    folder: Path, settings, *, detector, classifier, progress: Callable[[int], None] | None = None
) -> dict:
    """Analyse every video in ``folder``'s real/ and fake/ subfolders as the app would, and score the
    verdicts (video level) and every crop (crop level, each crop taking its video's label)."""
    import pipeline

    sources = [source for source in find_sources(folder) if source.path.suffix.lower() in face.VIDEO_EXTENSIONS]
    videos, crop_labels, crop_scores, crop_predicted, failed = [], [], [], [], []
    for source in sources:
        try:
            result = pipeline.analyze(source.path, settings, detector=detector, classifier=classifier)
        except (face.UnreadableMediaError, custom_vision.ClassifierError) as error:
            failed.append({"file": source.name, "error": str(error)})
            continue
        finally:
            if progress:
                progress(1)
        is_fake = source.label == "fake"
        videos.append(
            {
                "file": source.name,
                "label": source.label,
                "verdict": result.verdict,
                "deepfake_probability": result.deepfake_probability,
                "crops": len(result.crops),
                "warnings": result.warnings,
                "timings_s": result.timings_s,
            }
        )
        for crop in result.crops:
            crop_labels.append(is_fake)
            crop_scores.append(crop.probabilities[custom_vision.DEEPFAKE])
            crop_predicted.append(crop.probabilities[custom_vision.DEEPFAKE] >= crop.probabilities[custom_vision.REAL])
    judged = [video for video in videos if video["deepfake_probability"] is not None]
    return {
        "kind": "videos",
        "path": str(folder),
        "classifier": classifier.name,
        "crop_level": binary_metrics(crop_labels, crop_scores, crop_predicted),
        "video_level": binary_metrics(
            [video["label"] == "fake" for video in judged],
            [video["deepfake_probability"] for video in judged],
            [video["verdict"] == custom_vision.DEEPFAKE for video in judged],
        ),
        "no_face": [video["file"] for video in videos if video["deepfake_probability"] is None],
        "failed": failed,
        "videos": videos,
    }


def _per_group(rows: list[dict], labels: np.ndarray, predicted: list[bool], scores: np.ndarray) -> dict | None:
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row.get("group"):
            groups.setdefault(row["group"], []).append(index)
    if not groups:
        return None
    predicted = np.asarray(predicted)
    accuracy = {group: float((labels[i] == predicted[i]).mean()) for group, i in groups.items()}
    values = np.array(list(accuracy.values()))
    worst = sorted(accuracy, key=accuracy.get)[:10]
    return {
        "groups": len(groups),
        "accuracy_mean": round(float(values.mean()), 4),
        "accuracy_quartiles": [round(float(q), 4) for q in np.percentile(values, [25, 50, 75])],
        "groups_below_half": int((values < 0.5).sum()),
        "worst": [{"group": g, "accuracy": round(accuracy[g], 4), "crops": len(groups[g])} for g in worst],
        "accuracy": {group: round(value, 4) for group, value in accuracy.items()},
    }


def summary(report: dict) -> str:
    """The text form of an evaluation report."""
    lines = [f"{report['kind']} {report['path']}" + (f" (split {report['split']})" if report.get("split") else "")]
    lines.append(f"classifier: {report['classifier']}")
    if "quality_flagged" in report:
        degraded = "degraded to low quality, " if report["low_quality"] else ""
        lines.append(f"crops: {degraded}{report['quality_flagged']:.1%} with a quality flag (small face or blurry)")
    for level in ("crop_level", "video_level"):
        m = report[level]
        c = m["confusion"]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
        lines.append(
            f"{level.replace('_', ' ')}: n={m['count']} accuracy={accuracy} roc_auc={auc} "
            f"[fake->fake {c['true_fake']}, fake->real {c['false_real']}, real->real {c['true_real']}, real->fake {c['false_fake']}]"
        )
    groups = report.get("per_group")
    if groups:
        q1, median, q3 = groups["accuracy_quartiles"]
        lines.append(
            f"per group: {groups['groups']} groups, mean accuracy {groups['accuracy_mean']:.4f}, quartiles "
            f"{q1:.2f}/{median:.2f}/{q3:.2f}, {groups['groups_below_half']} groups below 0.5"
        )
    for video in report.get("videos", []):
        probability = "-" if video["deepfake_probability"] is None else f"{video['deepfake_probability']:.3f}"
        lines.append(
            f"  {video['file']}: {video['label']} -> {video['verdict']} ({probability}, {video['crops']} crops)"
        )
    for failure in report.get("failed", []):
        lines.append(f"  {failure['file']}: error: {failure['error']}")
    return "\n".join(lines)


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
    for batch in _batches(rows, UPLOAD_BATCH):
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
