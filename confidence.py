"""How sure a verdict is: `high`, or `low` with the reasons. The verdict itself is the original's
rule (custom_vision.decide) and is never changed here; this only says how far to trust it.

The thresholds come from the shipped model's calibrated figures on the DFDC val split
(models/metrics.json, `val_calibration`; MODEL_CARD.md, "Confidence"): crops scored between 0.3 and
0.7 turned out fake 39% to 75% of the time, so a mean within 0.15 of one half is close to a coin
flip; with under three crops one bad crop decides everything; and when more than a quarter of the
crops say the opposite of the verdict, the video's crops do not agree on an answer. When most crops
show a face turned to one side (`face.TURNED`), the model is on its weakest ground: on the DFDC test
crops it finds 40% to 60% of the fakes of turned faces against 68% of the others, at ROC AUC 0.82
against 0.92 (`flask evaluate`, by head turn; MODEL_CARD.md, "Turned faces").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NEAR_HALF = 0.15  # |P(DeepFake) - 0.5| below this: low
MIN_CROPS = 3  # fewer crops than this: low
MAX_DISSENT = 0.25  # a larger share of crops labelled against the verdict: low
MAX_TURNED = 0.5  # a larger share of crops of faces turned to one side: low

HIGH, LOW = "high", "low"
# The reasons are codes, so that each page can say them in its own language.
NEAR_HALF_REASON = "probability_near_half"
FEW_CROPS_REASON = "few_crops"
CROPS_DISAGREE_REASON = "crops_disagree"
FACES_TURNED_REASON = "faces_turned"


@dataclass(frozen=True)
class Confidence:
    level: str  # high or low
    reasons: list[str]  # why low; empty when high


def assess(
    deepfake_probability: float | None,
    crops_fake: Sequence[bool],
    verdict_is_fake: bool | None,
    crops_turned: Sequence[bool] = (),
) -> Confidence:
    """The confidence of a verdict (``verdict_is_fake``) reached over crops labelled ``crops_fake``
    whose mean P(DeepFake) is ``deepfake_probability``, ``crops_turned`` saying which of them show a
    face turned to one side. Without a face nothing was judged, so nothing is claimed: low, with no
    reasons."""
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
    if sum(1 for turned in crops_turned if turned) > MAX_TURNED * count:
        reasons.append(FACES_TURNED_REASON)
    return Confidence(LOW if reasons else HIGH, reasons)
