"""The independent test renderer (Training/innerear_testrender): geometry, units, tissue order,
truth placement, determinism, the sub-voxel HD95 and the LOSO command end to end. Runs on a small
synthetic anatomy made here, so it needs none of the real specimen files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Training"))

from innerear_testrender.anatomy import COCHLEA, STRUCTURES, VESTIBULE, from_image  # noqa: E402
from innerear_testrender.render import render  # noqa: E402
from innerear_testrender.surface_distance import surface_distances  # noqa: E402
from InnerEarSegmentationLib.metrics import compute_metrics  # noqa: E402

DIRECTION = (-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)  # array axes are not LPS axes


def synthetic_anatomy_image() -> sitk.Image:
    """A 14 mm block of bone with air cells, a soft-tissue blob, a cochlea ball, a vestibule
    ball and a canal ring, on a grid whose axes are flipped and swapped relative to LPS."""
    n = 70
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    labels = np.ones((n, n, n), dtype=np.uint8)
    labels[:10] = 0  # air
    labels[(z - 55) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 < 8 ** 2] = 13  # dura
    labels[(z - 30) ** 2 + (y - 25) ** 2 + (x - 25) ** 2 < 8 ** 2] = COCHLEA
    labels[(z - 34) ** 2 + (y - 38) ** 2 + (x - 40) ** 2 < 6 ** 2] = VESTIBULE
    ring = (np.hypot(y - 45, x - 52) - 10) ** 2 + (z - 36) ** 2 < 2.5 ** 2
    labels[ring & (labels == 1)] = STRUCTURES[3]
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.2, 0.2, 0.2))
    image.SetDirection(DIRECTION)
    image.SetOrigin((31.0, -12.0, 45.0))
    return image


@pytest.fixture(scope="module")
def anatomy():
    return from_image(synthetic_anatomy_image(), "SYN")


def physical_centroid(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    index = np.argwhere(mask).mean(axis=0)[::-1]
    return np.array(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def anatomy_labels_on(scan, anatomy) -> np.ndarray:
    """The source labels sampled (nearest) at the scan's voxel centres, through the pose."""
    source = sitk.GetImageFromArray(anatomy.labels)
    source.CopyInformation(synthetic_anatomy_image())
    return sitk.GetArrayFromImage(sitk.Resample(source, scan.image, scan.placement.sitk_transform(),
                                                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))


@pytest.mark.parametrize("protocol", ["microct", "clinical", "cbct"])
def test_protocol_spacing_units_and_orientation(anatomy, protocol):
    scan = render(anatomy, protocol, 3, fov_mm=10)
    spacing = np.array(scan.image.GetSpacing())
    direction = np.array(scan.image.GetDirection()).reshape(3, 3)
    array = sitk.GetArrayFromImage(scan.image)
    assert np.allclose(direction @ direction.T, np.eye(3), atol=1e-6) and np.linalg.det(direction) > 0
    assert scan.truth.GetSize() == scan.image.GetSize()
    assert np.allclose(scan.truth.GetDirection(), scan.image.GetDirection())
    if protocol == "microct":
        assert array.dtype == np.uint16 and 0.1 <= spacing[0] <= 0.2 and np.allclose(spacing, spacing[0])
    elif protocol == "clinical":
        assert array.dtype == np.int16 and 0.3 <= spacing[0] <= 0.5 and spacing[0] == spacing[1]
        assert spacing[0] <= spacing[2] <= 2 * spacing[0]
        assert array.min() >= -1024 and array.max() <= 3071 and array.min() < -900  # HU: air
    else:
        assert array.dtype == np.int16 and 0.2 <= spacing[0] <= 0.35 and np.allclose(spacing, spacing[0])


