"""The Flask app: the factory, error pages, security headers, language, and the CLI commands.

flask --app app run                  the upload page at http://127.0.0.1:5000 (make run: gunicorn)
flask --app app analyze VIDEO...     a verdict per video (--json for one JSON object per line)

Pages live in web.py, the REST API in api.py; both hand uploads to intake.py and jobs.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Blueprint, Flask, jsonify, render_template, request, session
from flask_babel import Babel, format_datetime, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import api
import benchmarks
import custom_vision
import download
import evaluation
import face
import jobs
import pipeline
import training
import web
import wording
from config import Settings
from intake import limiter, services
from services import Services

log = logging.getLogger(__name__)

MB = 1024 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

PRIVATE_PATHS = ("/results/", "/api/", "/mine")

cli = Blueprint("cli", __name__, cli_group=None)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app from the settings (code defaults, then the environment, then ``test_config``).

    Settings live in one place, ``services().settings`` (the pages see it as ``settings``); app.config
    holds only what Flask and its extensions read. `.env` is loaded by the entry points (the flask
    command, wsgi.py, tasks.py), not here, so it never leaks into tests. Nothing starts here either:
    the entry points start the job queue.
    """
    app = Flask(__name__, instance_relative_config=True)
    settings = Settings.from_environment(test_config)
    setting_keys = {field.name.upper() for field in dataclasses.fields(Settings)}
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_upload_mb * MB, BABEL_DEFAULT_LOCALE="en")
    app.config.from_mapping({key: value for key, value in (test_config or {}).items() if key not in setting_keys})
    app.config["SECRET_KEY"] = app.config.get("SECRET_KEY") or os.environ.get("SECRET_KEY") or _instance_secret(app)
    app.extensions["deepfake"] = Services(settings)
    if settings.proxy_hops:  # the client's address and scheme as the trusted proxies saw them
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    Babel(app, locale_selector=_locale)
    CSRFProtect(app).exempt(api.bp)  # the API takes no cookies, so there is no session to ride on
    app.register_blueprint(web.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(cli)
    limiter.init_app(app)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    for code in (400, 404, 405, 413, 429, 500):
        app.register_error_handler(code, _error_page)
    app.context_processor(lambda: {"languages": web.LANGUAGES, "get_locale": get_locale, "settings": settings})
    app.jinja_env.filters["datetime_label"] = lambda moment: (
        format_datetime(datetime.fromtimestamp(moment, tz=UTC), "short", rebase=False) + " UTC"
    )
    app.jinja_env.filters["iso_time"] = lambda moment: datetime.fromtimestamp(moment, tz=UTC).isoformat()
    app.jinja_env.filters["duration"] = wording.duration
    return app


def _locale() -> str:
    """The language picked with the switch, else the browser's Accept-Language, else English."""
    chosen = session.get("language")
    if chosen in web.LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(web.LANGUAGES)) or "en"


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.path.startswith(PRIVATE_PATHS):  # faces and verdicts: never kept by a browser or a proxy
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _instance_secret(app: Flask) -> str:
    """A secret key kept in the instance folder, so sessions survive a restart."""
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _csrf_error(error: CSRFError):
    message = _("The form was out of date or did not come from this site: reload the page and try again.")
    if _wants_json():
        return jsonify(error=message), 400
    return render_template("error.html", code=400, message=message), 400


def _error_page(error: Exception):
    code = error.code if isinstance(error, HTTPException) else 500
    messages = {
        400: _("The request could not be understood."),
        404: _("There is nothing here. Analyses are kept only for a while; upload the video again."),
        405: _("That method is not allowed here."),
        413: _("The file is too large: the limit is %(limit)s MB.", limit=services().settings.max_upload_mb),
        429: _("Too many uploads from your address: wait a minute and try again."),
        500: _("Something went wrong on our side. Try again in a moment."),
    }
    message = messages.get(code, _("Something went wrong."))
    if code == 500:
        log.exception("unhandled error", exc_info=error)
    if _wants_json():
        return jsonify(error=message), code
    return render_template("error.html", code=code, message=message), code


