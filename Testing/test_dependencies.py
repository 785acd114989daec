"""Choosing and installing onnxruntime: never both builds, consent asked, nothing real installed."""

from __future__ import annotations

import sys

import pytest

from InnerEarSegmentationLib import dependencies
from InnerEarSegmentationLib.dependencies import (
    CPU_PACKAGE, GPU_PACKAGE, choose_onnxruntime_package, ensure_onnxruntime, plan_install)


def test_choice_follows_the_gpu_and_the_platform():
    assert choose_onnxruntime_package(True, "Linux") == GPU_PACKAGE
    assert choose_onnxruntime_package(True, "Windows") == GPU_PACKAGE
    assert choose_onnxruntime_package(True, "Darwin") == CPU_PACKAGE
    assert choose_onnxruntime_package(False, "Linux") == CPU_PACKAGE


def test_installed_packages_are_read_from_metadata():
    # This test environment has the CPU build installed and not the GPU one.
    installed = dependencies.installed_onnxruntime_packages()
    assert CPU_PACKAGE in installed and GPU_PACKAGE not in installed


@pytest.mark.parametrize("installed,wanted,uninstall,install", [
    ([], CPU_PACKAGE, [], CPU_PACKAGE),
    ([CPU_PACKAGE], CPU_PACKAGE, [], None),
    ([CPU_PACKAGE], GPU_PACKAGE, [CPU_PACKAGE], GPU_PACKAGE),
    ([CPU_PACKAGE, GPU_PACKAGE], GPU_PACKAGE, [CPU_PACKAGE], None),
    (["onnxruntime-directml"], CPU_PACKAGE, ["onnxruntime-directml"], CPU_PACKAGE),
])
def test_plan_keeps_exactly_one_build(installed, wanted, uninstall, install):
    plan = plan_install(installed, wanted)
    assert plan.uninstall == uninstall and plan.install == install


def test_ensure_asks_then_uninstalls_before_installing(monkeypatch):
    calls = []
    monkeypatch.setattr(dependencies, "installed_onnxruntime_packages", lambda: [CPU_PACKAGE])
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    questions = []
    plan = ensure_onnxruntime(lambda text: questions.append(text) or True,
                              lambda name: calls.append(("install", name)),
                              lambda name: calls.append(("uninstall", name)), gpu=True)
    if GPU_PACKAGE == choose_onnxruntime_package(True):
        assert calls == [("uninstall", CPU_PACKAGE), ("install", GPU_PACKAGE)]
        assert "NVIDIA GPU was found" in questions[0] and plan.needed
    else:  # macOS: the CPU build is already there
        assert calls == [] and not plan.needed


def test_nothing_asked_when_already_right(monkeypatch):
    monkeypatch.setattr(dependencies, "installed_onnxruntime_packages", lambda: [CPU_PACKAGE])
    plan = ensure_onnxruntime(lambda text: pytest.fail("asked"), pytest.fail, pytest.fail, gpu=False)
    assert not plan.needed


def test_declining_or_a_loaded_build_stops_with_a_reason(monkeypatch):
    monkeypatch.setattr(dependencies, "installed_onnxruntime_packages", lambda: [])
    with pytest.raises(RuntimeError, match="declined"):
        ensure_onnxruntime(lambda text: False, pytest.fail, pytest.fail, gpu=False)
    monkeypatch.setattr(dependencies, "installed_onnxruntime_packages", lambda: [GPU_PACKAGE])
    monkeypatch.setitem(sys.modules, "onnxruntime", object())
    with pytest.raises(RuntimeError, match="restart Slicer"):
        ensure_onnxruntime(lambda text: True, pytest.fail, pytest.fail, gpu=False)


def test_no_nvidia_smi_means_no_gpu(monkeypatch):
    monkeypatch.setattr(dependencies.shutil, "which", lambda name: None)
    assert dependencies.has_nvidia_gpu() is False
