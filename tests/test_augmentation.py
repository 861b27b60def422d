"""Pseudo-fakes and degradations: what training does to a face before the network sees it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import augmentation
import face

from .conftest import face_image

# MTCNN's keypoints on the astronaut (face_image), found once with face.FaceDetector.
ASTRONAUT_KEYPOINTS = np.array([[204, 100], [245, 102], [224, 126], [202, 139], [244, 140]], dtype=np.float32)


def astronaut_crop_box() -> tuple[int, int, int, int]:
    keypoints = dict(zip(face.KEYPOINT_NAMES, map(tuple, ASTRONAUT_KEYPOINTS), strict=True))
    return face.crop_box(keypoints, margin=0.5, width=512, height=512)


@pytest.mark.parametrize("seed", range(40))
def test_a_pseudo_fake_changes_the_image_only_inside_its_mask(seed):
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
    assert fake.shape == image.shape and fake.dtype == np.uint8
    outside = mask == 0
    assert outside.mean() > 0.8  # the face region, not the frame
    assert np.array_equal(fake[outside], image[outside])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])  # the crop the network sees has changed
    centre = np.rint(ASTRONAUT_KEYPOINTS.mean(axis=0)).astype(int)
    assert mask[centre[1], centre[0]] >= 0.2  # the middle of the face is blended


def test_the_blend_boundary_falls_inside_the_crop():
    """The mask rises from 0 to its full weight inside the eye/nose/mouth crop most of the time: the
    seam a face swap leaves is what the network must see."""
    x1, y1, x2, y2 = astronaut_crop_box()
    inside = 0
    for seed in range(100):
        _, mask = augmentation.self_blend(face_image(), ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
        half = mask >= mask.max() / 2
        ys, xs = np.nonzero(half)
        inside += xs.min() > x1 and xs.max() < x2 and ys.min() > y1 and ys.max() < y2
    assert inside >= 80


@pytest.mark.parametrize("seed", range(30))
def test_a_part_pseudo_fake_changes_one_part_inside_the_crop(seed):
    """Blended over the mouth, the eyes or the nose and mouth: the image changes only inside the mask,
    the mask's seam lies inside the crop, and it leaves some of the five keypoints out."""
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), part_share=1.0)
    outside = mask == 0
    assert np.array_equal(fake[outside], image[outside])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])
    ys, xs = np.nonzero(mask >= mask.max() / 2)
    assert xs.min() > x1 and xs.max() < x2 and ys.min() > y1 and ys.max() < y2
    xs, ys = np.rint(ASTRONAUT_KEYPOINTS).astype(int).T
    assert not (mask[ys, xs] >= mask.max() / 2).all()  # one part, never the eyes, nose and mouth at once


def test_part_masks_cover_each_part():
    """Each of the three parts is drawn, and each is where it should be: the mouth mask holds the mouth
    corners and not the eyes, the eye mask the eyes and not the mouth."""
    shape = face_image().shape[:2]
    left_eye, right_eye, nose, left_mouth, right_mouth = np.rint(ASTRONAUT_KEYPOINTS).astype(int)
    seen = set()
    for seed in range(60):
        mask = augmentation.part_mask(shape, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
        covered = {
            name: mask[y, x] >= mask.max() / 2
            for name, (x, y) in zip(
                ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth"),
                (left_eye, right_eye, nose, left_mouth, right_mouth),
                strict=True,
            )
        }
        if covered["left_eye"] and covered["right_eye"]:
            assert not covered["left_mouth"] and not covered["right_mouth"]
            seen.add("eyes")
        elif covered["left_mouth"] or covered["right_mouth"]:
            assert not covered["left_eye"] and not covered["right_eye"]
            seen.add("nose_and_mouth" if covered["nose"] else "mouth")
    assert seen == set(augmentation.PARTS)


@pytest.mark.parametrize("seed", range(20))
def test_an_outline_pseudo_fake_changes_the_image_only_inside_its_mask(seed, monkeypatch):
    drawn = []
    real_outline_mask = augmentation.outline_mask
    monkeypatch.setattr(augmentation, "outline_mask", lambda *args: drawn.append(real_outline_mask(*args)) or drawn[-1])
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), outline_share=1.0)
    assert len(drawn) == 1 and mask is drawn[0]  # every whole-face mask reaches the outline
    assert np.array_equal(fake[mask == 0], image[mask == 0])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])


