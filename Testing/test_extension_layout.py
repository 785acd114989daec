"""The Slicer extension's files agree with each other (checked without Slicer, by reading them)."""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "InnerEarSegmentation"
MODULE_SCRIPT = MODULE / "InnerEarSegmentation.py"
UI = MODULE / "Resources" / "UI" / "InnerEarSegmentation.ui"


def _cmake_list(name: str) -> list[str]:
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    body = re.search(rf"set\({name}\n(.*?)\n  \)", text, re.S).group(1)
    return [line.strip().replace("${MODULE_NAME}", "InnerEarSegmentation") for line in body.splitlines()]


def test_every_library_script_is_listed_and_exists():
    listed = set(_cmake_list("MODULE_PYTHON_SCRIPTS"))
    on_disk = {f"InnerEarSegmentationLib/{p.name}" for p in (MODULE / "InnerEarSegmentationLib").glob("*.py")}
    assert on_disk - listed == set(), "add these to MODULE_PYTHON_SCRIPTS"
    assert [s for s in listed if not (MODULE / s).is_file()] == []


def test_resources_exist():
    missing = [r for r in _cmake_list("MODULE_PYTHON_RESOURCES") if not (MODULE / r).is_file()]
    if (MODULE / "InnerEarSegmentationLib" / "models" / "innerear-anatomy").is_dir():
        assert missing == []
    else:
        assert [m for m in missing if "/models/" not in m] == []
        pytest.skip("the shipped model is not built yet; its files are listed but absent")


def test_top_level_cmake_and_index_entries():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert f"set(EXTENSION_{key} " in cmake
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(InnerEarSegmentation)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in cmake
    for url in re.findall(r"raw\.githubusercontent\.com/[^/]+/[^/]+/main/([^\"\s]+)", cmake):
        assert (ROOT / url).is_file(), url
    entry = json.loads((ROOT / "InnerEarSegmentation.json").read_text(encoding="utf-8"))
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert set(entry) <= allowed and {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["category"] == "Segmentation" and entry["scm_url"] in cmake
    s4ext = dict(line.split(" ", 1) for line in (ROOT / "InnerEarSegmentation.s4ext").read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith("#") and " " in line)
    assert s4ext["category"] == "Segmentation" and s4ext["scmurl"] == entry["scm_url"]


def test_icons_are_128_pixel_pngs():
    for path in (ROOT / "Resources" / "InnerEarSegmentation.png", MODULE / "Resources" / "Icons" / "InnerEarSegmentation.png"):
        image = sitk.ReadImage(str(path))
        assert image.GetSize()[:2] == (128, 128) and image.GetNumberOfComponentsPerPixel() == 4


def _module_tree() -> ast.Module:
    return ast.parse(MODULE_SCRIPT.read_text(encoding="utf-8"))


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def test_ui_names_and_parameter_bindings_match_the_code():
    widgets = {w.get("name"): w for w in ET.parse(UI).iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_SCRIPT.read_text(encoding="utf-8")))
    assert used - set(widgets) == set(), "widgets used in code but absent from the .ui"
    bound = {}
    for name, widget in widgets.items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = name
    fields = {node.target.id for node in _class(_module_tree(), "InnerEarSegmentationParameterNode").body
              if isinstance(node, ast.AnnAssign)}
    assert set(bound) <= fields
    assert fields - set(bound) == {"model"}  # the model list is filled by code, not bound


def test_logic_segment_signature_is_the_documented_one():
    segment = next(node for node in _class(_module_tree(), "InnerEarSegmentationLogic").body
                   if isinstance(node, ast.FunctionDef) and node.name == "segment")
    names = [a.arg for a in segment.args.args]
    assert names == ["self", "volumeNode", "segmentationNode", "model", "device", "replace", "smoothing",
                     "keepLargestComponent", "show3D", "progress", "side"]
    defaults = [ast.literal_eval(d) for d in segment.args.defaults]
    assert defaults == [None, None, "auto", False, 0.5, True, True, None, "both"]


def test_no_removed_python_modules():
    for path in [MODULE_SCRIPT, *(MODULE / "InnerEarSegmentationLib").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"imp", "distutils", "asynchat", "asyncore"}, path.name


def test_user_visible_strings_are_translatable():
    """Text put on the panel, in dialogs and in menus goes through _() (Slicer's tr), as in
    Slicer's own modules, so translators can reach it."""
    shown = {"errorDisplay", "confirmOkCancelDisplay", "addAction", "getExistingDirectory", "getOpenFileName",
             "getText", "tryWithErrorDisplay"}
    bare = []
    for node in ast.walk(_module_tree()):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in shown:
            bare += [ast.unparse(a) for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value]
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr in ("text", "toolTip", "title")
                                                for t in node.targets):
            if isinstance(node.value, ast.JoinedStr) or (isinstance(node.value, ast.Constant) and node.value.value):
                bare.append(ast.unparse(node.value))
    assert bare == []



def test_the_self_test_does_not_consent_to_installs_for_the_user():
    """Installing packages into someone's Slicer is their decision, also when a self-test runs."""
    for node in ast.walk(_class(_module_tree(), "InnerEarSegmentationTest")):
        if isinstance(node, ast.keyword) and node.arg == "ask":
            assert not (isinstance(node.value, ast.Lambda) and isinstance(node.value.body, ast.Constant)
                        and node.value.body.value is True), ast.unparse(node)
