"""The web app and the CLI: thin views over pipeline.analyze.

flask --app app run                  the upload page at http://127.0.0.1:5000
flask --app app analyze VIDEO...     a verdict per video (--json for one JSON object per line)
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import statistics
import time
from functools import cached_property
from pathlib import Path

import click
import numpy as np
from dotenv import load_dotenv
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.exceptions import HTTPException

import custom_vision
import face
import pipeline
import training
from config import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
RESULT_FILE = "result.json"
FAILURE_FILE = "failure.json"
CROPS_DIR = "crops"
UPLOAD_STEM = "upload"
ANALYSIS_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

bp = Blueprint("web", __name__, cli_group=None)


class BadUploadError(ValueError):
    """An upload that cannot be analysed; the message is shown to the person who sent it."""


class Services:
    """What analysis needs, built once per app and on first use (MTCNN and TensorFlow take seconds)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def detector(self) -> face.FaceDetector:
        return face.get_detector(self.settings.detect_max_side)

    @cached_property
    def classifier(self) -> custom_vision.Classifier:
        return custom_vision.make_classifier(self.settings)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: code defaults, then the environment and `.env`, then ``test_config``."""
    load_dotenv()
    app = Flask(__name__, instance_relative_config=True)
    settings = Settings.from_environment(test_config)
    app.config.from_mapping(settings.as_mapping())
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_upload_mb * MB)
    if test_config:
        app.config.from_mapping(test_config)
    app.config["SECRET_KEY"] = app.config.get("SECRET_KEY") or os.environ.get("SECRET_KEY") or _instance_secret(app)
    upload_folder = Path(app.config["UPLOAD_FOLDER"])
    if not upload_folder.is_absolute():
        upload_folder = Path(app.root_path) / upload_folder
    upload_folder.mkdir(parents=True, exist_ok=True)
    app.config["UPLOAD_FOLDER"] = str(upload_folder)

    app.extensions["deepfake"] = Services(settings)
    app.register_blueprint(bp)
    for code in (400, 404, 405, 413, 500):
        app.register_error_handler(code, _error_page)
    return app


def services() -> Services:
    return current_app.extensions["deepfake"]


def analysis_folder(analysis_id: str) -> Path:
    if not ANALYSIS_ID.match(analysis_id):
        abort(404)
    folder = Path(current_app.config["UPLOAD_FOLDER"]) / analysis_id
    if not folder.is_dir():
        abort(404)
    return folder


@bp.get("/")
def index():
    return render_template("index.html", max_upload_mb=services().settings.max_upload_mb)


@bp.post("/upload")
def upload():
    try:
        folder = store_upload(request.files.get("video"))
    except BadUploadError as error:
        return render_template("error.html", code=400, message=str(error)), 400
    run_analysis(folder)
    return redirect(url_for("web.results", analysis_id=folder.name))


@bp.get("/results/<analysis_id>")
def results(analysis_id: str):
    folder = analysis_folder(analysis_id)
    if (folder / RESULT_FILE).exists():
        result = pipeline.result_from_dict(json.loads((folder / RESULT_FILE).read_text()))
        return render_template("results.html", analysis_id=analysis_id, result=result)
    failure = json.loads((folder / FAILURE_FILE).read_text()) if (folder / FAILURE_FILE).exists() else {}
    return render_template(
        "failed.html",
        analysis_id=analysis_id,
        error=failure.get("error", "The analysis did not finish."),
        can_retry=_upload_path(folder) is not None,
    )


@bp.post("/results/<analysis_id>/retry")
def retry(analysis_id: str):
    folder = analysis_folder(analysis_id)
    if _upload_path(folder) is None:
        abort(404)
    run_analysis(folder)
    return redirect(url_for("web.results", analysis_id=analysis_id))


@bp.get("/results/<analysis_id>/crops/<name>")
def crop_image(analysis_id: str, name: str):
    return send_from_directory(analysis_folder(analysis_id) / CROPS_DIR, name)


def store_upload(file) -> Path:
    """Save an uploaded video or photo under a new random folder, with a server-chosen name, and
    check that its content can be read. Raises BadUploadError (nothing is kept) when it cannot."""
    if file is None or not file.filename:
        raise BadUploadError("No file was sent: choose a video or a photo to analyse.")
    suffix = Path(file.filename).suffix.lower()
    suffix = suffix if suffix in face.VIDEO_EXTENSIONS + face.IMAGE_EXTENSIONS else ""
    folder = Path(current_app.config["UPLOAD_FOLDER"]) / secrets.token_urlsafe(16)
    folder.mkdir()
    path = folder / f"{UPLOAD_STEM}{suffix}"
    file.save(path)
    try:
        if path.stat().st_size == 0:
            raise BadUploadError("The file is empty.")
        try:
            face.probe(path)
        except face.UnreadableMediaError as error:
            raise BadUploadError(
                f"{error} Send a video (mp4, mov, avi, mkv, webm) or a photo (jpg, png, webp)."
            ) from error
    except BadUploadError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def run_analysis(folder: Path) -> None:
    """Analyse the upload in ``folder``; write result.json, or failure.json and keep the upload."""
    path = _upload_path(folder)
    (folder / FAILURE_FILE).unlink(missing_ok=True)
    try:
        result = pipeline.analyze(
            path,
            services().settings,
            detector=services().detector,
            classifier=services().classifier,
            crops_dir=folder / CROPS_DIR,
        )
    except (custom_vision.ClassifierError, face.UnreadableMediaError) as error:
        log.warning("analysis %s failed: %s", folder.name, error)
        (folder / FAILURE_FILE).write_text(json.dumps({"error": str(error)}))
        return
    (folder / RESULT_FILE).write_text(json.dumps(pipeline.result_to_dict(result)))


def _upload_path(folder: Path) -> Path | None:
    return next(iter(sorted(folder.glob(f"{UPLOAD_STEM}*"))), None)


def _instance_secret(app: Flask) -> str:
    """A secret key kept in the instance folder, so sessions survive a restart."""
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _error_page(error: Exception):
    code = error.code if isinstance(error, HTTPException) else 500
    messages = {
        400: "The request could not be understood.",
        404: "There is nothing here. Analyses are kept only for a while; upload the video again.",
        405: "That method is not allowed here.",
        413: f"The file is too large: the limit is {current_app.config['MAX_UPLOAD_MB']} MB.",
        500: "Something went wrong on our side. The upload is kept; try again in a moment.",
    }
    message = messages.get(code, "Something went wrong.")
    if code == 500:
        log.exception("unhandled error", exc_info=error)
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify(error=message), code
    return render_template("error.html", code=code, message=message), code


@bp.cli.command("analyze")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a summary line.")
def analyze_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Analyse videos or photos and print a verdict for each."""
    failed = 0
    for path in paths:
        try:
            result = pipeline.analyze(
                path, services().settings, detector=services().detector, classifier=services().classifier
            )
        except (face.UnreadableMediaError, custom_vision.ClassifierError) as error:
            failed += 1
            click.echo(f"{path}: error: {error}", err=True)
            if as_json:
                click.echo(json.dumps({"file": path, "error": str(error)}))
            continue
        result.file = path
        if as_json:
            click.echo(json.dumps(pipeline.result_to_dict(result)))
        else:
            probability = "-" if result.deepfake_probability is None else f"{result.deepfake_probability:.3f}"
            crops = f"{len(result.crops)} crop{'' if len(result.crops) == 1 else 's'}"
            click.echo(f"{path}: {result.verdict} (deepfake probability {probability}, {crops})")
    if failed:
        raise SystemExit(1)