@pytest.mark.parametrize("seed", range(20))
def test_erased_paints_one_patch_of_the_image_in_its_mean_colour(seed):
    image = face_image()[100:228, 150:278]
    before = image.copy()
    out, (x1, y1, x2, y2) = augmentation.erased(image, np.random.default_rng(seed))
    assert np.array_equal(image, before)  # a copy: the input is left as it was
    inside = np.zeros(image.shape[:2], dtype=bool)
    inside[y1:y2, x1:x2] = True
    assert np.array_equal(out[~inside], image[~inside])  # nothing changes outside the patch
    mean = np.rint(image.reshape(-1, 3).mean(axis=0))
    assert (out[inside] == mean).all()  # the patch is one flat colour, the image's mean
    area = (x2 - x1) * (y2 - y1) / inside.size
    low, high = augmentation.ERASED_AREA
    assert 0.9 * low <= area <= 1.1 * high
    assert 0.45 <= (x2 - x1) / (y2 - y1) <= 2.2  # 1:2 to 2:1, give or take a pixel's rounding


def test_erased_patches_fall_anywhere_in_the_image():
    image = face_image()[100:228, 150:278]
    centres = np.array(
        [
            np.mean(np.reshape(augmentation.erased(image, np.random.default_rng(seed))[1], (2, 2)), axis=0)
            for seed in range(200)
        ]
    )
    assert centres.min(axis=0).max() < 40 and centres.max(axis=0).min() > 88  # near every edge, not one spot


def test_an_outline_mask_runs_where_a_swaps_seam_does():
    """Across the forehead inside the crop, down to the crop's sides, round the eyes: every draw's
    seam (its half-weight line) starts between the crop's top and the eyes and reaches within a
    tenth of the crop's width of both its sides, and most draws hold both eyes whole (corners and
    lids), which the inner-face masks almost never do."""
    x1, y1, x2, y2 = astronaut_crop_box()
    eyes = ASTRONAUT_KEYPOINTS[:2]
    apart = float(np.linalg.norm(eyes[1] - eyes[0]))
    eye_edges = [
        (x + dx * apart, y + dy * apart) for x, y in eyes for dx, dy in ((-0.25, 0), (0.25, 0), (0, -0.12), (0, 0.12))
    ]
    whole_eyes = {augmentation.outline_mask: 0, augmentation.face_mask: 0}
    for seed in range(60):
        for draw in whole_eyes:
            mask = draw(face_image().shape[:2], ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
            half = mask >= mask.max() / 2
            whole_eyes[draw] += all(half[round(y), round(x)] for x, y in eye_edges)
            if draw is augmentation.outline_mask:
                ys, xs = np.nonzero(half)
                assert y1 < ys.min() < eyes[:, 1].min()
                assert xs.min() < x1 + 0.1 * (x2 - x1) and xs.max() > x2 - 0.1 * (x2 - x1)
    assert whole_eyes[augmentation.outline_mask] >= 30 and whole_eyes[augmentation.face_mask] <= 6


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_a_face_rendered_small_keeps_its_size_and_tones_and_loses_its_fine_detail():
    crop = face_image()[60:200, 170:280]
    for seed in range(10):
        small = augmentation.rendered_small(crop, np.random.default_rng(seed))
        assert small.shape == crop.shape and small.dtype == np.uint8
        assert abs(float(small.mean()) - float(crop.mean())) < 2
        assert sharpness(small) < 0.6 * sharpness(crop)


@pytest.mark.parametrize("seed", range(20))
def test_a_low_resolution_pseudo_fake_changes_the_image_only_inside_its_mask(seed):
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), low_res_share=1.0)
    assert np.array_equal(fake[mask == 0], image[mask == 0])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])


