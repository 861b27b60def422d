"""Decoding a video for sampling (PyAV): its facts from the container, then the sampled frames,
upright, as RGB, without decoding the frames that no sampled frame needs.

A frame's index is its place in presentation order, counted from 0, as a decoder that shows every
frame would count it. Before decoding, the container's packets are listed once (cheap: no decoding)
to learn each one's presentation place from its timestamp; then a packet whose frame is not sampled
and that no other frame refers to (in H.264, most B-frames) is not decoded at all (libavcodec's
``skip_frame = NONREF``). Nothing refers to such a frame, so every sampled frame comes out bit for bit
as a full decode gives it; on 60 s of 1080p H.264 about half the frames are left out and decoding
takes a third less time. When the timestamps cannot tell the order (missing or repeated), every frame
is decoded and counted as it comes.

This module imports nothing of the project.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # when the container tells no frame rate
MAX_LISTED_PACKETS = 500_000  # two hours at 60 fps; past that, nothing is skipped (a hostile file's
# millions of tiny packets would otherwise fill memory with their timestamps)


class UnreadableMediaError(ValueError):
    """The file is neither a readable video nor a readable photo."""


class Video:
    """One open video file. Read its facts, then either take ``first_frame()`` or iterate
    ``sampled(interval)``, once; close it (or use it in a ``with`` block)."""

    def __init__(self, path: str | Path):
        path = str(path)
        if not os.path.isfile(path):
            raise UnreadableMediaError("There is no such file.")
        if os.path.getsize(path) == 0:
            raise UnreadableMediaError("The file is empty.")
        try:
            self._container = av.open(path)
        except (av.FFmpegError, ValueError) as error:
            raise UnreadableMediaError("The file is not a video or photo that can be read.") from error
        if not self._container.streams.video:
            self._container.close()
            raise UnreadableMediaError("The file has no video in it.")
        self.path = path
        self._stream = self._container.streams.video[0]
        self.frames_seen = 0  # after sampling: the frames the video holds
        self.frames_decoded = 0  # after sampling: the frames really decoded

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def stored_size(self) -> tuple[int, int]:
        """Width and height as stored (before any rotation), from the header: known before decoding."""
        context = self._stream.codec_context
        return context.width, context.height

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate  # as OpenCV tells it
        fps = float(rate) if rate else 0.0
        return fps if fps > 0 and np.isfinite(fps) else DEFAULT_FPS

    @property
    def frame_count(self) -> int | None:
        """The container's frame count, or one from its duration: an estimate (sampling tells); None
        when the container tells neither (a browser's live WebM)."""
        if self._stream.frames:
            return self._stream.frames
        if self._stream.duration and self._stream.time_base:
            return max(1, round(float(self._stream.duration * self._stream.time_base) * self.fps))
        if self._container.duration:
            return max(1, round(self._container.duration / av.time_base * self.fps))
        return None

    def first_frame(self) -> np.ndarray:
        """Frame 0, upright, RGB. UnreadableMediaError when there is none that decodes."""
        try:
            for frame in self._container.decode(self._stream):
                return _upright(frame)
        except av.FFmpegError as error:
            raise UnreadableMediaError("The video has no frames that can be decoded.") from error
        raise UnreadableMediaError("The video has no frames that can be decoded.")

    def sampled(self, interval: int) -> Iterator[tuple[int, np.ndarray]]:
        """(index, upright RGB image) of frames 0, ``interval``, 2 * ``interval``, ...; sets
        ``frames_seen`` and ``frames_decoded`` when done."""
        places = self._presentation_places()
        context = self._stream.codec_context
        self._stream.thread_type = "AUTO"
        self.frames_decoded = 0
        for packet in self._container.demux(self._stream):
            if places is not None and packet.size:
                place = places.get(packet.pts)
                context.skip_frame = "DEFAULT" if place is None or place % interval == 0 else "NONREF"
            try:
                frames = packet.decode()
            except av.FFmpegError as error:  # one damaged packet: its frame is lost, not the video
                log.warning("a damaged packet in %s: %s", self.path, error)
                continue
            for frame in frames:
                index = self.frames_decoded if places is None else places.get(frame.pts)
                if index is None:  # a frame whose stamp no packet had: counted instead (never seen so far)
                    log.warning("a frame of %s has a time stamp no packet had; counted instead", self.path)
                    index = self.frames_decoded
                self.frames_decoded += 1
                if index % interval == 0:
                    yield index, _upright(frame)
        self.frames_seen = self.frames_decoded if places is None else len(places)
        if self.frames_decoded == 0:
            raise UnreadableMediaError("The video has no frames that can be decoded.")

    def _presentation_places(self) -> dict[int, int] | None:
        """Each packet's place in presentation order, by timestamp; None when the timestamps cannot
        tell, or there are too many packets to list (then nothing is skipped). Packets the container
        marks to be dropped do not count."""
        stamps = []
        try:
            with av.open(self.path) as container:  # a second reader: this one stays at the start
                for packet in container.demux(container.streams.video[0]):
                    if packet.size and not packet.is_discard:
                        stamps.append(packet.pts)
                    if len(stamps) > MAX_LISTED_PACKETS:
                        return None
        except av.FFmpegError as error:
            log.warning("cannot list the packets of %s: %s", self.path, error)
            return None
        if None in stamps or len(set(stamps)) != len(stamps):
            return None
        return {stamp: place for place, stamp in enumerate(sorted(stamps))}


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB, turned as its rotation flag says (phones store portrait video sideways)."""
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image
