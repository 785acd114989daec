"""Which onnxruntime to install into Slicer's Python, and how, without a restart.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` import package; with both present
one silently shadows the other, so one is kept. Any build that is installed is usable: the GPU
build is only offered, never forced, and declining it keeps the CPU build working. The GPU build
is offered where the NVIDIA driver answers and supports CUDA 12 (what onnxruntime-gpu is built
for), with its ``[cuda,cudnn]`` extras so a machine with only the driver really runs on the GPU.
Inference runs in a child process that imports onnxruntime afresh, so a swap needs no restart.
Nothing here imports Slicer; the module passes in a consent question and a way to run pip.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

from .processes import no_console_window

CPU_PACKAGE = "onnxruntime"
GPU_PACKAGE = "onnxruntime-gpu"
# The CUDA 12 and cuDNN 9 runtimes as wheels; onnxruntime.preload_dlls() loads them.
GPU_REQUIREMENT = "onnxruntime-gpu[cuda,cudnn]"
MIN_CUDA_MAJOR = 12
# Every distribution that provides the ``onnxruntime`` import package.
ONNXRUNTIME_DISTRIBUTIONS = (CPU_PACKAGE, GPU_PACKAGE, "onnxruntime-directml", "onnxruntime-openvino",
                             "onnxruntime-silicon", "ort-nightly", "ort-nightly-gpu")


def driver_cuda_version(timeout: float = 10.0) -> Optional[tuple[int, int]]:
    """The CUDA version the NVIDIA driver supports, from ``nvidia-smi``'s header; None without one."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        completed = subprocess.run([executable], capture_output=True, text=True, timeout=timeout,
                                   stdin=subprocess.DEVNULL, **no_console_window())
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", completed.stdout)
    if completed.returncode != 0 or found is None:
        return None
    return int(found.group(1)), int(found.group(2))


def has_nvidia_gpu(timeout: float = 10.0) -> bool:
    """True when an NVIDIA driver answers and supports CUDA 12, which onnxruntime-gpu needs."""
    version = driver_cuda_version(timeout)
    return version is not None and version[0] >= MIN_CUDA_MAJOR


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
    """What to change: distributions to remove first, then one requirement to install (or nothing).

    ``optional`` is True when a working build is already installed (the change is an offer).
    """

    uninstall: list[str] = field(default_factory=list)
    install: Optional[str] = None
    optional: bool = False

    @property
    def needed(self) -> bool:
        return bool(self.uninstall or self.install)

    def describe(self) -> str:
        steps = [f"uninstall {', '.join(self.uninstall)}"] if self.uninstall else []
        if self.install:
            steps.append(f"install {self.install}")
        return " and ".join(steps) if steps else "nothing to do"

    def commands(self, python: str) -> list[list[str]]:
        """The pip command lines, run by ``python`` (PythonSlicer inside Slicer)."""
        commands = [[python, "-m", "pip", "uninstall", "-y", *self.uninstall]] if self.uninstall else []
        if self.install:
            commands.append([python, "-m", "pip", "install", self.install])
        return commands


def requirement(package: str) -> str:
    return GPU_REQUIREMENT if package == GPU_PACKAGE else package


def plan_install(installed: list[str], wanted: str) -> InstallPlan:
    """Keep ``wanted`` alone; when another build already works, switching is only an offer."""
    if wanted in installed:
        return InstallPlan(uninstall=[name for name in installed if name != wanted])
    usable = bool(installed)
    return InstallPlan(uninstall=list(installed), install=requirement(wanted), optional=usable)


def wanted_package(device: str, gpu: Optional[bool] = None) -> str:
    """The build for ``device``: the CPU build alone is enough for device 'cpu' (no GPU probe)."""
    if device == "cpu":
        return CPU_PACKAGE
    return choose_onnxruntime_package(has_nvidia_gpu() if gpu is None else gpu)


def decide_install(ask: Callable[[str], bool], device: str = "auto", gpu: Optional[bool] = None,
                   installed: Optional[list[str]] = None) -> InstallPlan:
    """The changes the user agreed to (possibly none); raises RuntimeError only when onnxruntime
    is missing and the user declines it."""
    installed = installed_onnxruntime_packages() if installed is None else installed
    wanted = wanted_package(device, gpu)
    if device == "cpu" and installed:
        return InstallPlan()  # any build runs on the CPU
    plan = plan_install(installed, wanted)
    if not plan.needed:
        return plan
    if plan.optional and "onnxruntime" in sys.modules and platform.system() == "Windows":
        return InstallPlan()  # its DLLs are loaded in this process and cannot be replaced until a restart
    if plan.optional:
        question = (f"An NVIDIA GPU with CUDA {MIN_CUDA_MAJOR} support was found. Segmentation runs "
                    f"on the CPU with the installed {', '.join(installed)}; the GPU build is faster.\n\n"
                    f"OK to {plan.describe()} now (a download of about 1 GB with CUDA and cuDNN; no "
                    "restart needed)? Cancel keeps the CPU build.")
        return plan if ask(question) else InstallPlan()
    reason = ("An NVIDIA GPU with CUDA 12 support was found, so the GPU build (with CUDA and cuDNN) "
              "is used." if wanted == GPU_PACKAGE else "The CPU build is used.")
    if not ask(f"Inner ear segmentation needs onnxruntime. {reason}\n\nOK to {plan.describe()} now "
               "(no restart needed)?"):
        raise RuntimeError(f"onnxruntime is required; {plan.describe()} was declined.")
    return plan


def run_pip(command: list[str]) -> None:
    """Runs one pip command to the end; its failure becomes a RuntimeError with pip's last words."""
    try:
        completed = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                   **no_console_window())
    except OSError as error:
        raise RuntimeError(f"Could not run pip ({error}).") from None
    if completed.returncode != 0:
        raise RuntimeError(pip_failure(command, completed.returncode, completed.stdout + completed.stderr))


def pip_failure(command: list[str], returncode: int, output: str) -> str:
    """One message for a failed pip run: what was tried, how it ended, the end of its output."""
    tail = "\n".join(output.strip().splitlines()[-8:])
    return (f"'{' '.join(command[1:])}' failed (exit code {returncode}). Check the network or "
            f"install it from Slicer's Python console.\n{tail}")


def ensure_onnxruntime(ask: Callable[[str], bool], python: Optional[str] = None, device: str = "auto",
                       gpu: Optional[bool] = None, runner: Callable[[list[str]], None] = run_pip) -> InstallPlan:
    """Asks, then installs (blocking; the module's panel runs the same commands polled)."""
    plan = decide_install(ask, device, gpu)
    for command in plan.commands(python or sys.executable):
        runner(command)
    return plan
