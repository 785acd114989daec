"""Run long work on a worker thread while the GUI thread polls for progress and the outcome.

Qt-free on purpose: the module polls ``BackgroundJob.poll`` from a QTimer, so nothing but the
worker touches the job's internals and no Qt or MRML call is ever made off the main thread.
"""

from __future__ import annotations

import queue
import threading
import traceback
from typing import Any, Callable, Optional

from .progress import Progress


class BackgroundJob:
    """``work(progress)`` on a daemon thread; ``cancel()`` makes the next progress report raise."""

    def __init__(self, work: Callable[[Progress], Any], name: str = "InnerEarSegmentation") -> None:
        self._work = work
        self._events: "queue.Queue[tuple[float, str]]" = queue.Queue()
        self._done = threading.Event()
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.traceback = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "BackgroundJob":
        self._thread.start()
        return self

    def _run(self) -> None:
        progress = Progress(lambda fraction, message: self._events.put((fraction, message)), self.cancel_event)
        try:
            self.result = self._work(progress)
        except BaseException as error:  # handed to the GUI thread, which shows it
            self.error = error
            self.traceback = traceback.format_exc()
        finally:
            self._done.set()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def poll(self) -> Optional[tuple[float, str]]:
        """The latest (fraction, message) reported since the last poll, or None."""
        latest = None
        while True:
            try:
                latest = self._events.get_nowait()
            except queue.Empty:
                return latest

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._done.wait(timeout)
