"""Which GoPs are key GoPs: at least one every --keyint frames, and wherever prediction fails.

    GoP 0 ------------------------------------------------------------------> key
    GoP k: first frame >= keyint frames after the last key GoP's first ----> key (random access,
                                                                              and the end of any
                                                                              damage's reach)
    otherwise -> may be predicted; the fit decides (encoder/pipeline.py): a warm start makes it
                 predicted, a cold start (the previous Gaussians draw the new key frame worse than
                 a fresh initialisation: a cut, train/warm.py) a key GoP

A cold start is where prediction does not pay: the reference's Gaussians would have to be replaced
almost all, and a predicted GoP would code them dropped and the new ones intra at the key GoP's
cost, losing random access for nothing.
"""

from __future__ import annotations

DEFAULT_KEYINT = 250
"""Default --keyint, in frames: x264's default, 25 GoPs of 10 frames. Decoding from frame F starts at
the key GoP before it, whose Gaussians and those of the GoPs up to F are parsed, not rendered."""


class KeyPlan:
    """Tracks the last key GoP while GoPs are coded, and says which may be predicted."""

    def __init__(self, gops: list[tuple[int, int]], keyint: int):
        """gops: (first frame, frame count) of each GoP; keyint: --keyint in frames (>= 1)."""
        self.gops, self.keyint = gops, keyint
        self.last_key_frame = 0

    def may_predict(self, number: int) -> bool:
        """Whether GoP `number` may be coded against the GoP before it."""
        return number > 0 and self.gops[number][0] - self.last_key_frame < self.keyint

    def record(self, number: int, predicted: bool) -> None:
        """What GoP `number` became."""
        if not predicted:
            self.last_key_frame = self.gops[number][0]

    def forced_keys(self) -> list[bool]:
        """For each GoP, whether --keyint alone makes it a key GoP (assuming every other GoP is
        predicted): what rate control plans with before the fits decide."""
        keys, last = [], 0
        for number, (first, _) in enumerate(self.gops):
            key = number == 0 or first - last >= self.keyint
            last = first if key else last
            keys.append(key)
        return keys