@pytest.mark.parametrize("protocol,mirror", [("microct", False), ("clinical", True), ("cbct", False)])
def test_truth_lands_where_the_anatomy_is(anatomy, protocol, mirror):
    # Any pose: the truth's physical centroid is the source's moved by the pose, within a voxel.
    seed = next(s for s in range(50) if protocol == "microct" or
                not np.allclose(render(anatomy, protocol, s, fov_mm=8).image.GetDirection(), np.eye(3).ravel()))
    scan = render(anatomy, protocol, seed, fov_mm=14, mirror=mirror)
    truth = sitk.GetArrayFromImage(scan.truth)
    for value, label in STRUCTURES.items():
        expected = scan.placement.to_scanner(anatomy.centroid([label])[None])[0]
        found = physical_centroid(scan.image, truth == value)
        assert np.linalg.norm(found - expected) < max(scan.image.GetSpacing()), (value, found, expected)
    assert np.isclose(np.linalg.det(scan.placement.matrix), -1.0 if mirror else 1.0)
    # And the image shows fluid where the truth is and dense bone around it.
    image = sitk.GetArrayFromImage(scan.image).astype(float)
    inside = ndimage.binary_erosion(truth == 1)
    shell = ndimage.binary_dilation(truth == 1, iterations=2) & ~ndimage.binary_dilation(truth > 0)
    assert np.median(image[inside]) < np.median(image[shell]) - 300


def test_unrotated_and_mirrored_geometry_without_the_pose_code(anatomy):
    """Checked against the anatomy's own centroids, not the renderer's transform."""
    still = render(anatomy, "cbct", 5, fov_mm=14, rotation="none")
    cochlea = anatomy.centroid([COCHLEA])
    assert np.allclose(still.image.GetDirection(), np.eye(3).ravel())
    found = physical_centroid(still.image, sitk.GetArrayFromImage(still.truth) == 1)
    assert np.linalg.norm(found - cochlea) < still.image.GetSpacing()[0]
    mirrored = render(anatomy, "cbct", 5, fov_mm=14, rotation="none", mirror=True)
    centre = anatomy.centroid(list(STRUCTURES.values()))
    found = physical_centroid(mirrored.image, sitk.GetArrayFromImage(mirrored.truth) == 1)
    expected = cochlea * [-1, 1, 1] + [2 * centre[0], 0, 0]  # L-R flipped about the labyrinth
    assert abs(cochlea[0] - expected[0]) > 1.0  # the test would notice a missing flip
    assert np.linalg.norm(found - expected) < mirrored.image.GetSpacing()[0]


