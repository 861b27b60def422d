"""face.py: which frames are sampled, what MTCNN finds, and what the crops hold."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import face

from .conftest import VIDEO_SIDE, face_image

CROP = {"min_confidence": 0.9, "margin": 0.5}


@pytest.fixture(scope="module")
def detector():
    return face.get_detector(640)


def test_samples_one_frame_in_every_interval_from_frame_zero(media):
    sampler = face.FrameSampler(media["face_video"], 50)
    frames = list(sampler)
    assert [frame.index for frame in frames] == [0, 50, 100]
    assert [frame.time_s for frame in frames] == pytest.approx([0.0, 2.0, 4.0])
    assert sampler.frames_seen == 120
    assert frames[0].image.shape == (VIDEO_SIDE, VIDEO_SIDE, 3)


def test_a_clip_shorter_than_the_interval_still_gives_its_first_frame(media):
    assert [frame.index for frame in face.FrameSampler(media["short_video"], 50)] == [0]


def test_a_photo_is_a_one_frame_video(media):
    info = face.probe(media["face_photo"])
    assert (info.kind, info.frame_count, info.width, info.height) == ("photo", 1, 512, 512)
    frames = list(face.FrameSampler(media["face_photo"], 50))
    assert len(frames) == 1 and frames[0].index == 0


def test_probe_reads_the_video_facts(media):
    info = face.probe(media["face_video"])
    assert (info.kind, info.frame_count, info.width, info.height) == ("video", 120, VIDEO_SIDE, VIDEO_SIDE)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(4.8)


def test_a_phone_video_with_a_rotation_flag_is_analysed_upright(media, detector):
    (stored,) = face.FrameSampler(media["sideways_video"], 50)
    (upright,) = face.FrameSampler(media["phone_video"], 50)
    assert stored.image.shape[:2] == (256, VIDEO_SIDE)  # stored on its side
    assert upright.image.shape[:2] == (VIDEO_SIDE, 256)
    turned = cv2.rotate(stored.image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    assert np.abs(turned.astype(int) - upright.image.astype(int)).mean() < 2
    (found,) = detector.detect(upright.image)
    assert found.confidence > 0.99 and found.keypoints["nose"][1] < found.keypoints["mouth_left"][1]
    info = face.probe(media["phone_video"])
    assert (info.width, info.height) == (256, VIDEO_SIDE)


@pytest.mark.parametrize("name", ["text_as_mp4", "empty", "truncated_video"])
def test_unreadable_files_are_refused_by_content(media, name):
    with pytest.raises(face.UnreadableMediaError):
        face.probe(media[name])


def test_the_crop_is_the_keypoint_box_with_a_margin(detector):
    image = face_image()
    faces = detector.detect(image)
    assert len(faces) == 1 and faces[0].confidence > 0.99
    crops = face.crop_faces(image, faces, min_confidence=0.9, margin=0.25)
    assert len(crops) == 1
    x1, y1, x2, y2 = crops[0].box
    points = np.array(list(faces[0].keypoints.values()))
    assert (points[:, 0] > x1).all() and (points[:, 0] < x2).all()
    assert (points[:, 1] > y1).all() and (points[:, 1] < y2).all()
    # the eye/nose/mouth region, not the whole face box
    fx1, fy1, fx2, fy2 = faces[0].box
    assert (x2 - x1) * (y2 - y1) < 0.8 * (fx2 - fx1) * (fy2 - fy1)
    assert crops[0].image.shape == (y2 - y1, x2 - x1, 3)
    np.testing.assert_array_equal(crops[0].image, image[y1:y2, x1:x2])


def test_detection_on_a_reduced_copy_crops_from_the_full_resolution_frame(detector):
    image = face_image()
    big = np.kron(image, np.ones((3, 3, 1), dtype=np.uint8))  # 1536 x 1536
    small_faces = face.FaceDetector(max_side=512).detect(big)  # detection runs on a 512 copy
    assert len(small_faces) == 1
    crop = face.crop_faces(big, small_faces, **CROP)[0]
    full_box = face.crop_faces(image, detector.detect(image), **CROP)[0].box
    assert np.allclose(crop.box, np.array(full_box) * 3, atol=12)
    assert crop.image.shape[0] > 2 * (full_box[3] - full_box[1])  # full-resolution pixels


def test_every_confident_face_gives_a_crop_left_to_right(detector):
    image = face_image()
    pair = np.concatenate([image, image[:, ::-1]], axis=1)
    crops = face.crop_faces(pair, detector.detect(pair), **CROP)
    assert [crop.face_index for crop in crops] == [0, 1]
    assert crops[0].box[0] < 512 <= crops[1].box[0]


def test_faces_below_the_confidence_threshold_are_left_out(detector):
    image = face_image()
    faces = detector.detect(image)
    assert face.crop_faces(image, faces, min_confidence=1.01, margin=0.5) == []


def test_a_video_without_faces_gives_no_crops(media, detector):
    frames = list(face.FrameSampler(media["no_face_video"], 10))
    assert len(frames) == 3
    assert all(faces == [] for faces in detector.detect_many([frame.image for frame in frames]))


def test_the_crop_box_is_clipped_to_the_frame():
    keypoints = {name: (x, y) for name, x, y in zip(face.KEYPOINT_NAMES, (1, 9, 5, 2, 8), (1, 1, 5, 9, 9), strict=True)}
    assert face.crop_box(keypoints, 0.5, width=12, height=11) == (0, 0, 12, 11)
    assert face.crop_box(keypoints, 0.0, width=100, height=100) == (1, 1, 9, 9)


def test_head_turn_is_the_noses_offset_along_the_eyes_in_eye_distances_whatever_the_tilt():
    def keypoints(turn: float, angle: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0)) -> dict:
        """A face 20 units between the eyes whose nose sits ``turn`` eye distances off their midpoint,
        turned in the picture by ``angle`` degrees, scaled and moved."""
        points = np.array([(-10, 0), (10, 0), (20 * turn, 10), (-8, 20), (8, 20)], dtype=float)
        cos, sin = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        points = scale * points @ np.array([[cos, sin], [-sin, cos]]) + shift
        return {name: tuple(point) for name, point in zip(face.KEYPOINT_NAMES, points, strict=True)}

    assert face.head_turn(keypoints(0.0)) == 0.0
    assert face.head_turn(keypoints(0.25)) == pytest.approx(0.25)
    assert face.head_turn(keypoints(-0.25)) == pytest.approx(0.25)  # to either side
    assert face.head_turn(keypoints(0.4, angle=35, scale=3.0, shift=(50, -7))) == pytest.approx(0.4)
    same_eyes = {**keypoints(0.1), "right_eye": keypoints(0.1)["left_eye"]}
    assert face.head_turn(same_eyes) is None


def test_quality_flags_mark_small_and_blurry_crops():
    sharp = face_image()[60:200, 170:300]
    assert face.quality_flags(sharp) == []
    assert face.quality_flags(cv2.resize(sharp, (40, 36))) == [face.SMALL_FACE]
    assert face.quality_flags(cv2.GaussianBlur(sharp, (0, 0), 4)) == [face.BLURRY]


def test_a_small_face_is_judged_blurry_as_the_network_gets_it_enlarged():
    small = cv2.resize(face_image()[60:200, 170:300], (88, 94), interpolation=cv2.INTER_AREA)
    assert min(small.shape[:2]) >= face.SMALL_CROP_PX
    assert face.quality_flags(small) == []  # small (enlarged to 112) but sharp
    soft = cv2.GaussianBlur(small, (0, 0), 2.0)  # as a codec smooths a small face
    assert face.quality_flags(soft) == [face.BLURRY]
    # Enlarged in nearest-neighbour steps, the same face would show edges that are not in it.
    steps = cv2.cvtColor(cv2.resize(soft, (112, 112), interpolation=cv2.INTER_NEAREST), cv2.COLOR_RGB2GRAY)
    assert cv2.Laplacian(steps, cv2.CV_64F).var() > face.BLUR_THRESHOLD
