"""What training does to a face before the network sees it: self-blended pseudo-fakes, and what
other cameras, light, poses and poor video do to a face, applied to every class alike.

Pseudo-fakes follow Face X-ray (Li et al., CVPR 2020) and Self-Blended Images (Shiohara and Yamasaki,
CVPR 2022): a real face, blended with a slightly altered copy of itself through a soft mask of the
face region, carries the traces a face swap leaves (a blend boundary, a mismatch of colour, sharpness
and position inside it) without the look of any one swapping method, so a network that learns to see
them is not tied to one dataset's fakes. Here the mask comes from MTCNN's five keypoints, the only
landmarks the app has.

This module imports nothing of the project. Images are RGB ``uint8`` arrays; keypoints are a 5 x 2
array (left eye, right eye, nose, left and right mouth corner) in the image's pixel coordinates.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

BLEND_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # as SBI draws them: mostly a full swap, sometimes a faint one
HEAVY_SHARE = 0.2  # how often `degrade` gives the worst video: a face of a few dozen pixels, coded coarsely
RECOLOUR_SHARE = 0.8  # how often training shows a face in another camera's or grade's colours
LIGHT_AND_POSE_SHARE = 0.5  # how often training tilts and reframes a face, and (drawn apart) lights it from one side
LOW_RES_SCALE = (1.5, 3.0)  # how many times smaller than the frame a low-resolution swapped-in face is rendered
ERASED_AREA = (0.04, 0.2)  # the share of a crop `erased` paints over
DEFORM_WAVELENGTH = 0.5  # the length over which `deformed` bends a mask's edge one way, as a share of the face
DEFORM_AMPLITUDE = (0.03, 0.08)  # how far `deformed` moves a mask's edge (one standard deviation), as a share of it


def self_blend(
    image: np.ndarray,
    keypoints: np.ndarray,
    rng: np.random.Generator,
    part_share: float = 0.0,
    low_res_share: float = 0.0,
    outline_share: float = 0.0,
    soft_share: float = 0.0,
    deform_share: float = 0.0,
    smooth_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A pseudo-fake of ``image`` and the blend mask (float32, 0..1) it was made with: ``part_share`` of
    the time the mask covers one part of the face (``part_mask``), ``outline_share`` of the rest the
    face out to where a swap's seam runs (``outline_mask``), otherwise the inner face, and
    ``deform_share`` of all masks are bent out of shape (``deformed``); ``soft_share`` of the time the
    copy blended in is the face only made softer (``softened_copy``; ``smooth_share`` of those smoothed
    with its edges kept, ``smoothed_copy``), and of the others ``low_res_share`` were rendered at a
    lower resolution (``rendered_small``) instead of sometimes sharpened.

    The output equals ``image`` wherever the mask is 0: only the face region changes.
    """
    if soft_share and rng.random() < soft_share:  # no draw at 0: older streams stay as drawn
        source = softened_copy(image, rng, smooth_share)
    else:
        low_res = bool(low_res_share) and rng.random() < low_res_share
        source = _altered_copy(image, keypoints, rng, low_res)
    mask = _drawn_mask(image.shape[:2], keypoints, rng, part_share, outline_share, deform_share)
    return cv2.blendLinear(source, image, mask, 1.0 - mask), mask


