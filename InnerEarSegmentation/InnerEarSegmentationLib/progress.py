"""Progress reporting and cancellation shared by the GUI, the command line and batch runs."""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class Progress:
    """Forwards (fraction, message) to a callback and raises ``Cancelled`` once cancel is set.

    Long loops call ``report`` (or ``check``) between batches, so a Cancel click stops the work
    within one batch.
    """

    def __init__(
        self,
        callback: Optional[ProgressCallback] = None,
        cancel_event: Optional[threading.Event] = None,
    ) -> None:
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def report(self, fraction: float, message: str) -> None:
        self.check()
        if self.callback is not None:
            self.callback(min(max(fraction, 0.0), 1.0), message)

    def span(self, start: float, stop: float) -> "Progress":
        """A child whose 0..1 maps onto start..stop of this one (same cancel flag)."""
        parent = self

        def forward(fraction: float, message: str) -> None:
            parent.report(start + (stop - start) * fraction, message)

        return Progress(forward, self.cancel_event)
