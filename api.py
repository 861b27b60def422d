"""The REST API: submit a video, follow its analysis, fetch the result, delete everything of it.

POST   /api/videos        multipart field `video`, or a link: JSON {"url": ...} or form field `url`
                          -> 202 {id, status_url, result_url}
GET    /api/videos/<id>   -> {id, status, stage, progress, frames_done, frames_total, result?,
                              error? (a sentence in the Accept-Language), error_code?}
DELETE /api/videos/<id>   -> 204; the job, its upload, crops and result are gone

Errors are JSON {error: message} (app.py's handlers).
"""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for
from flask_babel import gettext as _

import jobs
import wording
from intake import BadUploadError, accept_file_or_link, services, upload_limit

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/videos")
@upload_limit
def submit():
    body = request.get_json(silent=True) if request.is_json else None
    url = (body or {}).get("url") if isinstance(body, dict) else request.form.get("url", "")
    try:
        if request.is_json and not isinstance(url, str):
            raise BadUploadError(_('Send JSON like {"url": "https://..."}.'))
        analysis_id = accept_file_or_link(request.files.get("video"), url or "")
    except BadUploadError as error:
        return jsonify(error=str(error)), 400
    body = {
        "id": analysis_id,
        "status_url": url_for("api.status", analysis_id=analysis_id, _external=True),
        "result_url": url_for("web.results", analysis_id=analysis_id, _external=True),
    }
    return jsonify(body), 202, {"Location": body["status_url"]}


@bp.get("/videos/<analysis_id>")
def status(analysis_id: str):
    return jsonify(job_state(analysis_id))


@bp.delete("/videos/<analysis_id>")
def delete(analysis_id: str):
    if not delete_analysis(analysis_id):
        abort(404)
    return "", 204


def job_state(analysis_id: str) -> dict:
    """The API's view of one analysis (404 when unknown); the result in `analyze --json`'s shape."""
    job = services().store.get(analysis_id)
    if job is None:
        abort(404)
    state = {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "frames_done": job.frames_done,
        "frames_total": job.frames_total,
    }
    if job.status == jobs.DONE:
        state["result"] = services().folders.result_dict(analysis_id)
    if job.status == jobs.FAILED:
        state["error"] = wording.failure_message(job.failure)
        state["error_code"] = job.failure.code
    return state


def delete_analysis(analysis_id: str) -> bool:
    """Delete the job and its folder; False when neither exists."""
    app_services = services()
    had_folder = app_services.folders.folder(analysis_id) is not None
    cancelled = app_services.queue.cancel(analysis_id)  # a running analysis stops at its next batch
    app_services.folders.delete(analysis_id)
    return cancelled or had_folder