def test_low_resolution_pseudo_fakes_are_softer_than_the_face_inside_the_blend():
    """Where the mask is at full weight, a low-resolution pseudo-fake holds less fine detail than the
    face as filmed, and than a pseudo-fake drawn without it (sharpened half the time)."""
    image = face_image()
    softness = {0.0: [], 1.0: []}
    for share in softness:
        for seed in range(20):
            fake, mask = augmentation.self_blend(
                image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), low_res_share=share
            )
            ys, xs = np.nonzero(mask >= 0.99)
            if len(ys):
                window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
                softness[share].append(sharpness(fake[window]) / sharpness(image[window]))
    assert len(softness[1.0]) >= 8 and max(softness[1.0]) < 0.7
    assert np.median(softness[0.0]) > 0.9


@pytest.mark.parametrize("seed", range(20))
def test_a_pseudo_fake_with_a_bent_mask_changes_the_image_only_inside_its_mask(seed):
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), deform_share=1.0)
    outside = mask == 0
    assert outside.mean() > 0.8
    assert np.array_equal(fake[outside], image[outside])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])


@pytest.mark.parametrize("seed", range(20))
def test_a_bent_mask_keeps_its_weight_and_place_and_moves_its_edge(seed):
    """`deformed` moves the edge in and out by a few pixels along the way: the mask keeps its values'
    range and its middle, stays 0 far from the face, and its edge no longer follows the drawn shape."""
    image = face_image()
    mask = augmentation.face_mask(image.shape[:2], ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
    bent = augmentation.deformed(mask, ASTRONAUT_KEYPOINTS, np.random.default_rng([seed, 1]))
    assert bent.shape == mask.shape and bent.dtype == np.float32
    assert bent.min() >= 0.0 and bent.max() <= mask.max() + 1e-6
    centre = np.rint(ASTRONAUT_KEYPOINTS.mean(axis=0)).astype(int)
    assert bent[centre[1], centre[0]] >= 0.8 * mask[centre[1], centre[0]]
    far = cv2.dilate((mask > 0).astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    assert not bent[far].any()
    edge = (mask > 0.05 * mask.max()) & (mask < 0.95 * mask.max())
    moved = np.abs(bent - mask)[edge] > 0.05 * mask.max()
    assert moved.mean() > 0.2  # a good part of the edge has moved
    assert abs(float(bent.sum()) / float(mask.sum()) - 1.0) < 0.25  # in and out, not grown or shrunk much


def test_a_mask_is_bent_only_when_asked_and_the_stream_is_unchanged_at_0():
    shape = face_image().shape[:2]
    plain = augmentation._drawn_mask(shape, ASTRONAUT_KEYPOINTS, np.random.default_rng(3), 0.3, 0.3)
    unbent = augmentation._drawn_mask(shape, ASTRONAUT_KEYPOINTS, np.random.default_rng(3), 0.3, 0.3, 0.0)
    assert np.array_equal(plain, unbent)
    for seed in range(5):  # the shape is drawn first, as without bending, then bent
        plain = augmentation._drawn_mask(shape, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), 0.3, 0.3)
        bent = augmentation._drawn_mask(shape, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), 0.3, 0.3, 1.0)
        assert not np.array_equal(bent, plain)
        assert abs(float(bent.sum()) / float(plain.sum()) - 1.0) < 0.25


@pytest.mark.parametrize("seed", range(20))
def test_a_softer_pseudo_fake_is_only_softer_inside_its_mask(seed):
    """The blended-in copy keeps the face's colours and place and loses fine detail: outside the mask
    the image is as it was; where the mask is at full weight it is softer, with the same mean tones."""
    image = face_image()
    fake, mask = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), soft_share=1.0)
    assert np.array_equal(fake[mask == 0], image[mask == 0])
    ys, xs = np.nonzero(mask >= 0.99)
    if not len(ys):  # a faint blend (weight below 1): softer, but less so
        ys, xs = np.nonzero(mask >= mask.max() * 0.99)
    window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    assert sharpness(fake[window]) < 0.8 * sharpness(image[window])
    assert np.abs(fake[window].mean(axis=(0, 1)) - image[window].mean(axis=(0, 1))).max() < 2


