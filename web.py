"""The pages: upload form, a job's page (live progress, then its results), the downloadable report,
my analyses, about the model, language."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import gettext as _

import confidence
import evaluation
import jobs
import pipeline
import wording
from api import delete_analysis
from intake import BadUploadError, accept_file_or_link, services, upload_limit
from storage import CROPS_DIR, RESULT_FILE

bp = Blueprint("web", __name__)

LANGUAGES = {"en": "English", "ko": "한국어"}
MY_ANALYSES = "analyses"  # session key: the ids this browser started, newest first
MY_ANALYSES_KEPT = 50
GALLERY_ORDERS = ("time", "suspicious")
# The downloaded report is one file: its style is inline and its images are data: URIs, nothing else.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@bp.get("/")
def index():
    return render_template("index.html")


@bp.post("/upload")
@upload_limit
def upload():
    try:
        analysis_id = accept_file_or_link(request.files.get("video"), request.form.get("url", ""))
    except BadUploadError as error:
        return render_template("error.html", code=400, message=str(error)), 400
    session[MY_ANALYSES] = [analysis_id, *session.get(MY_ANALYSES, [])][:MY_ANALYSES_KEPT]
    return redirect(url_for("web.results", analysis_id=analysis_id))


@bp.get("/results/<analysis_id>")
def results(analysis_id: str):
    """While the analysis runs: a progress bar that follows it. Then its result, or why it failed."""
    job = services().store.get(analysis_id)
    if job is None or job.status == jobs.DONE:
        result = services().folders.result(analysis_id)
        if result is None:
            abort(404)
        person = request.args.get("person", type=int)
        order = request.args.get("order") if request.args.get("order") in GALLERY_ORDERS else "time"
        return render_template(
            "results.html",
            **result_view(analysis_id, result),
            gallery=gallery(result, person, order),
            person_filter=person,
            order=order,
        )
    if job.status == jobs.FAILED:
        return render_template(
            "failed.html",
            analysis_id=analysis_id,
            error=wording.failure_message(job.failure),
            can_retry=services().folders.upload_path(analysis_id) is not None or bool(job.source_url),
        )
    return render_template("job.html", analysis_id=analysis_id, job=job, stages=wording.stage_labels())


@bp.get("/results/<analysis_id>/report")
def report(analysis_id: str):
    """The whole result as one HTML file that needs nothing else: readable offline after the
    analysis is swept, printable to PDF from the browser."""
    result = services().folders.result(analysis_id)
    if result is None:
        abort(404)
    folder = services().folders.folder(analysis_id)
    images = {}
    for index, crop in enumerate(result.crops):
        path = folder / crop.image if crop.image else None
        if path is not None and path.is_file():
            images[index] = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    style = (Path(bp.root_path) / "static" / "style.css").read_text()
    page = render_template(
        "report.html",
        **result_view(analysis_id, result),
        gallery=gallery(result, None, "time"),
        images=images,
        style=style,
    )
    response = make_response(page)
    response.headers["Content-Disposition"] = f'attachment; filename="deepfake-report-{analysis_id[:8]}.html"'
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    return response


def result_view(analysis_id: str, result: pipeline.Result) -> dict:
    """What the results page and the report both show."""
    return {
        "analysis_id": analysis_id,
        "result": result,
        "timeline": pipeline.timeline(result),
        "summary": wording.crop_summary(result.fake_crop_count, len(result.crops)),
        "reasons": wording.confidence_reasons(result),
        "people_lines": {person.person: wording.person_summary(person) for person in result.people},
    }


def gallery(result: pipeline.Result, person: int | None, order: str) -> list[tuple[int, pipeline.CropResult]]:
    """The crops to show, with their indexes: one person's or everyone's, in time order or the most
    suspicious first."""
    crops = [(index, crop) for index, crop in enumerate(result.crops) if person is None or crop.person == person]
    if order == "suspicious":
        crops.sort(key=lambda item: -item[1].probabilities["DeepFake"])
    return crops


@bp.get("/results/<analysis_id>/result.json")
def result_json(analysis_id: str):
    folder = services().folders.folder(analysis_id)
    if folder is None or not (folder / RESULT_FILE).is_file():
        abort(404)
    return send_from_directory(
        folder, RESULT_FILE, as_attachment=True, download_name=f"deepfake-analysis-{analysis_id[:8]}.json"
    )


@bp.post("/results/<analysis_id>/retry")
def retry(analysis_id: str):
    job = services().store.get(analysis_id)
    retryable = job is not None and (services().folders.upload_path(analysis_id) is not None or job.source_url)
    if not retryable or not services().queue.retry(analysis_id):
        abort(404)
    return redirect(url_for("web.results", analysis_id=analysis_id))


@bp.get("/results/<analysis_id>/delete")
def confirm_delete(analysis_id: str):
    """Delete asks first: this page's button does it."""
    if services().store.get(analysis_id) is None and services().folders.folder(analysis_id) is None:
        abort(404)
    return render_template("delete.html", analysis_id=analysis_id)


@bp.post("/results/<analysis_id>/delete")
def delete(analysis_id: str):
    if not delete_analysis(analysis_id):
        abort(404)
    session[MY_ANALYSES] = [i for i in session.get(MY_ANALYSES, []) if i != analysis_id]
    flash(_("The analysis, its face crops and its result were deleted."))
    return redirect(url_for("web.mine"))


@bp.get("/results/<analysis_id>/crops/<name>")
def crop_image(analysis_id: str, name: str):
    folder = services().folders.folder(analysis_id)
    if folder is None:
        abort(404)
    return send_from_directory(folder / CROPS_DIR, name)


@bp.get("/mine")
def mine():
    """The analyses this browser started and that still exist (nothing lists anyone else's)."""
    entries = []
    for analysis_id in session.get(MY_ANALYSES, []):
        job = services().store.get(analysis_id)
        result = services().folders.result(analysis_id)
        if job is None and result is None:
            continue
        name = job.file_name if job and job.file_name else result.file if result else None
        entries.append({"id": analysis_id, "job": job, "result": result, "name": name})
    return render_template("mine.html", entries=entries)


@bp.get("/language/<code>")
def language(code: str):
    """The language switch: remembered in the session, then back to the page it was used on."""
    if code not in LANGUAGES:
        abort(404)
    session["language"] = code
    return redirect(same_site_path(request.referrer) or url_for("web.index"))


def same_site_path(url: str | None) -> str | None:
    """The path of ``url`` when it is a page of this site, else None. A path that starts with two
    slashes (or a backslash, which browsers read as one) would be another site's address."""
    back = urlsplit(url or "")
    if back.scheme not in ("http", "https") or back.netloc != request.host:
        return None
    path = back.path
    if not path.startswith("/") or path.startswith(("//", "/\\")) or "\\" in path:
        return None
    return path


@bp.get("/about-model")
def about_model():
    """The local model's measured figures, read from the files beside it."""
    settings = services().settings
    return render_template(
        "about_model.html",
        figures=evaluation.published_figures(settings.local_model_path),
        classifier="azure"
        if settings.classifier == "azure" or (settings.classifier == "auto" and settings.azure_configured)
        else "local",
        near_half=confidence.NEAR_HALF,
        min_crops=confidence.MIN_CROPS,
        max_dissent=confidence.MAX_DISSENT,
    )