@cli.cli.command("analyze")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a summary line.")
def analyze_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Analyse videos or photos (files, or http(s) links to them) and print a verdict for each."""
    failed = 0
    for path in paths:
        try:
            result = _analyze_path_or_link(path)
        except (face.UnreadableMediaError, custom_vision.ClassifierError, download.LinkError) as error:
            failed += 1
            message = (
                wording.failure_message(jobs.Failure(error.code, error.params))
                if isinstance(error, download.LinkError)
                else str(error)
            )
            click.echo(f"{path}: error: {message}", err=True)
            if as_json:
                click.echo(json.dumps({"file": path, "error": message}))
            continue
        result.file = path
        if as_json:
            click.echo(json.dumps(pipeline.result_to_dict(result)))
        else:
            probability = "-" if result.deepfake_probability is None else f"{result.deepfake_probability:.3f}"
            crops = f"{len(result.crops)} crop{'' if len(result.crops) == 1 else 's'}"
            click.echo(
                f"{path}: {result.verdict} (deepfake probability {probability}, {crops}, confidence {result.confidence})"
            )
    if failed:
        raise SystemExit(1)


def _analyze_path_or_link(path: str) -> pipeline.Result:
    """A file analysed where it is; a link's video fetched into a temporary folder first (and gone after)."""
    settings = services().settings
    run = functools.partial(
        pipeline.analyze, settings=settings, detector=services().detector, classifier=services().classifier
    )
    if not path.lower().startswith(("http://", "https://")):
        return run(path)
    with tempfile.TemporaryDirectory(prefix="deepfake-link-") as folder:
        video = download.fetch(path, Path(folder), jobs.download_limits(settings))
        result = run(video, max_seconds=settings.max_video_seconds)
    result.source_url = path
    return result


@cli.cli.command("build-dataset")
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