def test_a_softened_copy_keeps_size_colours_and_place():
    """Blurred or rendered small, half and half: no colour cast, no shift (a shifted copy would move
    the face's features, and its mean tones near the eyes with them)."""
    crop = face_image()[60:200, 170:280]
    for seed in range(10):
        soft = augmentation.softened_copy(crop, np.random.default_rng(seed))
        assert soft.shape == crop.shape and soft.dtype == np.uint8
        assert np.abs(soft.mean(axis=(0, 1)) - crop.mean(axis=(0, 1))).max() < 1.5
        assert sharpness(soft) < 0.7 * sharpness(crop)
        blurred_back = cv2.GaussianBlur(crop, (0, 0), 3.0).astype(float)
        assert np.abs(cv2.GaussianBlur(soft, (0, 0), 3.0) - blurred_back).mean() < 2  # in place


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


@pytest.mark.parametrize("seed", range(8))
def test_a_smoothed_copy_loses_the_skins_texture_and_keeps_the_outlines_a_blur_softens(seed):
    """On the face's strongest edges (the top 5% of its gradients: eyes, brows, lips) the smoothed copy
    keeps the gradient and a blur of the same draw loses a quarter or more; on the flat half (skin) the
    smoothed copy loses at least a tenth of it, where a blur spreads the edges into it. Tones kept."""
    crop = face_image()[60:200, 170:280]
    before = gradient_magnitude(crop)
    edges, texture = before >= np.quantile(before, 0.95), before <= np.quantile(before, 0.5)
    smooth = augmentation.smoothed_copy(crop, np.random.default_rng(seed))
    blurred = augmentation.softened_copy(crop, np.random.default_rng(seed))
    assert smooth.shape == crop.shape and smooth.dtype == np.uint8
    assert np.abs(smooth.mean(axis=(0, 1)) - crop.mean(axis=(0, 1))).max() < 1.5

    def kept(image, where):
        return gradient_magnitude(image)[where].mean() / before[where].mean()

    assert kept(smooth, edges) > 0.9 and kept(blurred, edges) < 0.75
    assert kept(smooth, texture) < 0.9 and kept(blurred, texture) > 1.0


def test_a_softer_copy_is_smoothed_only_at_its_share_and_draws_as_before_at_0():
    crop = face_image()[60:200, 170:280]
    for seed in range(6):
        plain = augmentation.softened_copy(crop, np.random.default_rng(seed))
        assert np.array_equal(augmentation.softened_copy(crop, np.random.default_rng(seed), 0.0), plain)
        after_the_draw = np.random.default_rng(seed)
        after_the_draw.random()
        smooth = augmentation.smoothed_copy(crop, after_the_draw)
        assert np.array_equal(augmentation.softened_copy(crop, np.random.default_rng(seed), 1.0), smooth)
    fake, mask = augmentation.self_blend(
        face_image(), ASTRONAUT_KEYPOINTS, np.random.default_rng(0), soft_share=1.0, smooth_share=1.0
    )
    assert (
        np.array_equal(fake[mask == 0], face_image()[mask == 0])
        and (fake[mask > 0.5] != face_image()[mask > 0.5]).any()
    )


@pytest.mark.parametrize("change", augmentation.ONE_CHANGE_BLENDS)
def test_a_one_change_blend_changes_only_its_side_of_the_seam(change):
    """The mask is drawn first, so the same seed draws it again: a change inside leaves the image as
    it was where the mask is 0, a change outside where it is 1 (a blend at full weight), and each
    changes the other side."""
    image = face_image()
    checked = 0
    for seed in range(12):
        blend = augmentation.one_change_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(seed), change)
        mask = augmentation.face_mask(image.shape[:2], ASTRONAUT_KEYPOINTS, np.random.default_rng(seed))
        kept, changed = (mask == 0, mask > 0) if change.endswith("inside") else (mask == 1, mask == 0)
        assert np.array_equal(blend[kept], image[kept])
        assert not np.array_equal(blend[changed], image[changed])
        checked += bool(kept.any())
    assert checked >= 3  # some draws blend at full weight, so the outside changes' faces were checked


