"""Faces of the sampled frames grouped into people, so that a video where one of two people is
swapped can say which one.

The method is a simple tracker: frames are taken in time order, and each face is joined to the
person whose last face (seen at most ``MAX_GAP`` sampled frames before) is nearest in place and
similar in size; a face that matches nobody starts a new person. Its limits: two people who cross or
swap places between two samples can be swapped, a person who leaves the picture for longer than the
gap or a cut that moves the camera becomes a new person, and nothing compares the faces themselves.
No Flask, no TensorFlow: boxes in, person numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_GAP = 3  # sampled frames a person may be missing (a blink of the detector) and still continue
MAX_SHIFT = 0.75  # at most this many face widths between the centres of two faces of one person
MAX_SIZE_RATIO = 1.6  # and at most this much bigger or smaller


@dataclass(frozen=True)
class Sighting:
    """One face: the sampled frame it was found in and its box (x1, y1, x2, y2)."""

    frame: int
    box: Sequence[float]


@dataclass
class _Track:
    person: int
    last_frame_rank: int
    box: Sequence[float]


def assign_people(sightings: Sequence[Sighting]) -> list[int]:
    """A person number (1, 2, ... in order of first appearance) for each sighting, in order."""
    frames = sorted({sighting.frame for sighting in sightings})
    rank_of = {frame: rank for rank, frame in enumerate(frames)}
    people = [0] * len(sightings)
    tracks: list[_Track] = []
    for frame in frames:
        rank = rank_of[frame]
        here = [index for index, sighting in enumerate(sightings) if sighting.frame == frame]
        live = [track for track in tracks if rank - track.last_frame_rank <= MAX_GAP]
        pairs = sorted(
            (cost, index, number)
            for index in here
            for number, track in enumerate(live)
            if (cost := _distance(sightings[index].box, track.box)) is not None
        )
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for _cost, index, number in pairs:  # greedy: the closest pairs first
            if index in taken_faces or number in taken_tracks:
                continue
            taken_faces.add(index)
            taken_tracks.add(number)
            track = live[number]
            track.last_frame_rank, track.box = rank, sightings[index].box
            people[index] = track.person
        for index in sorted(set(here) - taken_faces, key=lambda i: sightings[i].box[0]):  # left to right
            tracks.append(_Track(len(tracks) + 1, rank, sightings[index].box))
            people[index] = len(tracks)
    return people


def _distance(box: Sequence[float], other: Sequence[float]) -> float | None:
    """How far apart two faces are, in face widths; None when they cannot be one person."""
    width, other_width = _size(box), _size(other)
    if max(width, other_width) > MAX_SIZE_RATIO * min(width, other_width):
        return None
    (x, y), (other_x, other_y) = _centre(box), _centre(other)
    shift = ((x - other_x) ** 2 + (y - other_y) ** 2) ** 0.5 / max(width, other_width)
    return shift if shift <= MAX_SHIFT else None


def _size(box: Sequence[float]) -> float:
    return max(1.0, ((box[2] - box[0]) * (box[3] - box[1])) ** 0.5)


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
