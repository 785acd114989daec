"""Which onnxruntime to install into Slicer's Python, and how, without a restart.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` import package; with both present
one silently shadows the other. So exactly one is kept: the GPU build where an NVIDIA driver
answers (nvidia-smi works, not on macOS), the CPU build otherwise. Nothing here imports Slicer; the
module passes in Slicer's pip functions and a consent question.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

CPU_PACKAGE = "onnxruntime"
GPU_PACKAGE = "onnxruntime-gpu"
# Every distribution that provides the ``onnxruntime`` import package.
ONNXRUNTIME_DISTRIBUTIONS = (CPU_PACKAGE, GPU_PACKAGE, "onnxruntime-directml", "onnxruntime-openvino",
                             "onnxruntime-silicon", "ort-nightly", "ort-nightly-gpu")


def has_nvidia_gpu(timeout: float = 10.0) -> bool:
    """True when ``nvidia-smi -L`` runs and lists a GPU (a driver is installed and sees a card)."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return False
    try:
        completed = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0 and "GPU" in completed.stdout


def choose_onnxruntime_package(has_nvidia_gpu: bool, system: Optional[str] = None) -> str:
    """onnxruntime-gpu with a usable NVIDIA GPU (there is no macOS build of it), else onnxruntime."""
    system = system or platform.system()
    return GPU_PACKAGE if has_nvidia_gpu and system != "Darwin" else CPU_PACKAGE


def installed_onnxruntime_packages() -> list[str]:
    """The onnxruntime distributions installed in this Python, by their pip names."""
    found = []
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


@dataclass
class InstallPlan:
    """What to change: distributions to remove first, then the one to install (or nothing)."""

    uninstall: list[str] = field(default_factory=list)
    install: Optional[str] = None

    @property
    def needed(self) -> bool:
        return bool(self.uninstall or self.install)

    def describe(self) -> str:
        steps = [f"uninstall {', '.join(self.uninstall)}"] if self.uninstall else []
        if self.install:
            steps.append(f"install {self.install}")
        return " and ".join(steps) if steps else "nothing to do"


def plan_install(installed: list[str], wanted: str) -> InstallPlan:
    """Keep ``wanted`` alone: remove every other onnxruntime distribution, install it if missing."""
    others = [name for name in installed if name != wanted]
    return InstallPlan(uninstall=others, install=None if wanted in installed else wanted)


def ensure_onnxruntime(ask: Callable[[str], bool], pip_install: Callable[[str], None],
                       pip_uninstall: Callable[[str], None], gpu: Optional[bool] = None) -> InstallPlan:
    """Brings onnxruntime into the wanted state after the user agrees; returns what was planned.

    Raises RuntimeError when the user declines, or when a different build is already imported
    (swapping it would need a restart, which we never ask for silently).
    """
    wanted = choose_onnxruntime_package(has_nvidia_gpu() if gpu is None else gpu)
    plan = plan_install(installed_onnxruntime_packages(), wanted)
    if not plan.needed:
        return plan
    if plan.uninstall and "onnxruntime" in sys.modules:
        raise RuntimeError(f"onnxruntime is already loaded; to {plan.describe()}, restart Slicer first "
                           "and then run the segmentation again.")
    reason = ("An NVIDIA GPU was found, so the GPU build is used." if wanted == GPU_PACKAGE
              else "No usable NVIDIA GPU was found (nvidia-smi did not answer), so the CPU build is used.")
    if not ask(f"Inner ear segmentation needs onnxruntime. {reason}\n\nOK to {plan.describe()} now "
               "(download of about 10-300 MB; no restart needed)?"):
        raise RuntimeError(f"onnxruntime is required; {plan.describe()} was declined.")
    for name in plan.uninstall:
        pip_uninstall(name)
    if plan.install:
        pip_install(plan.install)
    return plan