def test_a_one_change_blend_refuses_an_unknown_change():
    with pytest.raises(ValueError, match="no blend 'grain inside'"):
        augmentation.one_change_blend(face_image(), ASTRONAUT_KEYPOINTS, np.random.default_rng(0), "grain inside")


@pytest.mark.parametrize("seed", range(10))
def test_another_face_is_lined_up_on_the_keypoints_and_blended_only_inside_its_mask(seed):
    """The donor (here the same photo, moved and scaled, so its keypoints moved with it) is moved back
    onto the face by its keypoints: inside the blend the face is its own again, outside untouched."""
    image = face_image()
    matrix = np.array([[1.1, 0.0, -30.0], [0.0, 1.1, 12.0]], dtype=np.float32)
    donor = cv2.warpAffine(image, matrix, (512, 512), flags=cv2.INTER_LINEAR)
    donor_keypoints = ASTRONAUT_KEYPOINTS @ matrix[:, :2].T + matrix[:, 2]
    fake, mask = augmentation.blend_other_face(
        image, ASTRONAUT_KEYPOINTS, donor, donor_keypoints, np.random.default_rng(seed)
    )
    assert fake.shape == image.shape and fake.dtype == np.uint8
    assert np.array_equal(fake[mask == 0], image[mask == 0])
    inside = mask >= 0.5 * mask.max()
    assert inside.sum() > 1000 and np.abs(fake[inside].astype(int) - image[inside]).mean() < 4


@pytest.mark.parametrize("seed", range(10))
def test_another_persons_face_changes_the_crop_and_takes_on_its_colours(seed):
    image = face_image()
    donor = np.ascontiguousarray(face_image()[:, ::-1, ::-1])  # mirrored, its colour channels swapped
    donor_keypoints = np.array([[511 - x, y] for x, y in ASTRONAUT_KEYPOINTS[[1, 0, 2, 4, 3]]], dtype=np.float32)
    fake, mask = augmentation.blend_other_face(
        image, ASTRONAUT_KEYPOINTS, donor, donor_keypoints, np.random.default_rng(seed)
    )
    assert np.array_equal(fake[mask == 0], image[mask == 0])
    x1, y1, x2, y2 = astronaut_crop_box()
    assert not np.array_equal(fake[y1:y2, x1:x2], image[y1:y2, x1:x2])
    inside = mask >= 0.99 * mask.max()
    assert inside.any()
    donor_moved = cv2.warpAffine(
        donor,
        cv2.estimateAffinePartial2D(donor_keypoints, ASTRONAUT_KEYPOINTS, ransacReprojThreshold=1e6)[0],
        (512, 512),
    )
    # Colour-corrected towards the face: nearer its colours than the donor's own are.
    colour_gap = np.abs(fake[inside].mean(axis=0) - image[inside].mean(axis=0)).max()
    donor_gap = np.abs(donor_moved[inside].mean(axis=0) - image[inside].mean(axis=0)).max()
    assert colour_gap < 0.5 * donor_gap


def test_pseudo_fakes_differ_from_one_draw_to_the_next():
    image = face_image()
    first, _ = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(1))
    second, _ = augmentation.self_blend(image, ASTRONAUT_KEYPOINTS, np.random.default_rng(2))
    assert not np.array_equal(first, second)


def test_degradations_vary_and_keep_the_size():
    crop = face_image()[60:200, 170:280]
    outputs = [augmentation.degrade(crop, np.random.default_rng(seed)) for seed in range(30)]
    assert all(out.shape == crop.shape and out.dtype == np.uint8 for out in outputs)
    changed = [not np.array_equal(out, crop) for out in outputs]
    assert 0.5 < np.mean(changed) < 1.0  # most draws degrade, a few leave the crop as it is
    again = [augmentation.degrade(crop, np.random.default_rng(seed)) for seed in range(30)]
    assert all(np.array_equal(a, b) for a, b in zip(outputs, again, strict=True))  # the rng decides everything