def parse_widths(context: click.Context, parameter: click.Parameter, value: str) -> tuple[int, ...]:
    """Stage widths as `--widths` spells them (a click callback): positive whole numbers, comma-separated."""
    try:
        widths = tuple(int(part) for part in value.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive whole numbers (e.g. 24,48,96)")
    return widths


SHARE = click.FloatRange(0.0, 1.0)


def recipe_option(flags: str, help: str | None = None, value_type: click.ParamType | type | None = None):
    """A `train` option that sets the `training.TrainConfig` field its flag names (``--part-share``:
    part_share; ``--degrade/--no-degrade``: degrade), with that field's default."""
    field = flags.split("/")[0].removeprefix("--").replace("-", "_")
    return click.option(
        flags, field, type=value_type, default=getattr(training.TrainConfig, field), show_default=True, help=help
    )


@cli.cli.command("train")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: models/.")
@recipe_option("--epochs", value_type=int)
@recipe_option("--seed", value_type=int)
@recipe_option("--input-size", "Crops are resized to this.", value_type=int)
@recipe_option(
    "--group-batches/--shuffle-crops",
    "Put a group's crops (a real video and its fakes) in the same batch, or shuffle crops one by one.",
)
@recipe_option(
    "--pseudo-fakes/--no-pseudo-fakes", "Also show every real face as a self-blended pseudo-fake, made anew each epoch."
)
@recipe_option("--degrade/--no-degrade", "Degrade real and fake crops alike at random (JPEG, rescaling, blur, noise).")
@recipe_option(
    "--codec-share",
    "The share of the degradations coded as H.264, as a video is, instead of as JPEG (0: JPEG only).",
    value_type=SHARE,
)
@recipe_option(
    "--paired-views/--apart-views",
    "Show a real face and its pseudo-fake alike (the same framing, light, colours, damage and flip), "
    "so that they differ by the blend alone.",
)
@recipe_option(
    "--recolour/--no-recolour",
    "Show real and fake crops alike in other colours at random (exposure, gamma, white balance, saturation).",
)
@recipe_option(
    "--light-and-pose/--no-light-and-pose",
    "Show real and fake crops alike tilted, reframed and lit from one side at random.",
)
@recipe_option(
    "--dfdc-fake-share", "With pseudo-fakes: the share of the dataset's own fakes shown each epoch.", value_type=SHARE
)
@recipe_option(
    "--sharpness-matched-fakes/--fakes-as-they-come",
    "With pseudo-fakes: draw the dataset's own fakes so that they are spread over sharpness as the real faces "
    "are (more of the sharp ones, fewer of the soft): softness alone then does not tell them from real faces.",
)
@recipe_option(
    "--part-share",
    "The share of pseudo-fakes blended over one part of the face (mouth, eyes, or nose and mouth).",
    value_type=SHARE,
)
@recipe_option(
    "--low-res-share",
    "The share of pseudo-fakes whose blended-in face was rendered at a lower resolution (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--swap-share",
    "The share of pseudo-fakes that blend in another real face of the split, as Face X-ray does (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--outline-share",
    "The share of whole-face pseudo-fake masks drawn out to the face's outline, where a swap's seam runs (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--erase-share",
    "The share of crops, real and fake alike, with one patch painted over in their mean colour (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--soft-share",
    "The share of self-blended pseudo-fakes whose blended-in copy is only softer, its colours and place kept (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--smooth-share",
    "The share of the softer copies (of --soft-share and --extra-soft-share) smoothed with their edges kept, "
    "as a generator paints a face, instead of blurred or rendered small (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--soft-part-share",
    "The share of the softer self-blends on top (--extra-soft-share) blended over one part of the face, "
    "the mouth, the eyes or the nose, as a reenactment re-renders a part of a face.",
    value_type=SHARE,
)
@recipe_option(
    "--extra-soft-share",
    "The share of real faces also shown as a softer self-blend, on top of their pseudo-fake (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--extra-part-share",
    "The share of real faces also shown as a self-blend over one part of the face (mouth, eyes or nose), on top of "
    "their pseudo-fake (0: none).",
    value_type=SHARE,
)
@recipe_option(
    "--soft-real-share",
    "The share of real faces also shown softened whole, as a real face: a softer self-blend's softness without its "
    'seam, so that a soft face alone is no cue for "fake" (0: none).',
    value_type=SHARE,
)
@recipe_option(
    "--deform-share",
    "The share of pseudo-fake blend masks bent out of shape by a smooth random warp, as Face X-ray bends its hulls (0: none).",
    value_type=SHARE,
)
@recipe_option("--fake-weight", "The fakes' share of the loss (real faces have the rest).", value_type=float)
@recipe_option(
    "--turned-weight",
    "How much more an example of a face turned to one side counts in the loss than another of its class (1: alike).",
    value_type=click.FloatRange(0.0, min_open=True),
)
@recipe_option(
    "--label-smoothing",
    "Train against the labels s/2 and 1 - s/2 instead of 0 and 1 (0: none).",
    value_type=click.FloatRange(0.0, 0.5),
)
@recipe_option(
    "--sharpness-rho",
    "Take sharpness-aware steps (SAM) of this radius, as Self-Blended Images does at 0.05; each costs two passes (0: plain).",
    value_type=click.FloatRange(0.0),
)
@recipe_option(
    "--xray-weight",
    "The weight of a second loss: where the blend boundary runs in each crop (face X-ray); 0: none.",
    value_type=click.FloatRange(0.0),
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from this trained model (same network) instead of from scratch.",
)
@click.option(
    "--widths",
    callback=parse_widths,
    default=",".join(map(str, training.TrainConfig.widths)),
    show_default=True,
    help="The filters of each stage of the network, comma-separated.",
)
@recipe_option("--learning-rate", value_type=float)
@recipe_option(
    "--keep-epoch",
    "Keep the weights of the epoch with the best val score, or of the last epoch (for a lever whose trace "
    "the DFDC-heavy val score barely weighs).",
    value_type=click.Choice(training.KEEP_EPOCHS),
)
@recipe_option("--limit", "Use at most this many crops per split (for quick trials; 0: all).", value_type=int)
@click.option(
    "--resume",
    is_flag=True,
    help="Go on with the training stopped between epochs in OUT, from its last epoch done "
    "(give the options it was started with).",
)
def train_command(dataset: Path, out: Path | None, resume: bool, **options) -> None:
    """Train the local classifier on DATASET's train split (val picks the epoch and calibrates it);
    write it to models/. What it needs to go on is kept after each epoch: a training stopped
    between epochs goes on with --resume."""
    out = out or services().settings.local_model_path.parent
    config = training.TrainConfig(**{**options, "init": options["init"] or ""})
    try:
        metrics = training.train(
            dataset,
            out,
            config,
            model_name=services().settings.local_model_path.name,
            progress=click.echo,
            resume=resume,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    best = metrics["best"]
    click.echo(
        f"{config.keep_epoch} epoch {metrics['best_epoch']}: val ROC AUC {best['val_auc_dfdc']}, pseudo-fake val ROC AUC "
        f"{best['val_auc_pseudo']}; temperature {metrics['temperature']}; {metrics['train_seconds']:.0f}s; model in {out}"
    )


@cli.cli.command("widen-model")
@click.argument("network_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--widths", required=True, callback=parse_widths)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .keras file to write.")
@click.option("--seed", type=int, default=training.TrainConfig.seed, show_default=True)
def widen_model_command(network_path: Path, widths: tuple[int, ...], out: Path, seed: int) -> None:
    """Write a copy of MODEL with more filters in its stages that computes the same function (to
    train a wider network on from a trained one: `train --init OUT --widths ...`)."""
    try:
        report = training.widen_model(network_path, widths, out, seed=seed)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"stage widths {report['from']} -> {report['to']}; {report['parameters']} parameters; model in {out}")


@cli.cli.command("average-models")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--weight",
    "weights",
    type=click.FloatRange(min=0, min_open=True),
    multiple=True,
    help="How much each model counts, one per model in order (default: all equal); "
    "--weight 2 --weight 1 keeps two thirds of the first",
)
def average_models_command(dataset: Path, models: tuple[Path, ...], out: Path, weights: tuple[float, ...]) -> None:
    """Average the weights of MODELS (stages of one training chain) into one model, calibrated on
    DATASET's val split; print the val figures of each model and of the average."""
    try:
        report = training.average_models(
            dataset,
            list(models),
            out,
            weights=list(weights) or None,
            model_name=services().settings.local_model_path.name,
            progress=click.echo,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"val score {report['best']['val_score']}; temperature {report['temperature']}; model in {out}")


