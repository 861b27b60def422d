"""What the server says in words, in the viewer's language: why a job failed, why a verdict is
uncertain, the one-line summary, what a running job is doing, durations. Results and jobs store
codes and numbers; the words are made here when a page, the report or the API shows them.
"""

from __future__ import annotations

from babel.units import format_unit
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

import confidence
import download
import jobs
import pipeline


def failure_message(failure: jobs.Failure | None) -> str:
    """A plain sentence for a failed job; the details are in the server's log, not here."""
    code = failure.code if failure else jobs.INTERRUPTED
    params = failure.params if failure else {}
    if code == jobs.UPLOAD_MISSING:
        return _("The uploaded file is no longer here: upload it again.")
    if code == jobs.UNREADABLE:
        return _("The file could not be read as a video or photo. Send a video (mp4, mov, avi, mkv, webm) or a photo.")
    if code == jobs.TOO_LONG:
        return _(
            "The video is longer than %(limit)s, the most that is analysed. Cut it shorter and try again.",
            limit=duration(float(params.get("limit_s", 0))),
        )
    if code == jobs.TOO_MANY_PIXELS:
        return _(
            "The picture is larger than %(limit)s million pixels, the most that is analysed.",
            limit=params.get("limit_mp", 0),
        )
    if code == jobs.TOO_MANY_FRAMES:
        return _(
            "The video has more than %(limit)s frames to sample, the most that is analysed. Send a shorter clip.",
            limit=params.get("limit", 0),
        )
    if code == jobs.TIMED_OUT:
        return _(
            "It took longer than %(limit)s and was stopped. Try a shorter clip.",
            limit=duration(float(params.get("limit_s", 0))),
        )
    if code == jobs.CRASHED:
        return _(
            "The analysis stopped the server %(attempts)s times and was given up. This file cannot be analysed here.",
            attempts=params.get("attempts", 0),
        )
    if code == download.NOT_A_LINK:
        return _("That is not a link to a web page or video: it must start with http:// or https://.")
    if code == download.PRIVATE_ADDRESS:
        return _("That link leads to an address inside a private network, which this server does not visit.")
    if code == download.UNREACHABLE:
        return _("The site could not be reached or read. Check the link, or download the video and upload the file.")
    if code == download.NO_VIDEO:
        return _("No video was found at that link.")
    if code == download.UNAVAILABLE:
        return _("The video at that link is private, removed or not found.")
    if code == download.LOGIN_REQUIRED:
        return _(
            "The site only shows that video to people who are signed in. Download it yourself and upload the file."
        )
    if code == download.TOO_LARGE:
        return _(
            "The video at that link is larger than %(limit)s MB, the most that is analysed.",
            limit=params.get("limit_mb", 0),
        )
    if code == jobs.CLASSIFIER_FAILED:
        return _("The face crops could not be judged: the classifier is not available right now. Try again later.")
    return _("The analysis stopped unexpectedly. Try again.")


def confidence_reasons(result: pipeline.Result) -> list[str]:
    """Why a verdict is uncertain, a sentence a reason."""
    sentences = {
        confidence.NEAR_HALF_REASON: _(
            "The deepfake probability (%(percent)s%%) is close to one half.",
            percent="%.1f" % (100 * (result.deepfake_probability or 0)),
        ),
        confidence.FEW_CROPS_REASON: ngettext(
            "Only %(num)d face crop was judged.", "Only %(num)d face crops were judged.", len(result.crops)
        ),
        confidence.CROPS_DISAGREE_REASON: _("The face crops disagree: many of them point the other way."),
        confidence.FACES_TURNED_REASON: _(
            "Most faces are turned to one side, where the model finds fewer fakes and raises more false alarms."
        ),
    }
    return [sentences.get(reason, reason) for reason in result.confidence_reasons]


def crop_summary(fake: int, total: int) -> str:
    """ "7 of 10 face crops look fake": counts only, so it cannot contradict the table."""
    return ngettext(
        "%(fake)d of %(num)d face crop looks fake", "%(fake)d of %(num)d face crops look fake", total, fake=fake
    )


def person_summary(person: pipeline.PersonResult) -> str:
    fake = person.stats["DeepFake"].count if "DeepFake" in person.stats else 0
    total = len(person.crops)
    if person.verdict == "DeepFake":
        return ngettext(
            "Person %(person)d looks fake (%(fake)d of %(num)d crop)",
            "Person %(person)d looks fake (%(fake)d of %(num)d crops)",
            total,
            person=person.person,
            fake=fake,
        )
    return ngettext(
        "Person %(person)d looks real (%(fake)d of %(num)d crop looks fake)",
        "Person %(person)d looks real (%(fake)d of %(num)d crops look fake)",
        total,
        person=person.person,
        fake=fake,
    )


def stage_labels() -> dict[str, str]:
    """What a job page says for each stage (and status) a job reports while it waits or runs."""
    return {
        jobs.DOWNLOADING: _("Fetching the video from the link"),
        jobs.QUEUED: _("Waiting for a free worker"),
        jobs.RUNNING: _("Starting the analysis"),
        pipeline.DECODING: _("Reading the video"),
        pipeline.DETECTING: _("Finding faces"),
        pipeline.CLASSIFYING: _("Judging the face crops"),
        pipeline.SAVING: _("Saving the result"),
    }


def duration(seconds: float) -> str:
    """A length of time in the viewer's language: "4.8 s" / "4.8초", "1 min 30 s" / "1분 30초"."""
    locale = str(get_locale() or "en")
    if seconds < 60:
        return format_unit(round(seconds, 1), "duration-second", length="short", locale=locale)
    minutes, rest = divmod(round(seconds), 60)
    parts = [format_unit(minutes, "duration-minute", length="short", locale=locale)]
    if rest:
        parts.append(format_unit(rest, "duration-second", length="short", locale=locale))
    return " ".join(parts)
