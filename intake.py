"""An upload in: its content checked (not its name), stored under a new unguessable folder with a
name the server chooses, and queued for analysis. Shared by the upload form and the REST API.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.datastructures import FileStorage

import download
import face
import wording
from services import Services

DISPLAY_NAME_MAX = 200


class BadUploadError(ValueError):
    """An upload that cannot be analysed; the message is shown to the person who sent it."""


def services() -> Services:
    return current_app.extensions["deepfake"]


# Uploads per client address (UPLOAD_RATE_LIMIT), declared on the upload views with `upload_limit`.
limiter = Limiter(get_remote_address, storage_uri="memory://", headers_enabled=True)
upload_limit = limiter.limit(lambda: services().settings.upload_rate_limit)


def accept_upload(file: FileStorage | None) -> str:
    """Store and queue an uploaded video or photo; its analysis id. Raises BadUploadError, keeping
    nothing, when it is missing, empty, unreadable or too long."""
    if file is None or not file.filename:
        raise BadUploadError(_("No file was sent: choose a video or a photo to analyse."))
    app_services = services()
    folders, settings = app_services.folders, app_services.settings
    suffix = Path(file.filename).suffix.lower()
    suffix = suffix if suffix in face.VIDEO_EXTENSIONS + face.IMAGE_EXTENSIONS else ""
    folder = folders.create()
    path = folders.new_upload_path(folder, suffix)
    try:
        file.save(path)
        if path.stat().st_size == 0:
            raise BadUploadError(_("The file is empty."))
        try:
            info = face.probe(path, settings.max_pixels)
        except face.TooManyPixelsError as error:
            raise BadUploadError(
                _(
                    "The picture is %(width)s x %(height)s pixels; at most %(limit)s million pixels can be analysed.",
                    width=error.width,
                    height=error.height,
                    limit=round(error.limit / 1e6),
                )
            ) from error
        except face.UnreadableMediaError as error:
            raise BadUploadError(
                _(
                    "This file is not a video or photo that can be read. "
                    "Send a video (mp4, mov, avi, mkv, webm) or a photo (jpg, png, webp)."
                )
            ) from error
        if info.duration_s > settings.max_video_seconds:
            raise BadUploadError(
                _(
                    "The video is %(length)s long; videos up to %(limit)s can be analysed. Cut it shorter and try again.",
                    length=wording.duration(info.duration_s),
                    limit=wording.duration(settings.max_video_seconds),
                )
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    app_services.store.create(folder.name, file_name=display_name(file.filename), media=info.kind)
    app_services.queue.submit(folder.name)
    return folder.name


def accept_file_or_link(file: FileStorage | None, url: str) -> str:
    """The form's file, or its link: one of them."""
    has_file, has_link = bool(file and file.filename), bool(url.strip())
    if has_file and has_link:
        raise BadUploadError(_("Choose a file or paste a link, not both."))
    return accept_link(url) if has_link else accept_upload(file)


def accept_link(url: str | None) -> str:
    """Queue the video behind a link (fetched by the job, in its downloading stage); its analysis
    id. Raises BadUploadError, keeping nothing, when the link is not a well-formed http(s) link."""
    try:
        url = download.check_link(url or "")
    except download.LinkError as error:
        raise BadUploadError(
            _("That is not a link to a web page or video: it must start with http:// or https://.")
        ) from error
    app_services = services()
    folder = app_services.folders.create()
    app_services.store.create(folder.name, file_name=link_label(url), source_url=url)
    app_services.queue.submit(folder.name)
    return folder.name


def link_label(url: str) -> str:
    """How a link is named where a file name would be: its host and path, without the scheme."""
    parts = urlsplit(url)
    return _shown(parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")) or "link"


def display_name(filename: str) -> str:
    """The uploaded file's name as it may be shown: no folders, no control or format characters
    (a right-to-left override could disguise the extension), at most 200 characters."""
    return _shown(filename.replace("\\", "/").rsplit("/", 1)[-1]) or "upload"


def _shown(text: str) -> str:
    text = "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    return " ".join(text.split())[:DISPLAY_NAME_MAX].strip()
