"""Run the segmentation in a child Python process; poll its progress, cancel it, collect the result.

Qt-free and thread-free: the GUI polls ``SegmentationProcess.poll`` from a QTimer, the console
API calls ``wait``. The parent never imports onnxruntime (only the child does), so installing or
swapping the onnxruntime build never needs a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import SimpleITK as sitk

from . import errors
from .labels import Label
from .processes import no_console_window
from .progress import Progress
from .worker import EVENTS_FILE, JOB_FILE, LABELMAP_FILE, PREVIEW_FILE, RESULT_FILE

LIBRARY_PARENT = Path(__file__).resolve().parent.parent
SCAN_FILE = "scan.nrrd"
LOG_FILE = "worker.log"
KILL_AFTER_S = 1.0  # a child that ignores terminate() is killed after this


@dataclass
class ProcessResult:
    """What the child made: the labelmap on the scan's grid, its labels and the report."""

    labelmap: sitk.Image
    labels: tuple[Label, ...]
    report: dict[str, Any]
    preview_png: Optional[bytes] = None  # the QC picture, when asked for and drawn


def child_environment(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment with this library importable and output unbuffered."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LIBRARY_PARENT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class SegmentationProcess:
    """One scan segmented by ``python -m InnerEarSegmentationLib.worker`` in a job folder.

    ``python`` is the interpreter to run: this one by default; inside Slicer, PythonSlicer
    (Slicer's own executable is not a Python interpreter).
    """

    def __init__(self, image: sitk.Image, model: str = "", device: str = "auto",
                 keep_largest_component: bool = True, source: str = "", preview: bool = False,
                 python: Optional[str] = None, env: Optional[dict[str, str]] = None, side: str = "both") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="inner-ear-seg-"))
        self.python = python or sys.executable
        self.env = child_environment(env)
        self._image: Optional[sitk.Image] = image
        self._job = {"scan": SCAN_FILE, "model": str(model or ""), "device": device,
                     "keep_largest_component": bool(keep_largest_component), "source": source,
                     "preview": bool(preview), "side": side}
        self._process: Optional[subprocess.Popen] = None
        self._offset = 0
        self._pending = b""
        self._outcome: Optional[dict[str, Any]] = None
        self._result: Optional[ProcessResult] = None
        self.cancelled = False

    def command(self) -> Sequence[str]:
        return [self.python, "-m", "InnerEarSegmentationLib.worker", str(self.folder)]

    def start(self) -> "SegmentationProcess":
        """Writes the scan (uncompressed: quicker than any gzip) and launches the child."""
        sitk.WriteImage(self._image, str(self.folder / SCAN_FILE), False)
        self._image = None
        (self.folder / JOB_FILE).write_text(json.dumps(self._job), encoding="utf-8")
        with open(self.folder / LOG_FILE, "wb") as log:
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=self.env, **no_console_window())
        return self

    def _events(self) -> list[dict[str, Any]]:
        """Complete event lines written since the last call."""
        path = self.folder / EVENTS_FILE
        if not path.exists():
            return []
        with open(path, "rb") as stream:
            stream.seek(self._offset)
            data = stream.read()
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def poll(self) -> Optional[tuple[float, str]]:
        """The latest (fraction, message) since the last poll, or None."""
        latest = None
        for event in self._events():
            if "progress" in event:
                latest = (float(event["progress"]), str(event["message"]))
            else:
                self._outcome = event
        return latest

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def finished(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def cancel(self) -> None:
        """Stops the child: terminate, then kill if it has not gone within a second. Returns within
        about two seconds even if the system is too busy to let the child exit at once."""
        self.cancelled = True
        if not self.running:
            return
        self._process.terminate()
        try:
            self._process.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            try:
                self._process.wait(KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                pass  # killed; it goes when the system schedules it

    def result(self) -> ProcessResult:
        """The finished child's result; raises Cancelled, the child's own error, or RuntimeError."""
        if self.cancelled:
            raise errors.Cancelled()
        if not self.finished:
            raise RuntimeError("The segmentation process is still running.")
        self.poll()
        outcome = self._outcome or {}
        if outcome.get("done"):
            if self._result is None:
                data = json.loads((self.folder / RESULT_FILE).read_text(encoding="utf-8"))
                labels = tuple(Label.from_dict(label) for label in data["labels"])
                preview = self.folder / PREVIEW_FILE
                self._result = ProcessResult(sitk.ReadImage(str(self.folder / LABELMAP_FILE)), labels,
                                             data["report"], preview.read_bytes() if preview.is_file() else None)
            return self._result
        error_class = getattr(errors, str(outcome.get("kind")), None)
        if isinstance(error_class, type) and issubclass(error_class, errors.InnerEarError):
            raise error_class(outcome["error"])
        detail = outcome.get("traceback") or self.log_tail()
        raise RuntimeError(f"The segmentation process failed (exit code {self._process.returncode}):\n{detail}")

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return (self.folder / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-characters:]
        except OSError:
            return ""

    def wait(self, progress: Optional[Progress] = None, interval: float = 0.05) -> ProcessResult:
        """Blocks until done, forwarding progress; a Cancelled raised by ``progress`` stops the child."""
        progress = progress or Progress()
        try:
            while True:
                latest = self.poll()
                if latest:
                    progress.report(*latest)
                progress.check()
                if self.finished:
                    return self.result()
                time.sleep(interval)
        except errors.Cancelled:
            self.cancel()
            raise

    def close(self) -> None:
        """Stops the child if it still runs and deletes the job folder."""
        if self.running:
            self.cancel()
        shutil.rmtree(self.folder, ignore_errors=True)
