"""A video from a link: checked, then fetched with yt-dlp (which knows the video sites and plain
links alike) into an analysis folder, within limits of size, length and time, and never from an
address inside the server's own network. No Flask in here.

Server-side request forgery: every name yt-dlp resolves while fetching (the link's host, each
redirect's, each CDN's) goes through `socket.getaddrinfo` in the fetching thread, which this module
guards: an answer holding a loopback, private, link-local, multicast or reserved address (IPv4 or
IPv6) is refused before any connection is made. Proxies from the environment are not used, so there
is no way around the check.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_LINK_LENGTH = 2048
# What went wrong, as codes the pages translate (wording.py).
NOT_A_LINK = "not_a_link"
PRIVATE_ADDRESS = "private_address"
UNREACHABLE = "unreachable"  # the site could not be reached or does not answer
NO_VIDEO = "no_video"  # the page has no video in it
UNAVAILABLE = "unavailable"  # private, removed, or not found (404)
LOGIN_REQUIRED = "login_required"
TOO_LONG = "too_long"  # params: limit_s
TOO_LARGE = "too_large"  # params: limit_mb
TIMED_OUT = "timed_out"  # params: limit_s
# The format yt-dlp is asked for: one file with sound and picture that needs no merging, an mp4 of at
# most 720 lines where the site offers one, else the best single file.
FORMAT = "b[ext=mp4][height<=720]/b[height<=720]/b/bv*[height<=720]/bv*"


class LinkError(Exception):
    """The link cannot give a video to analyse; ``code`` (above) and ``params`` say why."""

    def __init__(self, code: str, **params: float | str):
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_seconds: float
    timeout_s: float
    allow_private: bool = False


def check_link(url: str) -> str:
    """``url`` when it is a well-formed http(s) link with a host; LinkError(NOT_A_LINK) otherwise."""
    url = (url or "").strip()
    if not url or len(url) > MAX_LINK_LENGTH or any(char.isspace() or ord(char) < 32 for char in url):
        raise LinkError(NOT_A_LINK)
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # port raises ValueError when malformed
    except ValueError as error:
        raise LinkError(NOT_A_LINK) from error
    if parts.scheme not in ("http", "https") or not host:
        raise LinkError(NOT_A_LINK)
    return url


def is_public(address: str) -> bool:
    """Whether ``address`` is one the server may connect to on a user's behalf."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


class _Guard(threading.local):
    active = False
    refused: str | None = None


_guard = _Guard()
_original_getaddrinfo = socket.getaddrinfo
_install_lock = threading.Lock()


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    answers = _original_getaddrinfo(host, port, *args, **kwargs)
    if _guard.active:
        for answer in answers:
            address = answer[4][0]
            if not is_public(address):
                _guard.refused = f"{host} ({address})"
                raise OSError(f"refused to connect to {host}: {address} is not a public address")
    return answers


def _install_guard() -> None:
    with _install_lock:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo


@contextlib.contextmanager
def _public_addresses_only(enabled: bool) -> Iterator[None]:
    """While active, this thread resolves names to public addresses only."""
    _install_guard()
    _guard.active, _guard.refused = enabled, None
    try:
        yield
    finally:
        _guard.active = False


class _Logger:
    """yt-dlp's messages, kept for telling why a download did not happen, and logged at debug."""

    def __init__(self):
        self.messages: list[str] = []

    def debug(self, message: str) -> None:
        self.messages.append(message)
        log.debug("yt-dlp: %s", message)

    info = warning = debug

    def error(self, message: str) -> None:
        self.messages.append(message)
        log.info("yt-dlp: %s", message)


@contextlib.contextmanager
def _closing_responses(downloader) -> Iterator[None]:
    """Every HTTP response ``downloader`` opens is closed on the way out. yt-dlp's HTTP downloader
    closes the file but not the connection when a progress hook stops it mid-file (too large, timed
    out, job deleted): the site would keep sending into a connection nobody reads until Python's
    cycle collector happened to free it."""
    opened = []
    urlopen = downloader.urlopen

    def recording_urlopen(request):
        response = urlopen(request)
        opened.append(response)
        return response

    downloader.urlopen = recording_urlopen
    try:
        yield
    finally:
        for response in opened:
            with contextlib.suppress(Exception):
                response.close()


