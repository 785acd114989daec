"""Starting child processes the same way everywhere: no console window on Windows."""

from __future__ import annotations

import subprocess
import sys
import os
from typing import Any, Callable, Optional


def no_console_window() -> dict[str, Any]:
    """Popen/run arguments that keep Windows from flashing a console window for a child."""
    if sys.platform != "win32":
        return {}
    startupinfo = subprocess.STARTUPINFO()
    startupinfo.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    return {"creationflags": subprocess.CREATE_NO_WINDOW, "startupinfo": startupinfo}


class PolledCommand:
    """A command (pip) run in the background with its output in a log file, for a GUI to poll.

    Thread-free: ``poll`` reads the log's last line, so the panel shows what pip is doing while
    the GUI stays responsive, and ``cancel`` stops it.
    """

    def __init__(self, command: list[str], log_path: str) -> None:
        self.command, self.log_path = command, log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, **no_console_window())

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def poll(self) -> str:
        """The last line the command printed so far."""
        lines = [line for line in self.output().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    @property
    def finished(self) -> bool:
        return self.process.poll() is not None

    @property
    def returncode(self) -> Optional[int]:
        return self.process.poll()

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class CommandSequence:
    """Commands run one after another in the background (uninstall, then install), polled like one;
    the first failure stops the rest and ``failure`` says what happened."""

    def __init__(self, commands: list[list[str]], log_folder: str,
                 describe_failure: Callable[[list[str], int, str], str]) -> None:
        self._commands, self._log_folder, self._describe = list(commands), log_folder, describe_failure
        self.failure = ""
        self.cancelled = False
        self.current = self._next()

    def _next(self) -> PolledCommand:
        return PolledCommand(self._commands.pop(0), os.path.join(self._log_folder, "InnerEarSegmentation-pip.log"))

    def poll(self) -> str:
        line = self.current.poll()
        if self.current.finished and not self.failure:
            if self.current.returncode != 0:
                self.failure = self._describe(self.current.command, self.current.returncode, self.current.output())
                self._commands = []
            elif self._commands:
                self.current = self._next()
        return line

    @property
    def finished(self) -> bool:
        return self.current.finished and not self._commands

    def cancel(self) -> None:
        self._commands = []
        self.current.cancel()
        self.cancelled = True
        self.failure = "Cancelled; onnxruntime may be incomplete. Run the segmentation again to repair it."
