"""Per-target congestion window of the Linux AoE initiator (reference §7).

``nframes`` is what the target can queue (its config Buffer Count) capped by
the initiator's own limit (``aoe_maxout``: 64 in mainline). ``maxout`` is how
many frames may be on the wire at once:

* a new target starts at nframes/2;
* every answered frame adds 1 while maxout < ssthresh (slow start);
* above ssthresh, 1 is added once per window: only when the window is full
  at the time of the answer, after maxout+1 such answers;
* a timeout halves ssthresh from the current window and drops maxout to 1;
* maxout never exceeds nframes, so never more than Buffer Count frames are out.

Not in the driver (used only with the engine's ``fast_retransmit``): a frame
shown lost by later replies, before its timeout, makes a fast-recovery cut
as TCP's (RFC 5681 §3.2): ssthresh = max(maxout/2, 2) and maxout down to
it, then linear growth from there; no collapse to 1. The engine decides
which losses cut (one per window of frames).

Time only enters as a label for the recorded history.
"""

from __future__ import annotations

from typing import List, Tuple

#: mainline Linux's ``aoe_maxout`` default (aoe6-87 and the kernel docs say 128)
DEFAULT_MAXOUT_CAP = 64


class CongestionWindow:
    """Window state for one target MAC; counts the frames it lets out."""

    __slots__ = ("maxout_cap", "nframes", "maxout", "ssthresh", "next_cwnd", "nout", "history")

    def __init__(self, bufcnt: int, maxout_cap: int = DEFAULT_MAXOUT_CAP, now: float = 0.0):
        if maxout_cap < 1:
            raise ValueError(f"maxout_cap must be at least 1, got {maxout_cap}")
        self.maxout_cap = maxout_cap
        self.nframes = self._cap(bufcnt)
        self.nout = 0
        self.history: List[Tuple[float, int]] = []
        self.reset(now)
        # A new target starts at half its queue. The driver lets this be 0
        # for a Buffer Count of 1, which would never send; keep at least 1.
        self._set(max(1, self.nframes // 2), now)

    def _cap(self, bufcnt: int) -> int:
        # A Buffer Count of 0 would stall everything; treat it as 1.
        return max(1, min(bufcnt, self.maxout_cap))

    def _set(self, maxout: int, now: float) -> None:
        self.maxout = maxout
        if not self.history or self.history[-1][1] != maxout:
            self.history.append((now, maxout))

    def reset(self, now: float = 0.0) -> None:
        """Start over cautiously, as ``aoecmd_wreset``: one frame out, slow start to nframes/2."""
        self.ssthresh = self.nframes // 2
        self.next_cwnd = self.nframes
        self._set(1, now)

    def set_bufcnt(self, bufcnt: int, now: float = 0.0) -> None:
        """A config reply changed the Buffer Count; shrinking below maxout resets the window."""
        self.nframes = self._cap(bufcnt)
        if self.nframes < self.maxout:
            self.reset(now)

    @property
    def room(self) -> int:
        """How many more frames may be sent now."""
        return self.maxout - self.nout

    def can_send(self) -> bool:
        return self.nout < self.maxout

    def on_send(self) -> None:
        self.nout += 1

    def on_answer(self, now: float) -> None:
        """A frame in flight was answered: grow the window, then count it as no longer out."""
        maxout = self.maxout
        if maxout < self.nframes:
            if maxout < self.ssthresh:
                self._set(maxout + 1, now)
            elif self.nout == maxout:
                # linear growth: only while the window is full, once per window
                if self.next_cwnd == 0:
                    self._set(maxout + 1, now)
                    self.next_cwnd = self.maxout
                else:
                    self.next_cwnd -= 1
        if self.nout > 0:
            self.nout -= 1

    def on_late_answer(self) -> None:
        """An answer for a frame already counted out by a timeout: the window is unchanged."""

    def on_fast_loss(self, now: float, cut: bool = True) -> None:
        """A frame in flight was shown lost by later replies: it leaves the window;
        with ``cut``, halve the window (at least 2) and make that the threshold."""
        if cut:
            self.ssthresh = max(self.maxout // 2, 2)
            if self.ssthresh < self.maxout:
                self._set(self.ssthresh, now)
            # a whole window of replies before the next linear step
            self.next_cwnd = self.maxout
        if self.nout > 0:
            self.nout -= 1

    def on_timeout(self, now: float) -> None:
        """A frame in flight timed out: collapse to one frame, remember half the old window."""
        if self.maxout != 1:
            self.ssthresh = self.maxout // 2
            self._set(1, now)
        if self.nout > 0:
            self.nout -= 1

    def __repr__(self) -> str:
        return (
            f"CongestionWindow(maxout={self.maxout}, nframes={self.nframes}, "
            f"ssthresh={self.ssthresh}, nout={self.nout})"
        )
