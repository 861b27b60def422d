"""How well a classifier does: on the crops of a build-dataset folder (as cut, degraded as a poor
video gives them, in the colours of other cameras, and lit from one side; each also by how far the
head is turned), on folders of real/ and fake/ videos analysed end to end, and on several such sets
at once, side by side.

No Flask in here: app.py's `evaluate` command wraps it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import augmentation
import custom_vision
import face
import metrics
import pipeline
import training

# The sets `evaluate` reports on by default: the DFDC test crops (in each of CONDITIONS), and the
# labelled sample videos and the Celeb-DF face clips as the app analyses them (at the default
# MIN_FRAMES, 12 of each clip's 24 frames).
STANDARD_SETS = ("datasets/dfdc_crops", "../shared/data/videos", "../shared/data/celebdf_faces")
# How a dataset's crops are scored: as cut; degraded as a poor video gives them (`augmentation.low_quality`);
# in another camera's colours (`augmentation.recolour`) and lit from one side (`augmentation.relight`),
# each drawn once for each crop from its name; re-encoded as a small face in a video sent on again
# (`augmentation.low_quality_video`: a third of the size, H.264).
CONDITIONS = ("as cut", "degraded", "recoloured", "side-lit", "re-encoded")
# The rungs of `damage_ladder`, each (name, times smaller on each side, codec, quality or rate factor):
# a small face and a codec's damage apart and together, to tell which of them brings false alarms, and at
# which size (the rate factor 36 rungs; `face.SMALL_CROP_PX`). The last is the re-encoded condition.
DAMAGE_LADDER = (
    ("as cut", 1, None, 0),
    ("a third of the size", 3, None, 0),
    ("a third, JPEG quality 40", 3, "jpeg", 40),
    ("a third, JPEG quality 20", 3, "jpeg", 20),
    ("full size, H.264 rate factor 36", 1, "h264", 36),
    ("a half, H.264 rate factor 30", 2, "h264", 30),
    ("a third, H.264 rate factor 26", 3, "h264", 26),
    ("a third, H.264 rate factor 31", 3, "h264", 31),
    ("a half, H.264 rate factor 36", 2, "h264", 36),
    ("a quarter, H.264 rate factor 36", 4, "h264", 36),
    ("a third, H.264 rate factor 36", 3, "h264", 36),
)
# The bands of head turn (`face.head_turn`, in eye distances; None: no upper end) a dataset's crops are
# also read in apart, where labels.csv keeps their keypoints: fakes of faces turned to one side are
# the ones the model misses most.
TURN_BANDS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, None))


@dataclass(frozen=True)
class EvaluationSet:
    """A folder to evaluate on, and for videos the frame interval to analyse them at (None: the app's)."""

    path: Path
    frame_interval: int | None = None

    @classmethod
    def parse(cls, text: str) -> EvaluationSet:
        """``FOLDER`` or ``FOLDER@N`` (analyse one frame in N)."""
        folder, _, interval = text.rpartition("@") if "@" in text else (text, "", "")
        if interval and (not interval.isdigit() or int(interval) < 1):
            raise ValueError(f"{text!r}: the frame interval after @ must be a whole number of at least 1")
        path = Path(folder)
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder")
        return cls(path, int(interval) if interval else None)

    @property
    def is_dataset(self) -> bool:
        return (self.path / training.LABELS_FILE).is_file()

    def work(self, split: str | None) -> int:
        """How many items evaluating this set scores: a dataset's crops once in each of CONDITIONS, or
        the videos of a folder."""
        if self.is_dataset:
            return len(CONDITIONS) * training.count_rows(self.path, split)
        return len(_videos(self.path))


def evaluate_sets(
    sets: list[EvaluationSet],
    settings,
    *,
    detector,
    classifier,
    split: str | None = "test",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Every set's report, side by side: a dataset's ``split`` in each of CONDITIONS, a video folder
    analysed end to end at its frame interval. ``progress`` is called with the items done since its
    last call (see `EvaluationSet.work`)."""
    reports = []
    for chosen in sets:
        if chosen.is_dataset:
            for condition in CONDITIONS:
                reports.append(evaluate_dataset(chosen.path, classifier, split, progress, condition=condition))
        else:
            interval = chosen.frame_interval or settings.frame_interval
            reports.append(
                evaluate_videos(
                    chosen.path,
                    dataclasses.replace(settings, frame_interval=interval),
                    detector=detector,
                    classifier=classifier,
                    progress=progress,
                )
            )
    return {"classifier": classifier.name, "sets": reports}


def _videos(folder: Path) -> list[training.Source]:
    return [source for source in training.find_sources(folder) if source.path.suffix.lower() in face.VIDEO_EXTENSIONS]


def _set_name(dataset: Path, split: str | None, condition: str) -> str:
    return f"{dataset.name} {split or 'all'}" + ("" if condition == CONDITIONS[0] else f", {condition}")


def _as_seen(image, name: str, condition: str):
    """A crop in ``condition`` (one of CONDITIONS); a recoloured or side-lit crop's colours or light are
    drawn from its name, so every run and every model sees the same."""
    if condition == "degraded":
        return augmentation.low_quality(image)
    if condition == "recoloured":
        return augmentation.recolour(image, _drawn_from(name))
    if condition == "side-lit":
        return augmentation.relight(image, _drawn_from(f"side-lit {name}"))
    if condition == "re-encoded":
        return augmentation.low_quality_video(image)
    return image


def _drawn_from(text: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def evaluate_dataset(
    dataset: Path,
    classifier,
    split: str | None = "test",
    progress: Callable[[int], None] | None = None,
    condition: str = CONDITIONS[0],
) -> dict:
    """Score every crop of ``split`` (all crops when None) of a build-dataset folder with ``classifier``.

    Crop level: each crop against its label, at the verdict threshold (the more probable tag).
    Video level: each source's crops through the verdict rule. Per group: accuracy of each group.
    Per turn: the crops in each band of head turn apart (`per_turn`). ``condition`` (one of
    CONDITIONS) says how the crops are shown: degraded as a low-quality video would give them, how
    many false alarms that brings is the original project's complaint; recoloured, how many a camera
    or grade other than DFDC's brings; side-lit, how many light from one side brings; re-encoded, how
    many a video codec brings to a small face.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}: one of {', '.join(CONDITIONS)}")
    rows = _rows(dataset, split)
    predictions, flagged, sharpness = [], [], []
    for batch in pipeline.batches(rows, 256):
        images = [_as_seen(face.read_image(dataset / row["crop"]), row["crop"], condition) for row in batch]
        measured = [face.sharpness(image) for image in images]
        flagged += [bool(face.quality_flags(image, detail)) for image, detail in zip(images, measured, strict=True)]
        sharpness += measured
        predictions += classifier.classify(images)
        if progress:
            progress(len(batch))
    labels = np.array([row["label"] == "fake" for row in rows])
    scores = np.array([p.deepfake_probability for p in predictions])
    called_fake = [p.label == custom_vision.DEEPFAKE for p in predictions]
    crop_level = metrics.binary_metrics(labels, scores, called_fake)

    by_source: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_source.setdefault(row["source"], []).append(index)
    verdicts = {
        source: custom_vision.decide([predictions[i] for i in indices]) for source, indices in by_source.items()
    }
    sources = list(by_source)
    video_level = metrics.binary_metrics(
        [rows[by_source[s][0]]["label"] == "fake" for s in sources],
        [verdicts[s].deepfake_probability for s in sources],
        [verdicts[s].label == custom_vision.DEEPFAKE for s in sources],
    )
    return {
        "kind": "dataset",
        "name": _set_name(dataset, split, condition),
        "path": str(dataset),
        "split": split,
        "condition": condition,
        **flag_figures(labels, called_fake, flagged),
        "classifier": classifier.name,
        "crop_level": crop_level,
        "video_level": video_level,
        "per_group": _per_group(rows, labels, called_fake, scores),
        "per_turn": per_turn(rows, labels, scores, called_fake),
        "per_sharpness": per_sharpness(labels, scores, called_fake, sharpness),
    }


def per_turn(rows: list[dict], labels, scores, called_fake) -> list[dict] | None:
    """The crops read in each of TURN_BANDS apart, by the head turn of their keypoints in labels.csv:
    how many, ROC AUC with its interval, false alarms and the share of fakes found. None when the
    rows keep no keypoints (a dataset built before build-dataset kept them)."""
    if not rows or not rows[0].get("keypoints"):
        return None
    turns = training.head_turns(training.keypoints_of(rows))
    labels, scores, called_fake = np.asarray(labels, bool), np.asarray(scores, float), np.asarray(called_fake, bool)
    bands = []
    for low, high in TURN_BANDS:
        inside = (turns >= low) & (turns < (np.inf if high is None else high))  # NaN (eyes on one point) in none
        bands.append({"turn": _span_text(low, high), **_band_figures(labels, scores, called_fake, inside)})
    return bands


def per_sharpness(labels, scores, called_fake, sharpness) -> list[dict] | None:
    """The crops read in four bands of sharpness (`face.sharpness`, of each crop as shown), blurriest
    first, cut where they cut the real crops into quarters: how the false alarms rise as a real face
    gets softer (the original project's complaint about poor video), and how the fakes fare in the same
    bands. Each band: its sharpness range, how many crops, ROC AUC with its interval, false alarms and
    the share of fakes found. None without real crops."""
    labels, scores, called_fake = np.asarray(labels, bool), np.asarray(scores, float), np.asarray(called_fake, bool)
    sharpness = np.asarray(sharpness, float)
    if labels.all():
        return None
    band_of, edges = metrics.quantile_bands(sharpness, sharpness[~labels])
    bounds = [0.0, *edges, None]
    return [
        {"sharpness": [round(bounds[b], 1), None if bounds[b + 1] is None else round(bounds[b + 1], 1)]}
        | _band_figures(labels, scores, called_fake, band_of == b)
        for b in range(4)
    ]


def _span_text(low: float, high: float | None) -> str:
    """A band's range as text: "0.1 to 0.2", or "0.3 and more" when it has no upper end."""
    return f"{low:.1f} to {high:.1f}" if high is not None else f"{low:.1f} and more"


def _band_figures(labels: np.ndarray, scores: np.ndarray, called_fake: np.ndarray, inside: np.ndarray) -> dict:
    """How many crops ``inside`` holds, their ROC AUC with its interval, false alarms and fakes found."""
    figures = metrics.binary_metrics(labels[inside], scores[inside], called_fake[inside])
    found, missed = figures["confusion"]["true_fake"], figures["confusion"]["false_real"]
    return {
        **{key: figures[key] for key in ("count", "roc_auc", "roc_auc_ci95", "false_alarms")},
        "fakes_found": round(found / (found + missed), 4) if found + missed else None,
    }


def flag_figures(labels, called_fake, flagged) -> dict:
    """The share of the crops that carry a quality flag (`face.quality_flags`), and the share of the
    false alarms (real crops called DeepFake) that do: how often the low-quality warning can stand
    beside a real face wrongly called fake (None without false alarms)."""
    flagged = np.asarray(flagged, dtype=bool)
    alarms = ~np.asarray(labels, dtype=bool) & np.asarray(called_fake, dtype=bool)
    return {
        "quality_flagged": round(float(flagged.mean()), 4) if len(flagged) else None,
        "false_alarms_flagged": round(float(flagged[alarms].mean()), 4) if alarms.any() else None,
    }


def _rows(dataset: Path, split: str | None) -> list[dict]:
    """The labels.csv rows of ``split`` (every row when None); an error when there are none."""
    with (dataset / training.LABELS_FILE).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split is None or row["split"] == split]
    if not rows:
        raise ValueError(f"{dataset / training.LABELS_FILE} has no crops in split {split!r}")
    return rows