@cli.cli.command("compare-models")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def compare_models_command(dataset: Path, model_path: Path, baseline: Path) -> None:
    """Whether MODEL beats BASELINE on DATASET's val split beyond its noise: MODEL's val score minus
    BASELINE's, and each val set's ROC AUC difference, with paired bootstrap 95% intervals."""
    try:
        report = training.compare_models(dataset, model_path, baseline, progress=click.echo)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    difference = report["difference"]
    if difference["val_score"] is None:
        raise click.ClickException(f"{dataset}'s val split has no set with both real and fake crops")
    click.echo(training.difference_text(difference))
    for name, row in difference["sets"].items():
        low, high = row["interval"]
        click.echo(f"  {name}: ROC AUC {row['difference']:+.4f} [{low:+.4f}, {high:+.4f}]")


@cli.cli.command("probe-blends")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--condition",
    type=click.Choice(list(training.PROBE_CONDITIONS)),
    default="as cut",
    show_default=True,
    help="show the faces and the blends alike as cut, degraded or re-encoded (as evaluate does)",
)
def probe_blends_command(dataset: Path, models: tuple[Path, ...], condition: str) -> None:
    """Which trace of a blend each of MODELS sees: DATASET's val real faces against themselves
    blended with one change each (colour, blur, sharpening, inside or outside the mask)."""
    try:
        report = training.probe_blends(dataset, list(models), condition=condition)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    for row in report["models"]:
        click.echo(f"{row['model']} ({report['faces']} real val faces, {report['condition']}):")
        for change, figures in row["blends"].items():
            click.echo(f"  {change}: ROC AUC {figures['roc_auc']}, called DeepFake {figures['called_fake']:.1%}")


def _write_json(report: dict, json_path: str | None) -> None:
    """``report`` as JSON to ``json_path`` ('-': stdout; None: nowhere)."""
    if json_path:
        text = json.dumps(report, indent=2)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text)