def blend_other_face(
    image: np.ndarray,
    keypoints: np.ndarray,
    donor: np.ndarray,
    donor_keypoints: np.ndarray,
    rng: np.random.Generator,
    part_share: float = 0.0,
    outline_share: float = 0.0,
    deform_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A pseudo-fake of ``image`` with another person's face in it, as Face X-ray (Li et al., CVPR
    2020) makes its blended images, and the mask it was blended through: ``donor`` turned, scaled and
    moved so that its five keypoints fall on ``keypoints`` (a least-squares similarity), its colours
    brought most of the way to this face's inside the mask (a swap's colour correction, never quite
    exact), then blended in through the masks ``self_blend`` draws. Where a self-blend changes a
    face's own copy, this puts a different skin, texture and camera inside the seam, as a face swap
    does.

    The output equals ``image`` wherever the mask is 0."""
    height, width = image.shape[:2]
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(donor_keypoints, dtype=np.float32),
        np.asarray(keypoints, dtype=np.float32),
        ransacReprojThreshold=1e6,  # five exact points: all of them count
    )
    if matrix is None:  # degenerate keypoints
        return self_blend(image, keypoints, rng, part_share, outline_share=outline_share, deform_share=deform_share)
    source = cv2.warpAffine(donor, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = _drawn_mask(image.shape[:2], keypoints, rng, part_share, outline_share, deform_share)
    source = _colours_matched(source, image, mask > 0.5 * mask.max(), rng.uniform(0.7, 1.0))
    return cv2.blendLinear(source, image, mask, 1.0 - mask), mask


def _drawn_mask(
    shape: tuple[int, int],
    keypoints: np.ndarray,
    rng: np.random.Generator,
    part_share: float,
    outline_share: float = 0.0,
    deform_share: float = 0.0,
) -> np.ndarray:
    """The blend mask of a pseudo-fake: ``part_share`` of the time over one part of the face
    (``part_mask``), ``outline_share`` of the rest out to the face's outline (``outline_mask``),
    otherwise over the inner face (``face_mask``); then ``deform_share`` of the time bent out of
    shape (``deformed``). A share of 0 draws nothing, so older streams stay as drawn."""
    if part_share and rng.random() < part_share:
        mask = part_mask(shape, keypoints, rng)
    elif outline_share and rng.random() < outline_share:
        mask = outline_mask(shape, keypoints, rng)
    else:
        mask = face_mask(shape, keypoints, rng)
    if deform_share and rng.random() < deform_share:
        mask = deformed(mask, keypoints, rng)
    return mask


def deformed(mask: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` warped by a smooth random field, so that its edge wanders in and out along the way
    instead of following an ellipse or a hull: Face X-ray (Li et al., CVPR 2020) bends its landmark
    hull with a randomly moved grid of points, and Self-Blended Images bends its masks with an elastic
    transform, because a swap's seam follows the outline its landmarks and its own blending give, not
    a shape drawn by rule. Here a grid of random shifts, one point every DEFORM_WAVELENGTH of the keypoints'
    span, is smoothly resized to the whole mask, the shifts' spread drawn from DEFORM_AMPLITUDE of
    the span. The edge's softness moves with it, so it too varies along the seam.

    Values stay within the mask's own range, and far from the face it stays 0."""
    height, width = mask.shape
    keypoints = np.asarray(keypoints, dtype=np.float32)
    span = float(_keypoint_span(keypoints).mean())
    step = span * DEFORM_WAVELENGTH
    grid = (int(np.ceil(height / step)) + 1, int(np.ceil(width / step)) + 1)
    spread = span * rng.uniform(*DEFORM_AMPLITUDE)
    shifts = [
        cv2.resize(
            rng.normal(0.0, spread, size=grid).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
        )
        for _ in range(2)
    ]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        mask, xs + shifts[0], ys + shifts[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0
    )


def _colours_matched(source: np.ndarray, target: np.ndarray, region: np.ndarray, strength: float) -> np.ndarray:
    """``source`` with each channel's mean and spread inside ``region`` moved ``strength`` of the way
    to ``target``'s there."""
    if not region.any():
        return source
    src, tgt = source[region].astype(np.float32), target[region].astype(np.float32)
    scale = 1.0 + strength * (tgt.std(axis=0) / np.maximum(src.std(axis=0), 1.0) - 1.0)
    shift = strength * (tgt.mean(axis=0) - src.mean(axis=0))
    moved = (source.astype(np.float32) - src.mean(axis=0)) * scale + src.mean(axis=0) + shift
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


