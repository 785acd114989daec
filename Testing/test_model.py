"""Model manifests: loading, checksum refusal, inconsistent manifests."""

from __future__ import annotations

import json
import shutil

import pytest

from InnerEarSegmentationLib.errors import ModelError
from InnerEarSegmentationLib.model import Stage, available_models, default_model_folder, load_model, save_manifest


def copy_model(tiny_model, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_model, target)
    return target


def test_loads_a_valid_model(tiny_model):
    model = load_model(tiny_model)
    assert model.id == "tiny-test-model"
    assert [s.view for s in model.stages] == ["coronal", "sagittal", "axial"]
    assert model.stages[2].channels == ("image", "stage2", "stage1")
    assert [label.name for label in model.labels] == ["Cochlea", "Vestibule", "Semicircular canals"]


def test_refuses_a_file_whose_sha256_differs(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    with open(folder / "stage2.onnx", "ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ModelError, match=r"stage2\.onnx does not match its manifest"):
        load_model(folder)


def test_refuses_a_missing_stage_file(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    (folder / "stage3.onnx").unlink()
    with pytest.raises(ModelError, match="stage3.onnx for stage stage3 is missing"):
        load_model(folder)


def test_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(ModelError, match="No model manifest"):
        load_model(tmp_path)


def test_refuses_garbled_json(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    (folder / "manifest.json").write_text("{ not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(folder)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stages"][1].update(channels=["image", "stage9"]), "no\\s+earlier stage produces"),
    (lambda d: d["stages"][0].update(view="oblique"), "view 'oblique'"),
    (lambda d: d.update(grid_size=100), "multiple of 8"),
    (lambda d: d.pop("labels"), "lacks or garbles the field 'labels'"),
    (lambda d: d.update(normalisation={"method": "minmax"}), "unknown normalisation"),
])
def test_refuses_inconsistent_manifests(tiny_model, tmp_path, change, message):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message):
        load_model(folder)


def test_save_manifest_fills_checksums(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    for stage in data["stages"]:
        stage["sha256"] = "0" * 64
    save_manifest(folder, data)
    assert load_model(folder).stages[0].sha256 != "0" * 64


def test_optional_manifest_fields_take_their_documented_defaults(tiny_model, tmp_path):
    """A manifest with only the required fields: threshold 0.5, full-scale stages, no minimum
    extent, no mirror average, no box, no locator; checksums are compared in lower case."""
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    for key in ("description", "threshold"):
        data.pop(key)
    for stage in data["stages"]:
        stage["sha256"] = stage["sha256"].upper()
    (folder / "manifest.json").write_text(json.dumps(data))
    model = load_model(folder)
    assert (model.threshold, model.min_extent_mm, model.mirror_average, model.roi_extent_mm) == (0.5, 0.0, False, 0.0)
    assert model.description == "" and model.locator is None and model.name == "tiny-test-model 0.0.1"
    assert [stage.scale for stage in model.stages] == [1.0, 1.0, 1.0]
    assert model.stages[0].sha256 == data["stages"][0]["sha256"].lower()
    assert model.stage_path(model.stages[1]) == folder / "stage2.onnx"


def test_a_locator_entry_takes_its_defaults_and_its_own_checksum(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    shutil.copy(folder / "stage1.onnx", folder / "finder.onnx")
    data = json.loads((folder / "manifest.json").read_text())
    data.update(roi_extent_mm=20.0, locator={"file": "finder.onnx", "grid_size": 32})
    save_manifest(folder, data)
    locator = load_model(folder).locator
    assert (locator.file, locator.view, locator.grid_size, locator.min_extent_mm, locator.threshold) == (
        "finder.onnx", "coronal", 32, 0.0, 0.5)
    assert locator.as_stage() == Stage("locator", "finder.onnx", "coronal", ("image",), locator.sha256)
    with open(folder / "finder.onnx", "ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ModelError, match=r"finder\.onnx does not match its manifest"):
        load_model(folder)
    assert load_model(folder, verify=False).locator.file == "finder.onnx"  # verify=False reads only


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stages"][1].update(scale=0.3), "scale 0.3; supported"),
    (lambda d: d.update(grid_size=8), "grid of 8"),
    (lambda d: d.update(roi_extent_mm=1.0), "a 1 mm box around the labyrinth but names no locator"),
    (lambda d: d.update(stages=[]), "lists no stages"),
    (lambda d: d["labels"][2].update(value=4), r"numbered 1\.\.3; got \[1, 2, 4\]"),
    (lambda d: d.update(roi_extent_mm=20.0, locator={"file": "stage1.onnx", "grid_size": 36, "sha256": "0"}),
     "multiple of 8"),
    (lambda d: d.update(roi_extent_mm=20.0, locator={"file": "stage1.onnx", "grid_size": 32, "view": "oblique",
                                                     "sha256": "0"}), "multiple of 8 and a view"),
])
def test_refuses_more_inconsistent_manifests(tiny_model, tmp_path, change, message):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message) as raised:
        load_model(folder, verify=False)
    assert str(folder / "manifest.json") in str(raised.value)  # the refusal says which manifest