@cli.cli.command("probe-damage")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="val", show_default=True, help="The split to score ('all' for every crop).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the report as JSON here ('-': stdout).",
)
def probe_damage_command(dataset: Path, split: str, json_path: str | None) -> None:
    """Which damage brings the classifier's false alarms: DATASET's crops shrunk and coded step by step
    (a third of the size, JPEG, H.264 at several rate factors), each step's ROC AUC and false alarms."""
    split = None if split == "all" else split
    try:
        work = len(evaluation.DAMAGE_LADDER) * training.count_rows(dataset, split)
        with click.progressbar(length=work, label="probing", show_pos=True) as bar:
            report = evaluation.damage_ladder(dataset, services().classifier, split, progress=bar.update)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(evaluation.ladder_summary(report))
    _write_json(report, json_path)


@cli.cli.command("evaluate")
@click.argument("sets", nargs=-1)
@click.option(
    "--split", default="test", show_default=True, help="For a dataset: the split to score ('all' for every crop)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the report as JSON here ('-': stdout).",
)
def evaluate_command(sets: tuple[str, ...], split: str, json_path: str | None) -> None:
    """Score the classifier on several SETS at once, side by side.

    A SET is a build-dataset folder (its split is scored as cut, degraded to low quality, in other
    colours, and lit from one side) or a folder of real/ and fake/ videos analysed as the app does;
    FOLDER@N analyses one frame in N (at least MIN_FRAMES a video).
    Default: datasets/dfdc_crops ../shared/data/videos ../shared/data/celebdf_faces.
    """
    try:
        chosen = [evaluation.EvaluationSet.parse(text) for text in sets or evaluation.STANDARD_SETS]
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    split = None if split == "all" else split
    try:
        work = sum(chosen_set.work(split) for chosen_set in chosen)
        with click.progressbar(length=work, label="evaluating", show_pos=True) as bar:
            report = evaluation.evaluate_sets(
                chosen,
                services().settings,
                detector=services().detector,
                classifier=services().classifier,
                split=split,
                progress=bar.update,
            )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(evaluation.summary(report))
    _write_json(report, json_path)


@cli.cli.command("upload-to-custom-vision")
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


@cli.cli.command("benchmark")
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--repeat", type=int, default=5, show_default=True, help="Timed classifier runs over the crops.")
def benchmark_command(videos: tuple[str, ...], repeat: int) -> None:
    """Time analyze on VIDEOS against a plain sequential decode (OpenCV, every frame) + detect of the
    same frames, and against itself without overlap, with its peak memory; then the classifier alone,
    per crop."""
    settings = services().settings
    warm = services().warm_up()
    detector = services().detector
    classifier = services().classifier
    recorder = benchmarks.RecordingClassifier(classifier)
    click.echo(f"models warmed up in {warm:.1f}s")
    classify_vs_detect = []
    for path in videos:
        grab = benchmarks.grab_all(path)
        baseline = benchmarks.sequential_decode_and_detect(path, settings, detector)
        without_overlap = pipeline.analyze(path, settings, detector=detector, classifier=classifier, read_ahead=0)
        with benchmarks.PeakMemory() as memory:
            result = pipeline.analyze(path, settings, detector=detector, classifier=recorder)
        t = result.timings_s
        classify_vs_detect.append(t["classify"] / t["detect"] if t["detect"] else float("inf"))
        click.echo(
            f"{Path(path).name}: {result.frames_total} frames, {result.frames_sampled} sampled, {len(result.crops)} crops; "
            f"analyze total {t['total']:.2f}s (decode {t['decode']:.2f}s, detect {t['detect']:.2f}s, classify "
            f"{t['classify']:.2f}s, overlapped); grab() alone {grab:.2f}s; sequential decode + detect {baseline:.2f}s; "
            f"ratio {t['total'] / baseline:.2f}; analyze without overlap {without_overlap.timings_s['total']:.2f}s; "
            f"peak memory {memory.peak_mb:.0f} MB"
        )
    images = recorder.crops  # the crops analyze made
    per_crop_ms = []
    for _run in range(repeat):
        started = time.perf_counter()
        classifier.classify(images)
        per_crop_ms.append((time.perf_counter() - started) / max(1, len(images)) * 1000)
    click.echo(
        f"classifier {classifier.name}: {len(images)} crops a batch, median {statistics.median(per_crop_ms):.2f} ms a crop "
        f"over {repeat} runs; classify/detect in analyze: max {max(classify_vs_detect):.3f}"
    )