def damage_ladder(
    dataset: Path,
    classifier,
    split: str | None = "val",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Which damage brings false alarms: every crop of ``split`` scored on each rung of DAMAGE_LADDER
    (shrunk, then coded as JPEG or H.264 or not at all; `augmentation.damaged`), with each rung's ROC
    AUC and false alarms, and how many of its crops and of its false alarms carry a quality flag
    (`flag_figures`). The last rung is the re-encoded condition of `evaluate_dataset`. ``progress``
    is called with the crops scored since its last call."""
    rows = _rows(dataset, split)
    labels = np.array([row["label"] == "fake" for row in rows])
    crops = [face.read_image(dataset / row["crop"]) for row in rows]
    rungs = []
    for name, times, codec, level in DAMAGE_LADDER:
        predictions, flagged = [], []
        for batch in pipeline.batches(crops, 256):
            damaged = [augmentation.damaged(crop, times, codec, level) for crop in batch]
            flagged += [bool(face.quality_flags(image)) for image in damaged]
            predictions += classifier.classify(damaged)
            if progress:
                progress(len(batch))
        scores = np.array([p.deepfake_probability for p in predictions])
        called_fake = [p.label == custom_vision.DEEPFAKE for p in predictions]
        figures = metrics.binary_metrics(labels, scores, called_fake)
        rungs.append(
            {
                "damage": name,
                "times_smaller": times,
                "codec": codec,
                "level": level,
                **{key: figures[key] for key in ("count", "roc_auc", "roc_auc_ci95", "false_alarms")},
                "mean_real": _mean(scores[~labels]),  # the mean P(DeepFake) of the real crops
                "mean_fake": _mean(scores[labels]),
                **flag_figures(labels, called_fake, flagged),
            }
        )
    return {"classifier": classifier.name, "dataset": str(dataset), "split": split, "rungs": rungs}


def _band_line(name: str, width: int, band: dict) -> str:
    """One band of `per_turn` or `per_sharpness` as a line of text, its name padded to ``width``."""
    alarms, found = _shown(band["false_alarms"], ".1%"), _shown(band["fakes_found"], ".1%")
    return (
        f"  {name:<{width}} n={band['count']:<5} ROC AUC {_auc_text(band):<22} "
        f"false alarms {alarms:<6} fakes found {found}"
    )


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def ladder_summary(report: dict) -> str:
    """The text form of `damage_ladder`: one line a rung."""
    lines = [f"{report['dataset']} {report['split'] or 'all'}, classifier {report['classifier']}:"]
    for rung in report["rungs"]:
        alarms = _shown(rung["false_alarms"], ".1%")
        means = f"real {_shown(rung['mean_real'], '.3f')} fake {_shown(rung['mean_fake'], '.3f')}"
        flags = f"flagged {_shown(rung['quality_flagged'], '.1%')} (of the false alarms {_shown(rung['false_alarms_flagged'], '.1%')})"
        lines.append(
            f"  {rung['damage']:<36} ROC AUC {_auc_text(rung):<22} false alarms {alarms:<6} mean P(DeepFake): {means}; {flags}"
        )
    return "\n".join(lines)


def _shown(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, or n/a when there is none."""
    return "n/a" if value is None else format(value, spec)


def _auc_text(figures: dict) -> str:
    """A ROC AUC with its bootstrap 95% interval, when it has one: 0.897 [0.885, 0.908]."""
    text = _shown(figures["roc_auc"], ".3f")
    if figures["roc_auc_ci95"]:
        low, high = figures["roc_auc_ci95"]
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def evaluate_videos(
    folder: Path, settings, *, detector, classifier, progress: Callable[[int], None] | None = None
) -> dict:
    """Analyse every video in ``folder``'s real/ and fake/ subfolders as the app would, and score the
    verdicts (video level) and every crop (crop level, each crop taking its video's label)."""
    import pipeline

    sources = _videos(folder)
    videos, crop_labels, crop_scores, crop_predicted, failed = [], [], [], [], []
    frame_scores = []  # of each video with a face: its crops' P(DeepFake), frame by frame
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
        frames: dict[int, list[float]] = {}
        for crop in result.crops:
            deepfake = crop.probabilities[custom_vision.DEEPFAKE]
            crop_labels.append(is_fake)
            crop_scores.append(deepfake)
            crop_predicted.append(deepfake >= crop.probabilities[custom_vision.REAL])
            frames.setdefault(crop.frame, []).append(deepfake)
        if frames:
            frame_scores.append((is_fake, list(frames.values())))
    judged = [video for video in videos if video["deepfake_probability"] is not None]
    return {
        "kind": "videos",
        "name": f"{folder.name} (1 frame in {settings.frame_interval}, at least {settings.min_frames} a video)",
        "path": str(folder),
        "classifier": classifier.name,
        "crop_level": metrics.binary_metrics(crop_labels, crop_scores, crop_predicted),
        "video_level": metrics.binary_metrics(
            [video["label"] == "fake" for video in judged],
            [video["deepfake_probability"] for video in judged],
            [video["verdict"] == custom_vision.DEEPFAKE for video in judged],
        ),
        "by_frames": by_frames(frame_scores),
        "no_face": [video["file"] for video in videos if video["deepfake_probability"] is None],
        "failed": failed,
        "videos": videos,
    }


# How many sampled frames a video `by_frames` reads the video ROC AUC at (a video with fewer gives all it
# has: at the app's default a clip gives about ten, `FOLDER@5` reads further), and how many draws it makes.
FRAME_COUNTS = (1, 2, 3, 5, 10, 20, 40)
FRAME_DRAWS = 1000


def by_frames(
    videos: list[tuple[bool, list[list[float]]]], counts=FRAME_COUNTS, draws: int = FRAME_DRAWS, seed: int = 0
):
    """The video ROC AUC had each video been judged on only a few of its sampled frames: for each of
    ``counts``, ``draws`` times, that many of each video's frames drawn at random (all of them when it
    has fewer), the video scored by the mean P(DeepFake) of those frames' crops as the verdict rule
    scores it; the mean ROC AUC over the draws and its 10th and 90th percentiles. ``videos``: (is
    fake, each sampled frame's crop scores). How much a verdict gains from more frames of a clip
    (`pipeline.sampling_interval`). None without both labels."""
    if len({is_fake for is_fake, _ in videos}) < 2:
        return None
    rng = np.random.default_rng(seed)
    labels = [is_fake for is_fake, _ in videos]
    rows = []
    for count in counts:
        aucs = []
        for _ in range(draws):
            scores = []
            for _, frames in videos:
                picked = rng.choice(len(frames), size=min(count, len(frames)), replace=False)
                scores.append(float(np.mean([p for index in picked for p in frames[index]])))
            aucs.append(metrics.roc_auc(labels, scores))
        low, high = np.quantile(aucs, [0.1, 0.9])
        rows.append(
            {
                "frames": count,
                "roc_auc_mean": round(float(np.mean(aucs)), 4),
                "roc_auc_p10_p90": [round(float(low), 4), round(float(high), 4)],
            }
        )
    return rows


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


def headline(report: dict) -> tuple[str, dict]:
    """The level a set is judged at: its videos for a video folder, its crops for a dataset (one crop
    a video in DFDC), with the figures at that level."""
    level = "video_level" if report["kind"] == "videos" else "crop_level"
    return level.split("_")[0], report[level]


def summary(evaluation: dict) -> str:
    """The text form of `evaluate_sets`: one line a set side by side, then each set's details."""
    header = (
        f"{'set':<40} {'unit':<5} {'n':>5}  {'ROC AUC [95% CI]':<22} {'accuracy':>8}  {'false alarms':<18} {'ECE':>6}"
    )
    lines = [f"classifier: {evaluation['classifier']}", header, "-" * len(header)]
    for report in evaluation["sets"]:
        unit, m = headline(report)
        auc = _auc_text(m)
        accuracy = _shown(m["accuracy"], ".3f")
        reals = m["confusion"]["false_fake"] + m["confusion"]["true_real"]
        alarms = (
            "n/a" if m["false_alarms"] is None else f"{m['false_alarms']:.1%} ({m['confusion']['false_fake']}/{reals})"
        )
        ece = "n/a" if not m["calibration"] else f"{m['calibration']['ece']:.3f}"
        lines.append(f"{report['name']:<40} {unit:<5} {m['count']:>5}  {auc:<22} {accuracy:>8}  {alarms:<18} {ece:>6}")
    for report in evaluation["sets"]:
        lines += ["", details(report)]
    return "\n".join(lines)


def details(report: dict) -> str:
    """One set's report as text: both levels, the reliability table, groups, and each video."""
    lines = [f"{report['name']}: {report['path']}"]
    if "quality_flagged" in report:
        lines.append(
            f"crops with a quality flag (small face or blurry): {_shown(report['quality_flagged'], '.1%')}; "
            f"of the real crops called DeepFake: {_shown(report['false_alarms_flagged'], '.1%')}"
        )
    for level in ("crop_level", "video_level"):
        m = report[level]
        c = m["confusion"]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
        lines.append(
            f"{level.replace('_', ' ')}: n={m['count']} accuracy={accuracy} roc_auc={auc} "
            f"[fake->fake {c['true_fake']}, fake->real {c['false_real']}, real->real {c['true_real']}, real->fake {c['false_fake']}]"
        )
    unit, m = headline(report)
    if m["calibration"]:
        lines.append(f"reliability ({unit}s): P(DeepFake) bin, count, mean P(DeepFake), share fake")
        lines += [
            f"  {row['bin']}  {row['count']:>5}  {row['mean_probability']:.3f}  {row['fake_share']:.3f}"
            for row in m["calibration"]["reliability"]
        ]
    groups = report.get("per_group")
    if groups:
        q1, median, q3 = groups["accuracy_quartiles"]
        lines.append(
            f"per group: {groups['groups']} groups, mean accuracy {groups['accuracy_mean']:.4f}, quartiles "
            f"{q1:.2f}/{median:.2f}/{q3:.2f}, {groups['groups_below_half']} groups below 0.5"
        )
    if report.get("per_turn"):
        lines.append("by head turn (the nose off the eyes' midpoint, in eye distances):")
        lines += [_band_line(band["turn"], 12, band) for band in report["per_turn"]]
    if report.get("per_sharpness"):
        lines.append(
            "by sharpness (the crop's variance of the Laplacian at 112 px; bands of a quarter of the real crops):"
        )
        lines += [_band_line(_span_text(*band["sharpness"]), 14, band) for band in report["per_sharpness"]]
    if report.get("by_frames"):
        lines.append(
            "video ROC AUC judged on a few of each video's frames, drawn at random: frames, mean [10th, 90th percentile]"
        )
        lines += [
            f"  {row['frames']:>3}  {row['roc_auc_mean']:.3f} [{row['roc_auc_p10_p90'][0]:.3f}, {row['roc_auc_p10_p90'][1]:.3f}]"
            for row in report["by_frames"]
        ]
    for video in report.get("videos", []):
        probability = "-" if video["deepfake_probability"] is None else f"{video['deepfake_probability']:.3f}"
        lines.append(
            f"  {video['file']}: {video['label']} -> {video['verdict']} ({probability}, {video['crops']} crops)"
        )
    for failure in report.get("failed", []):
        lines.append(f"  {failure['file']}: error: {failure['error']}")
    return "\n".join(lines)


def published_figures(model_path: Path) -> list[dict] | None:
    """What the About page shows of the local model: one row per set of the `evaluate --json` report
    kept beside it (evaluation.json), so the page cannot drift from the model card. None when it is
    missing."""
    try:
        evaluation = json.loads((model_path.parent / "evaluation.json").read_text())
    except (OSError, ValueError):
        return None
    rows = []
    for report in evaluation.get("sets", []):
        level = report.get("video_level") if report["kind"] == "videos" else report.get("crop_level")
        if not level:
            continue
        rows.append(
            {
                "name": report["name"],
                "unit": "videos" if report["kind"] == "videos" else "crops",
                "same_source": "dfdc" in report["path"].lower(),
                "count": level["count"],
                "roc_auc": level.get("roc_auc"),
                "roc_auc_ci95": level.get("roc_auc_ci95"),
                "accuracy": level.get("accuracy"),
                "false_alarms": level.get("false_alarms"),
            }
        )
    return rows