def test_every_supported_scale_the_smallest_grid_and_a_manifest_path_load(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    for stage, scale in zip(data["stages"], (0.25, 0.5, 1.0)):
        stage["scale"] = scale
    data["grid_size"] = 16
    save_manifest(folder, data)
    model = load_model(folder / "manifest.json")
    assert [stage.scale for stage in model.stages] == [0.25, 0.5, 1.0] and model.folder == folder
    assert model.grid_size == 16


def test_every_optional_manifest_field_that_is_given_is_read(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    shutil.copy(folder / "stage1.onnx", folder / "finder.onnx")
    data = json.loads((folder / "manifest.json").read_text())
    data.update(threshold=0.4, grid_min_extent_mm=30.0, mirror_average=True, roi_extent_mm=20.0,
                locator={"file": "finder.onnx", "view": "axial", "grid_size": 48, "grid_min_extent_mm": 50.0,
                         "threshold": 0.3})
    save_manifest(folder, data)
    model = load_model(folder)
    assert (model.threshold, model.min_extent_mm, model.mirror_average, model.roi_extent_mm) == (0.4, 30.0, True, 20.0)
    locator = model.locator
    assert (locator.view, locator.grid_size, locator.min_extent_mm, locator.threshold) == ("axial", 48, 50.0, 0.3)
    assert model.raw == json.loads((folder / "manifest.json").read_text())  # kept whole for the export


def test_no_location_means_the_shipped_model():
    model = load_model(verify=False)
    assert model.folder == default_model_folder() and model.stages


def test_save_manifest_refuses_what_it_cannot_load_back(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["stages"][0]["view"] = "oblique"
    with pytest.raises(ModelError, match="view 'oblique'"):
        save_manifest(folder, data)


def test_a_manifest_in_utf8_loads_whatever_the_locale(tiny_model, tmp_path):
    """A hand-edited manifest holds UTF-8 text; Python's default encoding follows the locale
    (cp1252 on many Windows machines, ASCII in a bare C locale), so it must be read as UTF-8."""
    import os
    import subprocess
    import sys

    import InnerEarSegmentationLib

    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["description"] = "Oreille interne – modèle d'essai"
    (folder / "manifest.json").write_bytes(json.dumps(data, ensure_ascii=False).encode("utf-8"))
    library = os.path.dirname(os.path.dirname(InnerEarSegmentationLib.__file__))
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0", PYTHONIOENCODING="utf-8",
               PYTHONPATH=os.pathsep.join([library, os.environ.get("PYTHONPATH", "")]))
    code = ("import locale, sys; from InnerEarSegmentationLib.model import load_model; "
            "print(locale.getpreferredencoding(False)); print(load_model(sys.argv[1]).description)")
    run = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    encoding, description = run.stdout.decode("utf-8").splitlines()
    assert encoding.lower().replace("-", "") != "utf8"  # the test really runs in a non-UTF-8 locale
    assert description == "Oreille interne – modèle d'essai"


def test_save_manifest_writes_indented_utf8_json_with_a_final_newline(tiny_model, tmp_path):
    folder = copy_model(tiny_model, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["description"] = "Oreille interne – modèle d'essai"
    path = save_manifest(folder, data)
    text = path.read_bytes().decode("utf-8")
    assert path == folder / "manifest.json" and text.endswith("}\n") and '\n  "id": ' in text
    assert load_model(folder).description == "Oreille interne – modèle d'essai"


def test_available_models_lists_the_shipped_model_and_those_in_extra_folders(tiny_model, tmp_path):
    copy_model(tiny_model, tmp_path)
    (tmp_path / "not-a-model").mkdir()
    found = available_models([tmp_path, tmp_path / "missing"])
    assert default_model_folder() in found and (tmp_path / "model") in found
    assert default_model_folder().name == "innerear-anatomy" and len(found) == len(set(found))
    assert default_model_folder() in available_models()