@pytest.mark.parametrize("protocol", ["microct", "clinical", "cbct"])
def test_tissue_order_air_fluid_bone_and_dense_capsule(anatomy, protocol):
    scan = render(anatomy, protocol, 11, fov_mm=14, rotation="none")
    image = sitk.GetArrayFromImage(scan.image).astype(float)
    source = anatomy_labels_on(scan, anatomy)
    air, bone = (np.median(image[source == v]) for v in (0, 1))
    # The core of the cochlea ball (1.6 mm radius), away from its partial-volumed wall.
    core = ndimage.binary_erosion(source == COCHLEA, iterations=int(np.ceil(0.7 / max(scan.image.GetSpacing()))))
    fluid = np.median(image[core])
    assert air < fluid < bone
    if protocol == "clinical":
        assert air < -900 and -100 < fluid < 150 and bone > 900  # HU
    capsule = sitk.GetImageFromArray(anatomy.capsule)
    capsule.CopyInformation(synthetic_anatomy_image())
    weight = sitk.GetArrayFromImage(sitk.Resample(capsule, scan.image, scan.placement.sitk_transform(),
                                                  sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    near = (source == 1) & (weight > 0.5)
    far = (source == 1) & (weight < 0.02)
    assert np.mean(image[near]) > np.mean(image[far])  # otic capsule denser than other bone


def test_same_seed_same_scan_other_seed_other_scan(anatomy):
    one, two = render(anatomy, "cbct", 21, fov_mm=9), render(anatomy, "cbct", 21, fov_mm=9)
    other = render(anatomy, "cbct", 22, fov_mm=9)
    assert np.array_equal(sitk.GetArrayFromImage(one.image), sitk.GetArrayFromImage(two.image))
    assert np.array_equal(sitk.GetArrayFromImage(one.truth), sitk.GetArrayFromImage(two.truth))
    assert one.image.GetOrigin() == two.image.GetOrigin()
    assert (other.image.GetSize() != one.image.GetSize()
            or not np.array_equal(sitk.GetArrayFromImage(one.image), sitk.GetArrayFromImage(other.image)))


def test_tight_crop_is_a_small_cube_on_the_cochlea(anatomy):
    scan = render(anatomy, "microct", 4, fov="tight")
    extent = np.array(scan.image.GetSize()) * np.array(scan.image.GetSpacing())
    assert np.all((extent > 8.5) & (extent < 12.5)) and np.ptp(extent) < 0.3
    cochlea = scan.placement.to_scanner(anatomy.centroid([COCHLEA])[None])[0]
    index = np.array(scan.image.TransformPhysicalPointToContinuousIndex(cochlea.tolist()))
    assert np.all(index > 0) and np.all(index < np.array(scan.image.GetSize()) - 1)


def sphere_fraction(n: int, centre, radius: float, sub: int = 4) -> np.ndarray:
    """Partial-volume fraction of a ball in each voxel (sub³ samples per voxel)."""
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    total = np.zeros((n, n, n), dtype=np.float32)
    for dz in offsets:
        for dy in offsets:
            for dx in offsets:
                total += (z + dz - centre[0]) ** 2 + (y + dy - centre[1]) ** 2 + (x + dx - centre[2]) ** 2 <= radius ** 2
    return total / sub ** 3


def test_subvoxel_hd95_measures_below_the_voxel_size():
    spacing = (0.5, 0.5, 0.5)
    centre = (20.2, 19.7, 20.1)
    small, large = sphere_fraction(40, centre, 8.0), sphere_fraction(40, centre, 8.6)  # 4.0 and 4.3 mm
    found = surface_distances(small, large, spacing)
    assert abs(found["hd95_mm"] - 0.3) < 0.08 and abs(found["msd_mm"] - 0.3) < 0.03
    # The voxel-centre HD95 cannot say 0.3 mm: it is a multiple of the 0.5 mm spacing.
    voxel = compute_metrics(small >= 0.5, large >= 0.5, spacing)["hd95_mm"]
    assert voxel in (0.0, 0.5)
    assert surface_distances(small, small, spacing)["hd95_mm"] < 1e-6
    assert surface_distances(small, np.zeros_like(small), spacing)["hd95_mm"] == float("inf")


def test_loso_command_end_to_end(tmp_path, tiny_model):
    from innerear_testrender import loso

    folder = tmp_path / "anatomy"
    folder.mkdir()
    sitk.WriteImage(synthetic_anatomy_image(), str(folder / "SYN_anatomy.nrrd"))
    out = tmp_path / "report.md"
    code = loso.main(["--model", str(tiny_model), "--specimens", "SYN", "--anatomy-folder", str(folder),
                      "--protocols", "cbct", "--orientations", "2", "--tight", "1", "--single-unet", "--fov-mm", "12",
                      "--out", str(out), "--save-cases", str(tmp_path / "cases"), "--pictures", str(tmp_path / "png")])
    text = out.read_text(encoding="utf-8")
    assert code == 0 and "| tiny (single U-Net) | 2 |" in text and "Tight cochlea crops" in text
    assert "python -m innerear_testrender.loso --model" in text
    assert len(list((tmp_path / "cases").glob("*-truth.nrrd"))) == 3
    pngs = list((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_methods_plan_and_paired_test():
    from innerear_testrender import loso
    from innerear_testrender.report import wilcoxon

    methods = loso.parse_methods("a,b", "RT143=x,LT143=x", True)
    assert [m.name for m in methods] == ["a", "b", "held-out fold model", "a (single U-Net)", "b (single U-Net)",
                                         "held-out fold model (single U-Net)"]
    assert methods[2].folder_for("LT143") == Path("x") and methods[5].last_stage == 1 and methods[0].last_stage is None
    with pytest.raises(KeyError):
        methods[2].folder_for("RT138")  # a fold model is never used on a specimen it was not made for
    plan = loso.scan_plan(1, ["microct", "clinical", "cbct"], 3, 1, 0, "crop", "alternate")
    assert len(plan) == 12 and len({p["seed"] for p in plan}) == 12
    assert sum(p["mirror"] for p in plan) == 6 and sum(p["fov"] == "tight" for p in plan) == 3
    assert wilcoxon([0.9] * 6, [0.9] * 6).startswith("n/a")  # saturated: no p-value
    assert wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95, 0.9], [0.8, 0.6, 0.55, 0.3, 0.45, 0.55]).startswith("0.031")
