"""The module's Logic path headless: volume node in, coded segmentation node out, real onnxruntime."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
pytest.importorskip("InnerEarSegmentationLib.pipeline")

from conftest import blob_scan  # noqa: E402
from mrml_scene import make_scene, oblique_direction  # noqa: E402

from InnerEarSegmentationLib import terminology  # noqa: E402
from InnerEarSegmentationLib.errors import Cancelled, OutputError  # noqa: E402
from InnerEarSegmentationLib.model import default_model_folder  # noqa: E402
from InnerEarSegmentationLib.mrml_output import report_of, segment_terminology  # noqa: E402
from InnerEarSegmentationLib.mrml_segment import segment_volume_node  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402
from InnerEarSegmentationLib.progress import Progress  # noqa: E402


@pytest.fixture
def headless():
    return make_scene()


def _segmentation_nodes(scene) -> int:
    return scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")


def test_tiny_model_end_to_end_on_an_oblique_volume(headless, tiny_model):
    volume = volume_node_from_sitk(blob_scan(direction=oblique_direction()), headless.scene, "CT")
    messages = []
    node = segment_volume_node(volume, model=tiny_model, device="cpu", smoothing=0.2,
                               progress=lambda fraction, message: messages.append(fraction))
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Cochlea", "Vestibule", "Semicircular canals"]
    cochlea = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Cochlea"))
    assert segment_terminology(cochlea) == terminology.terminology_entry("Cochlea")
    assert segmentation.ContainsRepresentation("Closed surface")
    report = report_of(node)
    assert report["provider"] and report["model"]["id"] == "tiny-test-model"
    assert report["segments"][0]["volume_mm3"] > 0
    assert messages and messages[-1] == 1.0


def test_existing_segments_refused_before_any_inference(headless, tiny_model):
    volume = volume_node_from_sitk(blob_scan(), headless.scene, "CT")
    node = segment_volume_node(volume, model=tiny_model, device="cpu", show3d=False)
    with pytest.raises(OutputError, match="already has 3 segment"):
        segment_volume_node(volume, node, model="/nonexistent/model/never/loaded")
    again = segment_volume_node(volume, node, model=tiny_model, device="cpu", replace=True, show3d=False)
    assert again is node and _segmentation_nodes(headless.scene) == 1


def test_cancel_leaves_the_scene_untouched(headless, tiny_model):
    volume = volume_node_from_sitk(blob_scan(), headless.scene, "CT")
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        segment_volume_node(volume, model=tiny_model, device="cpu", progress=progress)
    assert _segmentation_nodes(headless.scene) == 0


def test_shipped_model_finds_the_labyrinth_in_a_phantom(headless):
    import SimpleITK as sitk

    from InnerEarSegmentationLib.phantom import make_phantom

    assert (default_model_folder() / "manifest.json").is_file(), "the shipped model is missing"
    phantom = make_phantom(seed=7, spacing_mm=0.5, fov_mm=20.0)
    volume = volume_node_from_sitk(phantom.image(), headless.scene, "Phantom CT")
    node = segment_volume_node(volume, device="cpu", show3d=True)
    volumes = {s["name"]: s["volume_mm3"] for s in report_of(node)["segments"]}
    truth = sitk.GetArrayFromImage(phantom.labels())
    voxel = 0.5 ** 3
    for value, name in ((1, "Cochlea"), (2, "Vestibule"), (3, "Semicircular canals")):
        assert volumes[name] == pytest.approx((truth == value).sum() * voxel, rel=0.25), (name, volumes)
