"""The module's Logic path headless: volume node in, coded segmentation node out, real onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
pytest.importorskip("InnerEarSegmentationLib.pipeline")

from conftest import blob_scan  # noqa: E402
from mrml_scene import make_scene, oblique_direction, segment_mask  # noqa: E402

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


def _simple_ct_of_real_anatomy(field_mm: float = 16.0, spacing_mm: float = 0.3):
    """A plain CT of a real temporal bone (Training/data/real-anatomy, RT147): one HU value per
    tissue, a denser otic capsule, a Gaussian blur, resampled onto a 0.3 mm grid around the
    labyrinth; with its true structures on the same grid. Neither training's renderer nor the
    test renderer: the fewest assumptions that still make a CT. RT147 is one of the shipped
    model's training specimens: this checks that the model runs and finds a labyrinth through the
    Slicer path, not how well it generalises (Training/RESULTS.md does that)."""
    import SimpleITK as sitk
    from scipy import ndimage

    anatomy = sitk.ReadImage(str(Path(__file__).resolve().parents[1] / "Training" / "data" / "real-anatomy"
                                 / "RT147_anatomy.nrrd"))
    labels = sitk.GetArrayFromImage(anatomy)
    hu = np.full(20, 1200.0, dtype=np.float32)  # bone and ossicles
    hu[[0, 16]] = -1000.0                        # air
    hu[[6, 14, 17, 18, 19]] = 10.0               # CSF and perilymph
    hu[[7, 8, 9, 10, 11, 12, 13, 15]] = 45.0     # nerves, vessels, dura, joint
    image = hu[labels]
    near = ndimage.distance_transform_edt(labels < 17, sampling=anatomy.GetSpacing()[::-1]) < 1.5
    image[near & (labels == 1)] = 2000.0
    image = ndimage.gaussian_filter(image, 1.2)
    ct = sitk.GetImageFromArray(image)
    ct.CopyInformation(anatomy)
    size = int(round(field_mm / spacing_mm))
    grid = sitk.Image([size] * 3, sitk.sitkInt16)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin([-(size - 1) * spacing_mm / 2] * 3)  # the labyrinth's centroid is at 0
    scan = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkInt16)
    structures = np.where(labels >= 17, labels - 16, 0).astype(np.uint8)
    truth_image = sitk.GetImageFromArray(structures)
    truth_image.CopyInformation(anatomy)
    truth = sitk.GetArrayFromImage(sitk.Resample(truth_image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    return scan, truth


def test_shipped_model_finds_the_labyrinth_of_a_real_temporal_bone(headless):
    assert (default_model_folder() / "manifest.json").is_file(), "the shipped model is missing"
    scan, truth = _simple_ct_of_real_anatomy()
    volume = volume_node_from_sitk(scan, headless.scene, "Temporal bone CT")
    node = segment_volume_node(volume, device="cpu", show3d=True)
    found = {name: segment_mask(headless, node, f"Right {name}", volume)  # RT147 is a right ear
             for name in ("cochlea", "vestibule", "semicircular canals")}
    labyrinth = np.logical_or.reduce(list(found.values()))
    assert _dice(labyrinth, truth > 0) > 0.6
    assert _dice(found["cochlea"], truth == 1) > 0.5


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)