def face_mask(shape: tuple[int, int], keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft mask of the inner face: an ellipse about the keypoints or the hull of points drawn
    from them (eyebrows above the eyes, chin below the mouth), grown or shrunk at random, its edge
    blurred, scaled by a random blend weight.

    It is sized to the eye/nose/mouth crop that face.py cuts (the keypoints' box widened by half its
    size on every side), so the blend boundary mostly falls inside the crop the network sees.
    """
    height, width = shape
    keypoints = np.asarray(keypoints, dtype=np.float32)
    centre = keypoints.mean(axis=0)
    span = _keypoint_span(keypoints)
    mask = np.zeros((height, width), dtype=np.float32)
    if rng.random() < 0.5:
        angle = _eye_line_angle(keypoints, rng)
        axes = (span / 2) * rng.uniform(1.2, 1.9, size=2)
        shift = span * rng.uniform(-0.05, 0.05, size=2)
        cv2.ellipse(
            mask,
            (tuple(float(v) for v in centre + shift), tuple(float(v) for v in 2 * axes), angle),
            1.0,
            thickness=-1,
        )
    else:
        eye_to_mouth = keypoints[3:].mean(axis=0) - keypoints[:2].mean(axis=0)
        points = np.concatenate(
            [
                keypoints,
                keypoints[:2] - eye_to_mouth * rng.uniform(0.2, 0.4),  # eyebrows
                keypoints[3:] + eye_to_mouth * rng.uniform(0.15, 0.35),  # chin
            ]
        )
        points = centre + (points - centre) * rng.uniform(0.95, 1.2)
        points += span * rng.uniform(-0.04, 0.04, size=points.shape)
        hull = cv2.convexHull(np.rint(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
    return _softened(mask, span, rng)


def outline_mask(shape: tuple[int, int], keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft mask of the face out to where a face swap's seam runs: an ellipse along the eye line
    from the eyebrows (a quarter to nearly half the eye-to-mouth distance above the eyes) to below
    the chin, as wide as the face (0.95 to 1.2 times the distance between the eyes from the middle).
    Swapping methods blend in the hull of the face's landmarks, jaw and brows, so in the
    eye/nose/mouth crop their seam crosses the forehead at the top and runs down the cheeks at the
    crop's sides, round the eyes, never through them, as ``face_mask``'s narrower masks often do.
    Edge and blend weight are drawn as in ``face_mask``."""
    height, width = shape
    keypoints = np.asarray(keypoints, dtype=np.float32)
    span = _keypoint_span(keypoints)
    eyes, mouth = keypoints[:2].mean(axis=0), keypoints[3:].mean(axis=0)
    eye_to_mouth = mouth - eyes
    top = eyes - eye_to_mouth * rng.uniform(0.25, 0.45)
    bottom = mouth + eye_to_mouth * rng.uniform(0.6, 0.9)
    half_width = float(np.linalg.norm(keypoints[1] - keypoints[0])) * rng.uniform(0.95, 1.2)
    centre = (top + bottom) / 2 + span * rng.uniform(-0.04, 0.04, size=2)
    axes = (2 * half_width, float(np.linalg.norm(bottom - top)))
    mask = np.zeros((height, width), dtype=np.float32)
    cv2.ellipse(mask, (tuple(float(v) for v in centre), axes, _eye_line_angle(keypoints, rng)), 1.0, thickness=-1)
    return _softened(mask, span, rng)


PARTS = ("mouth", "eyes", "nose_and_mouth")


def part_mask(shape: tuple[int, int], keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft mask of one part of the face, drawn at random from PARTS: the mouth, the band of both
    eyes, or the nose with the mouth below it. Face reenactment (Face2Face, NeuralTextures) rewrites
    the mouth and leaves the rest of the face as filmed, so its seam runs round the mouth, inside the
    eye/nose/mouth crop; regional forgeries are the idea of SLADD (Chen et al., CVPR 2022). Edge and
    blend weight are drawn as in ``face_mask``."""
    height, width = shape
    keypoints = np.asarray(keypoints, dtype=np.float32)
    span = _keypoint_span(keypoints)
    eyes, mouth = keypoints[:2], keypoints[3:]
    angle = _eye_line_angle(keypoints, rng)
    eye_to_mouth = float(np.linalg.norm(mouth.mean(axis=0) - eyes.mean(axis=0)))
    mouth_width = float(np.linalg.norm(mouth[1] - mouth[0]))
    part = PARTS[int(rng.integers(len(PARTS)))]
    # Half-axes, along and across the eye line, sized so that the seam stays inside the crop.
    if part == "mouth":
        centre = mouth.mean(axis=0) + (keypoints[2] - mouth.mean(axis=0)) * rng.uniform(0.0, 0.25)
        axes = (mouth_width * rng.uniform(0.55, 0.8), eye_to_mouth * rng.uniform(0.25, 0.45))
    elif part == "eyes":
        centre = eyes.mean(axis=0)
        axes = (
            float(np.linalg.norm(eyes[1] - eyes[0])) * rng.uniform(0.6, 0.85),
            eye_to_mouth * rng.uniform(0.25, 0.4),
        )
    else:
        centre = (keypoints[2] + mouth.mean(axis=0)) / 2
        axes = (mouth_width * rng.uniform(0.6, 0.85), eye_to_mouth * rng.uniform(0.4, 0.6))
    centre = centre + span * rng.uniform(-0.04, 0.04, size=2)
    mask = np.zeros((height, width), dtype=np.float32)
    cv2.ellipse(mask, (tuple(float(v) for v in centre), (2 * axes[0], 2 * axes[1]), angle), 1.0, thickness=-1)
    return _softened(mask, span, rng)


def _keypoint_span(keypoints: np.ndarray) -> np.ndarray:
    """The width and height of the keypoints' box, at least 4 pixels each: the size of the face every
    mask is drawn to."""
    return np.maximum(keypoints.max(axis=0) - keypoints.min(axis=0), 4.0)


def _eye_line_angle(keypoints: np.ndarray, rng: np.random.Generator) -> float:
    """The angle of the line through the eyes, in degrees, tilted by up to 5 degrees at random: how a
    mask lines up with the face."""
    eyes = keypoints[1] - keypoints[0]
    return float(np.degrees(np.arctan2(eyes[1], eyes[0]))) + rng.uniform(-5, 5)


def _softened(mask: np.ndarray, span: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The hard mask with its edge blurred (sigma 3-15% of the keypoints' span), scaled to a random
    blend weight."""
    sigma = float(span.mean() * rng.uniform(0.03, 0.15))
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma)
    peak = mask.max()
    if peak > 0:
        mask /= peak
    return mask * float(rng.choice(BLEND_WEIGHTS))


def _altered_copy(
    image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator, low_res: bool = False
) -> np.ndarray:
    """The image with its colour, brightness and contrast changed a little, sometimes sharpened (or,
    with ``low_res``, rendered at a lower resolution), and moved or resized by a few per cent about
    the face: what the swapped-in face would differ by.

    Never blurred, and scaled down only when asked: inside an eye/nose/mouth crop the mask covers most
    of the picture, so pseudo-fakes blurred from the first stage on taught the network that a blurry
    face is fake, and it then called most real faces of poor video DeepFake (see the model card's
    trials). ``low_res`` came later, to a network that had long seen poor video of both classes."""
    # Contrast, brightness and a colour cast, through one lookup table per channel.
    levels = np.arange(256, dtype=np.float32)[:, None]
    table = (levels - 128.0) * rng.uniform(0.9, 1.1) + 128.0 + rng.uniform(-12, 12) + rng.uniform(-10, 10, size=3)
    copy = _through_tables(image, table)
    if low_res:
        copy = rendered_small(copy, rng)
    elif rng.random() < 0.5:
        amount = rng.uniform(0.3, 1.0)
        copy = _sharpened(copy, amount)
    centre = np.asarray(keypoints, dtype=np.float32).mean(axis=0)
    scale = rng.uniform(0.95, 1.05)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, scale)
    matrix[:, 2] += np.array(copy.shape[1::-1], dtype=np.float64) * rng.uniform(-0.03, 0.03, size=2)
    return cv2.warpAffine(copy, matrix, copy.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


ONE_CHANGE_BLENDS = ("altered inside", "altered outside", "colour inside", "blurred inside", "sharpened outside")


def one_change_blend(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator, change: str) -> np.ndarray:
    """The face blended with a copy of itself that differs by one of ONE_CHANGE_BLENDS, through a
    whole-face mask (``face_mask``), to ask a model which trace of a blend it sees: the pseudo-fakes'
    altered copy (``_altered_copy``) inside the mask or outside it (the face inside as filmed); a
    colour cast alone (5 to 15 up or down per channel) inside; a blur alone (sigma 0.8 to 1.6) inside; or a
    sharpening alone outside. Only the one named differs between the two sides of the seam."""
    mask = face_mask(image.shape[:2], keypoints, rng)
    inside, outside = image, image
    if change == "altered inside":
        inside = _altered_copy(image, keypoints, rng)
    elif change == "altered outside":
        outside = _altered_copy(image, keypoints, rng)
    elif change == "colour inside":
        cast = rng.uniform(5, 15, size=3) * rng.choice([-1.0, 1.0], size=3)
        table = np.arange(256, dtype=np.float32)[:, None] + cast
        inside = _through_tables(image, table)
    elif change == "blurred inside":
        inside = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.8, 1.6))
    elif change == "sharpened outside":
        amount = rng.uniform(0.5, 1.0)
        outside = _sharpened(image, amount)
    else:
        raise ValueError(f"no blend {change!r}: one of {', '.join(ONE_CHANGE_BLENDS)}")
    return cv2.blendLinear(inside, outside, mask, 1.0 - mask)


