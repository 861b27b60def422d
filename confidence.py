"""How sure a verdict is: `high`, or `low` with the reasons. The verdict itself is the original's
rule (custom_vision.decide) and is never changed here; this only says how far to trust it.

The thresholds come from the shipped model's calibrated figures on the DFDC val split
(models/metrics.json, `val_calibration`; MODEL_CARD.md, "Confidence"): crops scored between 0.3 and
0.7 turned out fake 39% to 75% of the time, so a mean within 0.15 of one half is close to a coin
flip; with under three crops one bad crop decides everything; and when more than a quarter of the
crops say the opposite of the verdict, the video's crops do not agree on an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NEAR_HALF = 0.15  # |P(DeepFake) - 0.5| below this: low
MIN_CROPS = 3  # fewer crops than this: low
MAX_DISSENT = 0.25  # a larger share of crops labelled against the verdict: low

HIGH, LOW = "high", "low"
# The reasons are codes, so that each page can say them in its own language.
NEAR_HALF_REASON = "probability_near_half"
FEW_CROPS_REASON = "few_crops"
CROPS_DISAGREE_REASON = "crops_disagree"


@dataclass(frozen=True)
class Confidence:
    level: str  # high or low
    reasons: list[str]  # why low; empty when high


def assess(deepfake_probability: float | None, crops_fake: Sequence[bool], verdict_is_fake: bool | None) -> Confidence:
    """The confidence of a verdict (``verdict_is_fake``) reached over crops labelled ``crops_fake``
    whose mean P(DeepFake) is ``deepfake_probability``. Without a face nothing was judged, so nothing
    is claimed: low, with no reasons."""
    count = len(crops_fake)
    if verdict_is_fake is None or deepfake_probability is None or count == 0:
        return Confidence(LOW, [])
    reasons = []
    if abs(deepfake_probability - 0.5) < NEAR_HALF:
        reasons.append(NEAR_HALF_REASON)
    if count < MIN_CROPS:
        reasons.append(FEW_CROPS_REASON)
    dissenting = sum(1 for fake in crops_fake if fake != verdict_is_fake)
    if dissenting > MAX_DISSENT * count:
        reasons.append(CROPS_DISAGREE_REASON)
    return Confidence(LOW if reasons else HIGH, reasons)