def test_degradations_code_a_face_as_h264_or_as_jpeg(monkeypatch):
    codings = []
    h264, jpeg = augmentation.h264, augmentation.jpeg
    monkeypatch.setattr(augmentation, "h264", lambda image, crf: codings.append(("h264", crf)) or h264(image, crf))
    monkeypatch.setattr(augmentation, "jpeg", lambda image, q: codings.append(("jpeg", q)) or jpeg(image, q))
    crop = face_image()[60:200, 170:280]
    for seed in range(80):
        augmentation.degrade(crop, np.random.default_rng(seed))
    assert codings and all(kind == "jpeg" for kind, _ in codings)  # by default every coding is JPEG
    codings.clear()
    for seed in range(80):
        augmentation.degrade(crop, np.random.default_rng(seed), codec_share=0.5)
    rates = [level for kind, level in codings if kind == "h264"]
    qualities = [level for kind, level in codings if kind == "jpeg"]
    assert 0.3 < len(rates) / len(codings) < 0.7
    assert min(rates) >= 18 and max(rates) <= 42 and max(rates) - min(rates) > 10
    assert min(qualities) >= 25 and max(qualities) <= 95 and max(qualities) - min(qualities) > 30


def test_h264_keeps_the_size_and_smooths_more_as_its_rate_factor_rises():
    crop = face_image()[61:200, 170:281]  # odd sides: 4:2:0 colour needs even ones inside the codec
    coded = {crf: augmentation.h264(crop, crf) for crf in (18, 30, 42)}
    assert all(out.shape == crop.shape and out.dtype == np.uint8 for out in coded.values())
    error = {crf: np.abs(out.astype(int) - crop).mean() for crf, out in coded.items()}
    assert error[18] < 3 < error[30] < error[42]  # near the image at 18, further at each step
    detail = {crf: cv2.Laplacian(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for crf, out in coded.items()}
    sharp = cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert detail[42] < 0.5 * sharp and detail[42] < detail[30] < detail[18]  # the codec's smoothing
    assert np.array_equal(augmentation.h264(crop, 30), coded[30])  # the same every time


@pytest.mark.parametrize("seed", range(20))
def test_recolouring_maps_every_colour_the_same_way_over_the_whole_image(seed):
    crop = face_image()[60:200, 170:280]
    twice = np.concatenate([crop, crop], axis=1)  # the same face side by side
    out = augmentation.recolour(twice, np.random.default_rng(seed))
    assert out.shape == twice.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, : crop.shape[1]], out[:, crop.shape[1] :])  # no place in the image is singled out
    assert np.abs(out.astype(int) - twice).mean() > 1  # the colours did change
    assert np.array_equal(out, augmentation.recolour(twice, np.random.default_rng(seed)))  # the rng decides


def test_recolouring_spans_brighter_darker_and_greyer_and_more_colourful():
    crop = face_image()[60:200, 170:280]
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV).astype(float)
    brightness, saturation = [], []
    for seed in range(60):
        out = cv2.cvtColor(augmentation.recolour(crop, np.random.default_rng(seed)), cv2.COLOR_RGB2HSV).astype(float)
        brightness.append(out[..., 2].mean() / hsv[..., 2].mean())
        saturation.append(out[..., 1].mean() / hsv[..., 1].mean())
    assert min(brightness) < 0.85 and max(brightness) > 1.15
    assert min(saturation) < 0.8 and max(saturation) > 1.2