@bp.cli.command("build-dataset")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def build_dataset_command(src: Path, out: Path) -> None:
    """Crop the faces of SRC (real/ and fake/ folders, or a metadata.csv) into a labelled dataset OUT."""
    settings = services().settings
    sources = training.find_sources(src)
    with click.progressbar(length=len(sources), label="cropping faces", show_pos=True) as bar:
        report = training.build_dataset(
            src,
            out,
            detector=services().detector,
            frame_interval=settings.frame_interval,
            min_confidence=settings.min_face_confidence,
            margin=settings.crop_margin,
            progress=bar.update,
        )
    click.echo(
        f"{report.crops_written} crops from {report.sources_done} sources written to {out / training.LABELS_FILE}; "
        f"{report.sources_skipped} sources done before; {report.no_face} with no face; {report.unreadable} unreadable "
        f"(listed in {out / training.NO_FACE_FILE})."
    )


@bp.cli.command("train")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: models/.")
@click.option("--epochs", type=int, default=training.TrainConfig.epochs, show_default=True)
@click.option("--seed", type=int, default=training.TrainConfig.seed, show_default=True)
@click.option("--limit", type=int, default=0, help="Use at most this many crops per split (for quick trials).")
def train_command(dataset: Path, out: Path | None, epochs: int, seed: int, limit: int) -> None:
    """Train the local classifier on DATASET's train split (val picks the epoch); write it to models/."""
    out = out or services().settings.local_model_path.parent
    config = training.TrainConfig(epochs=epochs, seed=seed, limit=limit)
    metrics = training.train(
        dataset, out, config, model_name=services().settings.local_model_path.name, progress=click.echo
    )
    click.echo(
        f"best epoch {metrics['best_epoch']}: val ROC AUC {metrics['val_auc']:.4f}; "
        f"{metrics['train_seconds']:.0f}s; model in {out}"
    )


