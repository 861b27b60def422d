"""The pages: upload form, a job's page (live progress, then its results), my analyses, language."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import gettext as _

import jobs
import pipeline
from api import delete_analysis
from intake import BadUploadError, accept_upload, services
from storage import CROPS_DIR, RESULT_FILE

bp = Blueprint("web", __name__)

LANGUAGES = {"en": "English", "ko": "한국어"}
MY_ANALYSES = "analyses"  # session key: the ids this browser started, newest first
MY_ANALYSES_KEPT = 50


@bp.get("/")
def index():
    return render_template("index.html", max_upload_mb=services().settings.max_upload_mb)


@bp.post("/upload")
def upload():
    try:
        analysis_id = accept_upload(request.files.get("video"))
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
        return render_template(
            "results.html", analysis_id=analysis_id, result=result, timeline=pipeline.timeline(result)
        )
    if job.status == jobs.FAILED:
        return render_template(
            "failed.html",
            analysis_id=analysis_id,
            error=job.error,
            can_retry=services().folders.upload_path(analysis_id) is not None,
        )
    return render_template("job.html", analysis_id=analysis_id, job=job)


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
    if services().folders.upload_path(analysis_id) is None or not services().store.requeue(analysis_id):
        abort(404)
    services().runner.notify()
    return redirect(url_for("web.results", analysis_id=analysis_id))


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
        entries.append({"id": analysis_id, "job": job, "result": result})
    return render_template("mine.html", entries=entries)


@bp.get("/language/<code>")
def language(code: str):
    """The language switch: remembered in the session, then back to the page it was used on."""
    if code not in LANGUAGES:
        abort(404)
    session["language"] = code
    back = urlsplit(request.referrer or "")
    same_site = back.netloc == request.host and back.path.startswith("/")
    return redirect(back.path if same_site else url_for("web.index"))
