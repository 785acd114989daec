"""Choosing and installing onnxruntime: any installed build stays usable, consent asked, pip's
failures reported; real pip runs only on a throwaway command, nothing real installed."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from InnerEarSegmentationLib import dependencies, processes
from InnerEarSegmentationLib.dependencies import (
    CPU_PACKAGE, GPU_PACKAGE, GPU_REQUIREMENT, InstallPlan, choose_onnxruntime_package, decide_install,
    ensure_onnxruntime, plan_install, run_pip)


def refuse(text):
    pytest.fail(f"asked: {text}")


def test_choice_follows_the_gpu_and_the_platform():
    assert choose_onnxruntime_package(True, "Linux") == GPU_PACKAGE
    assert choose_onnxruntime_package(True, "Windows") == GPU_PACKAGE
    assert choose_onnxruntime_package(True, "Darwin") == CPU_PACKAGE
    assert choose_onnxruntime_package(False, "Linux") == CPU_PACKAGE


def test_installed_packages_are_read_from_metadata():
    # This test environment has the CPU build installed and not the GPU one.
    installed = dependencies.installed_onnxruntime_packages()
    assert CPU_PACKAGE in installed and GPU_PACKAGE not in installed


@pytest.mark.parametrize("installed,wanted,uninstall,install,optional", [
    ([], CPU_PACKAGE, [], CPU_PACKAGE, False),
    ([], GPU_PACKAGE, [], GPU_REQUIREMENT, False),
    ([CPU_PACKAGE], CPU_PACKAGE, [], None, False),
    ([CPU_PACKAGE], GPU_PACKAGE, [CPU_PACKAGE], GPU_REQUIREMENT, True),
    ([CPU_PACKAGE, GPU_PACKAGE], GPU_PACKAGE, [CPU_PACKAGE], None, False),
])
def test_plan_keeps_one_build_and_only_offers_a_switch(installed, wanted, uninstall, install, optional):
    plan = plan_install(installed, wanted)
    assert (plan.uninstall, plan.install, plan.optional) == (uninstall, install, optional)


def test_the_gpu_build_comes_with_cuda_and_cudnn():
    plan = plan_install([CPU_PACKAGE], GPU_PACKAGE)
    assert plan.commands("py") == [["py", "-m", "pip", "uninstall", "-y", CPU_PACKAGE],
                                   ["py", "-m", "pip", "install", "onnxruntime-gpu[cuda,cudnn]"]]


def test_declining_the_gpu_build_keeps_the_cpu_build_usable():
    questions = []
    plan = decide_install(lambda text: questions.append(text) or False, "auto", gpu=True,
                          installed=[CPU_PACKAGE])
    if choose_onnxruntime_package(True) == GPU_PACKAGE:
        assert questions and "Cancel keeps the CPU build" in questions[0]
    assert not plan.needed  # no error: the module runs on the CPU


def test_device_cpu_never_asks_about_the_gpu():
    assert not decide_install(refuse, "cpu", gpu=True, installed=[CPU_PACKAGE]).needed
    assert not decide_install(refuse, "cpu", gpu=True, installed=[GPU_PACKAGE]).needed


def test_an_imported_build_does_not_ask_for_a_restart(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", object())
    monkeypatch.setattr(dependencies.platform, "system", lambda: "Linux")
    plan = decide_install(lambda text: True, "auto", gpu=True, installed=[CPU_PACKAGE])
    assert plan.install == GPU_REQUIREMENT  # the child process imports the new build afresh


def test_missing_onnxruntime_declined_stops_with_a_reason():
    with pytest.raises(RuntimeError, match="declined"):
        decide_install(lambda text: False, "auto", gpu=False, installed=[])


def test_ensure_runs_uninstall_before_install(monkeypatch):
    monkeypatch.setattr(dependencies, "installed_onnxruntime_packages", lambda: [CPU_PACKAGE])
    monkeypatch.setattr(dependencies.platform, "system", lambda: "Linux")
    commands = []
    ensure_onnxruntime(lambda text: True, "py", "gpu", gpu=True, runner=commands.append)
    assert [command[3] for command in commands] == ["uninstall", "install"]


def test_a_failing_pip_is_a_message_not_a_calledprocesserror():
    """Real subprocess: a pip command that fails (unknown option) must not escape as CalledProcessError."""
    with pytest.raises(RuntimeError, match=r"exit code [1-9]") as raised:
        run_pip([sys.executable, "-m", "pip", "install", "--no-such-option-for-pip"])
    assert "no-such-option" in str(raised.value)


def test_a_polled_command_reports_its_last_line_and_can_be_cancelled(tmp_path):
    command = processes.PolledCommand(
        [sys.executable, "-c", "import time\nprint('step 1', flush=True)\ntime.sleep(30)"], str(tmp_path / "log"))
    for _ in range(200):
        if command.poll():
            break
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.05)"])
    assert command.poll() == "step 1" and not command.finished
    command.cancel()
    assert command.finished and command.returncode != 0


def test_nvidia_smi_reads_the_cuda_version_from_a_real_executable(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '| NVIDIA-SMI 535.1   Driver Version: 535.1   CUDA Version: 11.8 |'\n")
    fake.chmod(0o755)
    if sys.platform == "win32":
        pytest.skip("a shell script stands in for nvidia-smi")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert dependencies.driver_cuda_version() == (11, 8)
    assert dependencies.has_nvidia_gpu() is False  # CUDA 11 cannot run onnxruntime-gpu's CUDA 12 build


def test_no_nvidia_smi_means_no_gpu(monkeypatch):
    monkeypatch.setattr(dependencies.shutil, "which", lambda name: None)
    assert dependencies.has_nvidia_gpu() is False


def test_nvidia_smi_opens_no_console_window_on_windows(monkeypatch):
    """Windows cannot run here, so sys.platform and subprocess.run are stood in for: the test checks
    the arguments nvidia-smi is started with."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(subprocess, "CREATE_NO_WINDOW", 0x08000000, raising=False)
    monkeypatch.setattr(subprocess, "STARTF_USESHOWWINDOW", 1, raising=False)
    monkeypatch.setattr(subprocess, "STARTUPINFO", type("STARTUPINFO", (), {"dwFlags": 0}), raising=False)
    monkeypatch.setattr(dependencies.shutil, "which", lambda name: "nvidia-smi.exe")
    seen = {}
    monkeypatch.setattr(dependencies.subprocess, "run", lambda command, **kwargs: seen.update(kwargs) or
                        subprocess.CompletedProcess(command, 0, "CUDA Version: 12.4", ""))
    assert dependencies.has_nvidia_gpu()
    assert seen["creationflags"] == 0x08000000 and seen["startupinfo"].dwFlags == 1