def softened_copy(image: np.ndarray, rng: np.random.Generator, smooth_share: float = 0.0) -> np.ndarray:
    """The image made softer and nothing else: ``smooth_share`` of the time smoothed with its edges
    kept (``smoothed_copy``), otherwise blurred (sigma 0.6 to 1.6 pixels) or, as often, rendered at a
    lower resolution (``rendered_small``), with its colours and place kept. Blended in,
    it leaves the one trace of a swap whose colours were matched well: a face softer than the skin
    and hair round it, as a generator's face upscaled into a sharper frame is. The pseudo-fakes of
    `_altered_copy` always change colour and brightness as well, and a network trained on them can
    tell them by that alone (see the model card's "Softer pseudo-fakes")."""
    if smooth_share and rng.random() < smooth_share:  # no draw at 0: older streams stay as drawn
        return smoothed_copy(image, rng)
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.6, 1.6))
    return rendered_small(image, rng)


def smoothed_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with the fine texture of skin smoothed away and its edges kept: an edge-preserving
    (bilateral) filter, colour range 20 to 60 levels, spatial sigma 1% to 2.5% of the image's shorter
    side, once or, half the time, twice. A blur softens the eyes' and the mouth's outlines too, as a
    face filmed out of focus or small is soft all over; a face painted by a generator keeps sharp
    outlines and loses the camera's grain and the skin's pores between them. Blended in, it leaves
    that trace alone, so a face soft all over need not read as one."""
    side = min(image.shape[:2])
    colour_range, spatial_sigma = rng.uniform(20, 60), side * rng.uniform(0.01, 0.025)
    passes = 2 if rng.random() < 0.5 else 1
    for _ in range(passes):
        image = cv2.bilateralFilter(image, 0, colour_range, spatial_sigma)
    return image


def _through_tables(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The image through ``table`` (256 x 3: each channel's new value for each old one), rounded and
    clipped to 0..255."""
    return cv2.LUT(image, np.clip(np.rint(table), 0, 255).astype(np.uint8)[:, None, :])


