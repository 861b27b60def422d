"""video.py: the sampled frames are those a full decode gives, the frames nothing needs are not
decoded, and a stream without timestamps is still sampled right."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

import face
import video

INTERVAL = 7


@pytest.fixture(scope="module")
def h264_with_b_frames(tmp_path_factory) -> Path:
    """Five seconds of moving test pattern in H.264 with B-frames (125 frames), as most phones and
    sites deliver video, made with the ffmpeg binary of the imageio-ffmpeg wheel."""
    path = tmp_path_factory.mktemp("video") / "pattern.mp4"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y"]
    source = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "5"]
    subprocess.run(
        [*ffmpeg, *source, "-c:v", "libx264", "-bf", "3", "-g", "60", "-pix_fmt", "yuv420p", str(path)], check=True
    )
    return path


def every_frame(path: Path) -> list[np.ndarray]:
    """The reference: OpenCV decoding every frame, counted as they come."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_sampled_frames_are_those_of_a_full_decode_and_frames_nothing_needs_are_skipped(h264_with_b_frames):
    reference = every_frame(h264_with_b_frames)
    assert len(reference) == 125
    with video.Video(h264_with_b_frames) as clip:
        sampled = list(clip.sampled(INTERVAL))
        seen, decoded = clip.frames_seen, clip.frames_decoded
    assert [index for index, _ in sampled] == list(range(0, 125, INTERVAL))
    for index, image in sampled:
        assert np.array_equal(image, reference[index]), f"frame {index} differs"
    assert seen == 125
    assert decoded < 0.75 * seen  # the B-frames that are not sampled were never decoded


def test_too_many_packets_to_list_means_nothing_is_skipped(h264_with_b_frames, monkeypatch):
    monkeypatch.setattr(video, "MAX_LISTED_PACKETS", 100)
    reference = every_frame(h264_with_b_frames)
    with video.Video(h264_with_b_frames) as clip:
        sampled = list(clip.sampled(INTERVAL))
        assert clip.frames_seen == clip.frames_decoded == 125
    assert [index for index, _ in sampled] == list(range(0, 125, INTERVAL))
    assert all(np.array_equal(image, reference[index]) for index, image in sampled)


def test_a_stream_without_timestamps_is_decoded_whole_and_counted_as_it_comes(h264_with_b_frames, tmp_path):
    raw = tmp_path / "pattern.h264"  # a bare H.264 stream: no container, no timestamps
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(h264_with_b_frames), "-c", "copy", str(raw)],
        check=True,
    )
    reference = every_frame(h264_with_b_frames)
    sampler = face.FrameSampler(raw, INTERVAL)
    frames = list(sampler)
    assert [frame.index for frame in frames] == list(range(0, 125, INTERVAL))
    assert all(np.array_equal(frame.image, reference[frame.index]) for frame in frames)
    assert sampler.frames_seen == sampler.frames_decoded == 125


def test_a_file_with_no_video_in_it_is_refused(tmp_path):
    sound = tmp_path / "sound.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(sound)],
        check=True,
    )
    with pytest.raises(face.UnreadableMediaError, match="no video"):
        face.probe(sound)


def test_a_video_cut_short_gives_the_frames_it_has(h264_with_b_frames, tmp_path):
    """A download that stopped part of the way (index at the front, as streaming sites write it)."""
    whole = tmp_path / "front.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(h264_with_b_frames), "-c", "copy"]
        + ["-movflags", "+faststart", str(whole)],
        check=True,
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    reference = every_frame(h264_with_b_frames)
    sampler = face.FrameSampler(cut, INTERVAL)
    frames = list(sampler)
    assert 40 <= sampler.frames_seen < 125
    assert [frame.index for frame in frames] == list(range(0, sampler.frames_seen, INTERVAL))
    assert all(np.array_equal(frame.image, reference[frame.index]) for frame in frames)


def test_an_av1_video_is_sampled(tmp_path):
    """AV1, which sites now serve in mp4; the OpenCV wheel this project used before could not decode it."""
    path = tmp_path / "av1.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "1"]
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            *source,
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            str(path),
        ],
        check=True,
    )
    sampler = face.FrameSampler(path, INTERVAL)
    frames = list(sampler)
    assert [frame.index for frame in frames] == list(range(0, 25, INTERVAL))
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.std() > 10  # a picture, not a blank
    assert face.probe(path).kind == "video"