@bp.cli.command("evaluate")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--split", default="test", show_default=True, help="For a dataset: the split to score ('all' for every crop)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the report as JSON here ('-': stdout).",
)
def evaluate_command(path: Path, split: str, json_path: str | None) -> None:
    """Score the classifier on a build-dataset folder, or on a folder of real/ and fake/ videos."""
    if (path / training.LABELS_FILE).is_file():
        rows = training.count_rows(path, None if split == "all" else split)
        with click.progressbar(length=rows, label="classifying crops", show_pos=True) as bar:
            report = training.evaluate_dataset(
                path, services().classifier, None if split == "all" else split, progress=bar.update
            )
    else:
        videos = [s for s in training.find_sources(path) if s.path.suffix.lower() in face.VIDEO_EXTENSIONS]
        with click.progressbar(length=len(videos), label="analysing videos", show_pos=True) as bar:
            report = training.evaluate_videos(
                path,
                services().settings,
                detector=services().detector,
                classifier=services().classifier,
                progress=bar.update,
            )
    click.echo(training.summary(report))
    if json_path:
        text = json.dumps(report, indent=2)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text)


@bp.cli.command("upload-to-custom-vision")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--split",
    "splits",
    multiple=True,
    default=("train", "val"),
    show_default=True,
    help="Splits to upload (repeatable).",
)
def upload_to_custom_vision_command(dataset: Path, splits: tuple[str, ...]) -> None:
    """Upload DATASET's labelled crops to your Custom Vision project, tagged DeepFake / Not DeepFake."""
    settings = services().settings
    if not (settings.vision_training_endpoint and settings.vision_training_key and settings.vision_project_id):
        raise click.UsageError("Set VISION_TRAINING_ENDPOINT, VISION_TRAINING_KEY and VISION_PROJECT_ID first.")
    client = training.training_client(settings.vision_training_endpoint, settings.vision_training_key)
    retry = custom_vision.AzureRetry(settings.azure_max_retries, settings.azure_retry_backoff_s)
    rows = training.count_rows(dataset, splits)
    try:
        with click.progressbar(length=rows, label="uploading crops", show_pos=True) as bar:
            report = training.upload_to_custom_vision(
                dataset,
                client,
                settings.vision_project_id,
                retry=retry,
                deepfake_tag=settings.deepfake_tag,
                real_tag=settings.real_tag,
                splits=splits,
                progress=bar.update,
            )
    except custom_vision.ClassifierError as error:
        raise click.ClickException(str(error)) from error
    finally:
        client.close()
    created = ", ".join(report.created_tags) or "none"
    click.echo(
        f"uploaded {report.uploaded} crops, {report.duplicates} already there, {len(report.failed)} refused; tags created: {created}"
    )
    for failure in report.failed[:20]:
        click.echo(f"  {failure['image']}: {failure['status']}", err=True)
    if report.failed:
        raise SystemExit(1)


@bp.cli.command("benchmark")
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--repeat", type=int, default=5, show_default=True, help="Timed classifier runs over the crops.")
def benchmark_command(videos: tuple[str, ...], repeat: int) -> None:
    """Time analyze on VIDEOS (decode, detect, classify) and the classifier alone, per crop."""
    settings = services().settings
    detector, classifier = services().detector, services().classifier
    classifier.classify([np.zeros((64, 64, 3), dtype=np.uint8)])  # warm-up: first calls build graphs
    crops, ratios = [], []
    for path in videos:
        result = pipeline.analyze(path, settings, detector=detector, classifier=classifier)
        t = result.timings_s
        ratios.append(t["classify"] / t["detect"] if t["detect"] else float("inf"))
        click.echo(
            f"{Path(path).name}: {len(result.crops)} crops; decode {t['decode']:.3f}s, detect {t['detect']:.3f}s, "
            f"classify {t['classify']:.3f}s (classify/detect {ratios[-1]:.3f}), total {t['total']:.3f}s"
        )
        for frame in face.FrameSampler(path, settings.frame_interval):
            crops += face.crop_faces(
                frame.image,
                detector.detect(frame.image),
                min_confidence=settings.min_face_confidence,
                margin=settings.crop_margin,
            )
    images = [crop.image for crop in crops]
    per_crop_ms = []
    for _ in range(repeat):
        started = time.perf_counter()
        classifier.classify(images)
        per_crop_ms.append((time.perf_counter() - started) / max(1, len(images)) * 1000)
    click.echo(
        f"classifier {classifier.name}: {len(images)} crops a batch, median {statistics.median(per_crop_ms):.2f} ms a crop "
        f"over {repeat} runs; classify/detect in analyze: max {max(ratios):.3f}"
    )