def test_side_light_brightens_one_side_and_darkens_the_other():
    grey = np.full((60, 80, 3), 128, dtype=np.uint8)
    spans = []
    for seed in range(30):
        out = augmentation.relight(grey, np.random.default_rng(seed)).astype(float)
        assert out.shape == grey.shape
        assert abs(out.mean() - 128) < 6  # light moved across the face, not turned up or down
        assert 1.1 * 128 <= out.max() <= 1.35 * 128 + 1 and 0.65 * 128 - 1 <= out.min() <= 0.9 * 128
        rows, columns = np.gradient(out[..., 0])  # a gentle ramp, no edge
        assert np.abs(rows).max() <= 2 and np.abs(columns).max() <= 2
        spans.append(np.arctan2(rows.mean(), columns.mean()))
    assert np.ptp(spans) > np.pi  # from every side
    face_crop = face_image()[60:200, 170:280]
    assert np.array_equal(
        augmentation.relight(face_crop, np.random.default_rng(3)),
        augmentation.relight(face_crop, np.random.default_rng(3)),
    )


def test_a_reframed_face_is_turned_about_the_box_and_the_box_rescaled_about_its_centre():
    image = face_image()
    box = astronaut_crop_box()
    centre = np.array([box[0] + box[2], box[1] + box[3]]) / 2
    size = np.array([box[2] - box[0], box[3] - box[1]])
    turns = []
    for seed in range(30):
        turned, (x1, y1, x2, y2) = augmentation.reframed(image, box, np.random.default_rng(seed))
        assert turned.shape == image.shape
        assert np.allclose([(x1 + x2) / 2, (y1 + y2) / 2], centre, atol=1.5)
        assert np.all(np.array([x2 - x1, y2 - y1]) >= 0.88 * size - 2)
        assert np.all(np.array([x2 - x1, y2 - y1]) <= 1.12 * size + 2)
        y, x = int(centre[1]), int(centre[0])
        assert np.abs(turned[y - 1 : y + 2, x - 1 : x + 2].astype(int) - image[y - 1 : y + 2, x - 1 : x + 2]).max() < 40
        turns.append(np.abs(turned.astype(int) - image).mean())
    assert min(turns) < max(turns) and max(turns) > 5  # turned by different angles, some far


def test_low_quality_shrinks_a_crop_until_it_is_flagged():
    sharp = face_image()[150:330, 170:350]
    assert face.quality_flags(sharp) == []
    degraded = augmentation.low_quality(sharp)
    assert degraded.shape == (45, 45, 3)
    assert face.SMALL_FACE in face.quality_flags(degraded)


def test_low_quality_video_is_a_third_of_the_crop_through_h264():
    crop = face_image()[150:330, 170:350]
    coded = augmentation.low_quality_video(crop)
    third = cv2.resize(crop, (60, 60), interpolation=cv2.INTER_AREA)
    assert coded.shape == (60, 60, 3)
    assert np.array_equal(coded, augmentation.h264(third, 36)) and not np.array_equal(coded, third)


def test_damaged_shrinks_then_codes_as_asked():
    crop = face_image()[150:330, 170:350]
    assert np.array_equal(augmentation.damaged(crop, 1), crop)  # no damage asked, none done
    third = cv2.resize(crop, (60, 60), interpolation=cv2.INTER_AREA)
    assert np.array_equal(augmentation.damaged(crop, 3), third)
    assert np.array_equal(augmentation.damaged(crop, 3, "jpeg", 40), augmentation.jpeg(third, 40))
    assert np.array_equal(augmentation.damaged(crop, 1, "h264", 36), augmentation.h264(crop, 36))
    assert np.array_equal(augmentation.damaged(crop, 4, "jpeg", 30), augmentation.low_quality(crop))
    worse = [np.abs(augmentation.damaged(crop, 3, "h264", crf).astype(int) - third).mean() for crf in (20, 36, 48)]
    assert worse == sorted(worse) and worse[0] < worse[-1]  # a higher rate factor, more damage
    with pytest.raises(ValueError, match="unknown codec 'vp9'"):
        augmentation.damaged(crop, 2, "vp9", 30)


def test_a_jittered_box_stays_near_the_box_and_inside_the_image():
    box = (10, 20, 110, 140)
    for seed in range(50):
        x1, y1, x2, y2 = augmentation.jittered_box(box, 115, 150, np.random.default_rng(seed))
        assert 0 <= x1 < x2 <= 115 and 0 <= y1 < y2 <= 150
        assert abs(x1 - 10) <= 8 and abs(y2 - 140) <= 12