def _sharpened(image: np.ndarray, amount: float) -> np.ndarray:
    """The image with ``amount`` of its fine detail (what a blur of sigma 1 takes away) added again."""
    return cv2.addWeighted(image, 1.0 + amount, cv2.GaussianBlur(image, (0, 0), sigmaX=1.0), -amount, 0)


def rendered_small(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image as a face-swap generator renders a face: at a lower resolution (LOW_RES_SCALE times
    smaller) and scaled up to fit the frame. Blended through a face mask into the frame as filmed, it
    leaves a face softer than its surroundings, the trace of face swaps whose network paints faces
    of 64 to 256 pixels; Self-Blended Images scale the blended copy down for the same reason."""
    height, width = image.shape[:2]
    small = cv2.resize(image, _scaled(width, height, 1.0 / rng.uniform(*LOW_RES_SCALE)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def degrade(image: np.ndarray, rng: np.random.Generator, codec_share: float = 0.0) -> np.ndarray:
    """The image as a poor video might give it, drawn at random: scaled down (to a fifth at most),
    blurred, noisy and coded at that small size, as a low-resolution video is encoded, then scaled back
    up; each step only sometimes. The coding is JPEG at quality 30 to 95 or, ``codec_share`` of the
    time, H.264 at a constant rate factor of 18 to 40 (`h264`): a video codec smooths a face where JPEG
    makes blocks, and smooth skin must not read as "fake". At 0 no draw is made for it, so the draws
    are those of the JPEG-only degradations. Applied to real and fake faces alike, so that poor
    quality is no cue for "fake". The heavy end is where false alarms come from, so it is drawn often:
    HEAVY_SHARE of the time a fifth to a third of the size, coded at JPEG quality 25-50 or H.264 rate
    factor 30-42, and half the other downscales go below half the size."""
    height, width = image.shape[:2]
    if rng.random() < HEAVY_SHARE:
        small = cv2.resize(image, _scaled(width, height, rng.uniform(0.2, 0.35)), interpolation=cv2.INTER_AREA)
        small = _coded(small, rng, codec_share, heavy=True)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    small = image
    if rng.random() < 0.5:
        factor = rng.uniform(0.25, 0.5) if rng.random() < 0.5 else rng.uniform(0.5, 0.95)
        small = cv2.resize(image, _scaled(width, height, factor), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=rng.uniform(0.4, 1.5))
    if rng.random() < 0.2:
        noise = rng.normal(0.0, rng.uniform(2, 8), size=small.shape)  # from rng, not OpenCV's global generator
        small = np.clip(small + np.rint(noise), 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        small = _coded(small, rng, codec_share, heavy=False)
    if small.shape[:2] != (height, width):
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return small


def _coded(image: np.ndarray, rng: np.random.Generator, codec_share: float, *, heavy: bool) -> np.ndarray:
    """The image through JPEG or (``codec_share`` of the time) H.264, at a level drawn from ``heavy``'s range."""
    if codec_share and rng.random() < codec_share:
        return h264(image, int(rng.integers(30, 43) if heavy else rng.integers(18, 41)))
    return jpeg(image, int(rng.integers(25, 51) if heavy else rng.integers(30, 96)))


def recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image in the colours another camera, light or grade would give it, the same over the whole
    image: exposure 0.7-1.3 times, gamma 0.7-1.4, contrast 0.7-1.3, white balance 0.85-1.15 a channel
    and saturation 0.6-1.5 times. Applied to real and fake faces alike, so that a face's colours are
    no cue for "fake": the model trained without it (shipped in 38fc630) called 9.0% of the real DFDC
    test crops DeepFake as cut and 46.8% recoloured (`evaluate`; model card, "Colours")."""
    levels = np.arange(256, dtype=np.float32) / 255.0
    curve = levels ** np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    curve = (curve - 0.5) * rng.uniform(0.7, 1.3) + 0.5
    table = curve[:, None] * rng.uniform(0.7, 1.3) * rng.uniform(0.85, 1.15, size=3) * 255.0
    out = _through_tables(image, table).astype(np.float32)
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None]
    out = grey + (out - grey) * rng.uniform(0.6, 1.5)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def relight(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image lit from one side: its brightness rises linearly across it, in a direction drawn at
    random, from 1 - s to 1 + s times itself edge to edge (s 0.1-0.35). Applied to real and fake faces
    alike: the model shipped in 38fc630 called 9.0% of the real DFDC val crops DeepFake as cut and
    about 21% with 30 levels added on one side and taken on the other; this ratio, gentler on dark
    pixels, cost it less on the test crops (9.7%; `evaluate`, side-lit)."""
    height, width = image.shape[:2]
    angle = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = ((xs - (width - 1) / 2) * np.cos(angle) + (ys - (height - 1) / 2) * np.sin(angle)) / (
        max(height, width) / 2
    )
    gain = 1.0 + rng.uniform(0.1, 0.35) * np.clip(along, -1.0, 1.0)
    return np.clip(np.rint(image * gain[..., None]), 0, 255).astype(np.uint8)


def reframed(
    image: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The face as a tilted head and another framing show it: the image turned by up to 10 degrees about
    the crop box's centre, and the box scaled 0.88 to 1.12 times about it (clipped to the image). The
    model shipped in 38fc630 called 9.0% of the real DFDC val crops DeepFake as cut, 13% turned by 10
    degrees and 17.5% in a box 0.85 times the size."""
    x1, y1, x2, y2 = box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    turn = cv2.getRotationMatrix2D(centre, rng.uniform(-10.0, 10.0), 1.0)
    turned = cv2.warpAffine(image, turn, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    half_w, half_h = (x2 - x1) * rng.uniform(0.88, 1.12) / 2, (y2 - y1) * rng.uniform(0.88, 1.12) / 2
    height, width = image.shape[:2]
    return turned, _box_about(*centre, half_w, half_h, width, height)


def erased(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The image with one rectangle painted over in the image's mean colour, and the rectangle (x1, y1,
    x2, y2): ERASED_AREA of the image, 1:2 to 2:1, anywhere in it. Applied to real and fake faces alike,
    it hides a part of the face the network may lean on, so that it learns to find a trace in any part
    of the crop rather than in the one spot where one dataset's fakes show theirs (Random Erasing,
    Zhong et al., AAAI 2020; Representative Forgery Mining, Wang and Deng, CVPR 2021, erases the spots
    the network leans on most). The patch's edges are the same for both classes, so they are no cue."""
    height, width = image.shape[:2]
    area = height * width * rng.uniform(*ERASED_AREA)
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    patch_w = int(np.clip(round(np.sqrt(area * aspect)), 1, width))
    patch_h = int(np.clip(round(np.sqrt(area / aspect)), 1, height))
    x1, y1 = int(rng.integers(0, width - patch_w + 1)), int(rng.integers(0, height - patch_h + 1))
    out = image.copy()
    out[y1 : y1 + patch_h, x1 : x1 + patch_w] = np.rint(image.reshape(-1, image.shape[2]).mean(axis=0))
    return out, (x1, y1, x1 + patch_w, y1 + patch_h)


def _scaled(width: int, height: int, factor: float) -> tuple[int, int]:
    return max(4, int(width * factor)), max(4, int(height * factor))


def low_quality(image: np.ndarray) -> np.ndarray:
    """The image as a poor video gives it, always the same way: a quarter of its width and height,
    JPEG quality 30. What evaluation measures the false alarms of poor video with."""
    return damaged(image, 4, "jpeg", 30)


def low_quality_video(image: np.ndarray) -> np.ndarray:
    """The image as a small face in a re-sent video gives it, always the same way: a third of its width
    and height, H.264 at rate factor 36. What evaluation measures the false alarms of a video codec with:
    JPEG's blocks (`low_quality`) and a codec's smoothing are different damage."""
    return damaged(image, 3, "h264", 36)


def damaged(image: np.ndarray, times: int, codec: str | None = None, level: int = 0) -> np.ndarray:
    """The image ``times`` smaller on each side (8 pixels at least) and, with ``codec``, coded at that
    size as a small face in a video is: "jpeg" at quality ``level`` (`jpeg`) or "h264" at rate factor
    ``level`` (`h264`). Always the same for the same image: evaluation's fixed conditions and its damage
    ladder are made with it."""
    if codec is not None and codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: one of None, {', '.join(CODECS)}")
    small = _shrunk(image, times) if times > 1 else image
    return small if codec is None else CODECS[codec](small, level)


def _shrunk(image: np.ndarray, times: int) -> np.ndarray:
    """The image ``times`` smaller on each side (8 pixels at least), as evaluation's fixed conditions shrink it."""
    height, width = image.shape[:2]
    return cv2.resize(image, (max(8, width // times), max(8, height // times)), interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """The image after a round trip through JPEG at ``quality``."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264(image: np.ndarray, crf: int) -> np.ndarray:
    """The image after a round trip through H.264 as one intra-coded frame (x264, 4:2:0 colour) at
    constant rate factor ``crf`` (0 lossless to 51 worst; 23 is x264's default), as a video encoder
    codes a key frame. Odd sides are padded by repeating the edge and cut off again."""
    height, width = image.shape[:2]
    padded = cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = padded.shape[1], padded.shape[0], "yuv420p"
    encoder.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency", "threads": "1"}
    packets = [
        *encoder.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")),
        *encoder.encode(None),
    ]
    decoder = av.CodecContext.create("h264", "r")
    frames = [frame for packet in [*packets, None] for frame in decoder.decode(packet)]
    return frames[0].to_ndarray(format="rgb24")[:height, :width]


CODECS = {"jpeg": jpeg, "h264": h264}  # what `damaged` codes with (None: not coded)


def jittered_box(box: tuple[int, int, int, int], width: int, height: int, rng: np.random.Generator) -> tuple[int, ...]:
    """The crop box moved and resized by a few per cent, clipped to the image: the spread of MTCNN's
    keypoints from one frame to the next."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    scale = rng.uniform(0.94, 1.06)
    cx = (x1 + x2) / 2 + w * rng.uniform(-0.04, 0.04)
    cy = (y1 + y2) / 2 + h * rng.uniform(-0.04, 0.04)
    return _box_about(cx, cy, w * scale / 2, h * scale / 2, width, height)


def _box_about(cx: float, cy: float, half_w: float, half_h: float, width: int, height: int) -> tuple[int, ...]:
    """The box of the given half sizes about (cx, cy), in whole pixels, clipped to a width x height image."""
    return (
        max(0, int(cx - half_w)),
        max(0, int(cy - half_h)),
        min(width, int(np.ceil(cx + half_w))),
        min(height, int(np.ceil(cy + half_h))),
    )
