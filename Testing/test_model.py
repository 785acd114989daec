"""Model manifests: loading, checksum refusal, inconsistent manifests."""

from __future__ import annotations

import json
import shutil

import pytest

from InnerEarSegmentationLib.errors import ModelError
from InnerEarSegmentationLib.model import load_model, save_manifest


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
