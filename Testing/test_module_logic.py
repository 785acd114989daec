"""The module's Logic class, run headless: Slicer's GUI-only modules are replaced by minimal stand-ins.

Only qt, ScriptedLoadableModule, parameterNodeWrapper and slicer.i18n are faked (they need the
Slicer application); the scene, the segmentation node and the inference (in a real child process)
are real, so the console API ``segment(...)`` is exercised as written.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import types

import pytest

slicer = pytest.importorskip("slicer")
pytest.importorskip("InnerEarSegmentationLib.pipeline")

from conftest import ROOT, blob_scan  # noqa: E402
from mrml_scene import make_scene  # noqa: E402

from InnerEarSegmentationLib.errors import OutputError  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402


@pytest.fixture
def module(monkeypatch):
    """Imports InnerEarSegmentation.py with stand-ins for the parts that need the Slicer GUI."""
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleTest"):
        setattr(scripted, name, type(name, (), {"__init__": lambda self, *args: None}))
    scripted.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (),
                                                {"__init__": lambda self: None})
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = wrapper.WithinRange = lambda *args: None
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", scripted)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
    monkeypatch.setitem(sys.modules, "qt", types.ModuleType("qt"))
    monkeypatch.syspath_prepend(str(ROOT / "InnerEarSegmentation"))
    monkeypatch.delitem(sys.modules, "InnerEarSegmentation", raising=False)
    imported = importlib.import_module("InnerEarSegmentation")
    monkeypatch.setitem(sys.modules, "InnerEarSegmentation", imported)  # forgotten after the test
    return imported


def test_console_api_segments_and_refuses_to_overwrite(module, tiny_model):
    headless = make_scene()
    volume = volume_node_from_sitk(blob_scan(), headless.scene, "CT")
    logic = module.InnerEarSegmentationLogic()
    assert logic.ensureDependencies(ask=lambda text: pytest.fail(f"asked: {text}"))  # already installed
    node = logic.segment(volume, model=str(tiny_model), device="cpu", show3D=False)
    assert node.IsA("vtkMRMLSegmentationNode") and node.GetSegmentation().GetNumberOfSegments() == 3
    with pytest.raises(OutputError):
        logic.segment(volume, node)
    assert logic.segment(volume, node, model=str(tiny_model), replace=True, show3D=False) is node


def test_model_list_starts_with_the_shipped_model_then_the_cache(module, monkeypatch, tmp_path, tiny_model):
    """The list must never be empty (the shipped model is always there) and must show what the
    user imported into the cache."""
    from InnerEarSegmentationLib.model_store import CACHE_ENV, models_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    imported = models_dir() / "tiny"
    shutil.copytree(tiny_model, imported)
    models = module.InnerEarSegmentationLogic().availableModels()
    assert len(models) == 2
    assert models[0][1] == "" and "shipped" in models[0][0]
    assert models[1] == ("tiny-test-model 0.0.1", str(imported))


def test_the_logic_segments_in_a_child_process(module, tiny_model, monkeypatch):
    """Inside Slicer a worker thread starves (PythonSlicer keeps the GIL while the GUI idles), so
    the Logic must hand the inference to another process: here no onnxruntime session may open in
    this one."""
    import InnerEarSegmentationLib.inference as inference

    monkeypatch.setattr(inference, "open_session", lambda *args: pytest.fail("inference ran in-process"))
    headless = make_scene()
    volume = volume_node_from_sitk(blob_scan(), headless.scene, "CT")
    node = module.InnerEarSegmentationLogic().segment(volume, model=str(tiny_model), device="cpu", show3D=False)
    assert node.GetSegmentation().GetNumberOfSegments() == 3