def test_cuda_and_cudnn_wheels_are_preloaded_before_a_gpu_session(monkeypatch):
    """No GPU here, so onnxruntime-gpu is stood in for: with the CUDA provider listed, its
    preload_dlls() (which loads the [cuda,cudnn] wheels' libraries) must run before sessions open."""
    from InnerEarSegmentationLib import inference

    calls = []
    stand_in = type("ort", (), {"get_available_providers": staticmethod(lambda: [inference.CUDA, inference.CPU]),
                                "preload_dlls": staticmethod(lambda: calls.append("preload"))})
    monkeypatch.setattr(inference, "_onnxruntime", lambda: stand_in)
    assert inference.choose_providers("auto")[0] == [inference.CUDA, inference.CPU] and calls == ["preload"]
    assert inference.choose_providers("cpu")[0] == [inference.CPU] and calls == ["preload"]


def poll_until_finished(job, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.02)
    job.poll()


def test_install_commands_run_in_turn_and_the_first_failure_stops_them(tmp_path):
    """Real child processes standing in for pip (the panel polls these while the GUI stays live)."""
    marker = tmp_path / "second-ran"
    ok = [sys.executable, "-c", "print('first done')"]
    second = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    sequence = processes.CommandSequence([ok, second], str(tmp_path), lambda c, code, out: f"failed {code}")
    poll_until_finished(sequence)
    assert sequence.finished and not sequence.failure and marker.exists()

    marker.unlink()
    failing = [sys.executable, "-c", "import sys; print('no network'); sys.exit(3)"]
    sequence = processes.CommandSequence([failing, second], str(tmp_path),
                                         lambda c, code, out: f"failed {code}: {out.strip()}")
    poll_until_finished(sequence)
    assert sequence.finished and sequence.failure == "failed 3: no network" and not marker.exists()