Progress = Callable[[int, int], None]  # bytes so far, bytes expected (0: unknown)


def fetch(url: str, folder: Path, limits: Limits, progress: Progress | None = None) -> Path:
    """Download the video of ``url`` into ``folder`` as upload.<ext>; its path. Raises LinkError,
    leaving no partial file, when it cannot or must not be had."""
    import yt_dlp

    url = check_link(url)
    started = time.monotonic()
    stop: list[LinkError] = []  # why a progress hook stopped the download
    aborted: list[BaseException] = []  # what ``progress`` raised (the job was deleted, say): passed on
    logger = _Logger()

    def hook(status: dict) -> None:
        done = int(status.get("downloaded_bytes") or 0)
        total = int(status.get("total_bytes") or status.get("total_bytes_estimate") or 0)
        if done > limits.max_bytes or total > limits.max_bytes:
            stop.append(LinkError(TOO_LARGE, limit_mb=round(limits.max_bytes / 2**20)))
        elif time.monotonic() - started > limits.timeout_s:
            stop.append(LinkError(TIMED_OUT, limit_s=limits.timeout_s))
        if stop:
            raise stop[-1]
        if progress and status.get("status") == "downloading":
            try:
                progress(done, total)
            except BaseException as error:
                aborted.append(error)
                raise

    def length_filter(info: dict, *, incomplete: bool = False) -> str | None:
        duration = info.get("duration")
        if duration and duration > limits.max_seconds:
            stop.append(LinkError(TOO_LONG, limit_s=limits.max_seconds))
            return "too long"
        return None

    options = {
        "outtmpl": str(folder / "upload.%(ext)s"),
        "format": FORMAT,
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": limits.max_bytes,
        "match_filter": length_filter,
        "progress_hooks": [hook],
        "socket_timeout": min(30.0, limits.timeout_s),
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "concurrent_fragment_downloads": 1,
        "proxy": "",  # no proxy from the environment: every connection is checked here
        "cachedir": False,
        "overwrites": True,
        "noprogress": True,
        "quiet": True,
        "no_warnings": True,
        "logger": logger,
        "nopart": False,
        "updatetime": False,
    }
    try:
        with (
            _public_addresses_only(not limits.allow_private),
            yt_dlp.YoutubeDL(options) as downloader,
            _closing_responses(downloader),
        ):
            downloader.extract_info(url, download=True)
            refused = _guard.refused
    except LinkError:
        _clean(folder)
        raise
    except Exception as error:  # yt-dlp's DownloadError and what it wraps
        _clean(folder)
        if aborted:
            raise aborted[-1] from error
        refused = _guard.refused
        if refused:
            log.warning("refused a link to a non-public address: %s", refused)
            raise LinkError(PRIVATE_ADDRESS) from error
        if stop:
            raise stop[-1] from error
        raise LinkError(classify(str(error))) from error
    if refused:
        _clean(folder)
        raise LinkError(PRIVATE_ADDRESS)
    if stop:
        _clean(folder)
        raise stop[-1]
    found = [path for path in folder.glob("upload.*") if not path.name.endswith((".part", ".ytdl"))]
    if not found:
        _clean(folder)
        said = " ".join(logger.messages).lower()
        if "max-filesize" in said or "larger than" in said:
            raise LinkError(TOO_LARGE, limit_mb=round(limits.max_bytes / 2**20))
        raise LinkError(NO_VIDEO)
    return found[0]


def classify(message: str) -> str:
    """A code for yt-dlp's error message (they are meant for people; these are the stable parts)."""
    text = message.lower()
    if any(word in text for word in ("sign in", "log in", "login", "cookies", "authentication", "members only")):
        return LOGIN_REQUIRED
    if any(
        word in text
        for word in (
            "private video",
            "video unavailable",
            "has been removed",
            "not available",
            "http error 404",
            "http error 410",
            "does not exist",
            "deleted",
        )
    ):
        return UNAVAILABLE
    if "unsupported url" in text or "no video formats" in text or "no media" in text:
        return NO_VIDEO
    return UNREACHABLE


def _clean(folder: Path) -> None:
    for path in folder.glob("upload*"):
        with contextlib.suppress(OSError):
            path.unlink()
