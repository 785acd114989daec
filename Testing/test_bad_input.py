"""Bad input (issue #6): every wrong thing a user can feed the tool gets one clear line that names
the problem and what to do, never a traceback and never a half-written file.

Everything here is real: files written with SimpleITK or as raw bytes, DICOM series written by
GDCM, the real command line with the real (tiny) ONNX cascade, and a real full disk (the kernel's
file-size limit, in a child process).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import SimpleITK as sitk

from tiny_model import stage_graph
from InnerEarSegmentationLib.cli import main
from InnerEarSegmentationLib.errors import InputError, ModelError
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.scanio import read_scan, scan_warnings, validate_scan

AIR, BONE, FLUID = -1000, 1500, 20
LIB = Path(__file__).resolve().parent.parent / "InnerEarSegmentation"


# --- helpers -------------------------------------------------------------------------------------

def sphere_scan(size=(40, 40, 32), spacing=(0.4, 0.4, 0.5), offset_mm=(2.0, -1.0, 0.5), radius_mm=3.5,
                direction=None, values=(AIR, BONE, FLUID), dtype=np.int16):
    """Bone with a one-voxel air rim and a fluid sphere placed in physical space (so the truth
    holds for any spacing or direction); returns the image and the sphere mask [z, y, x]."""
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 30.0))
    if direction is not None:
        image.SetDirection(direction)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    matrix = np.array(image.GetDirection()).reshape(3, 3) * np.array(spacing)
    physical = index @ matrix.T + np.array(image.GetOrigin())
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in size]))
    inside = np.linalg.norm(physical - centre - np.array(offset_mm), axis=1) < radius_mm
    truth = inside.reshape(size).transpose(2, 1, 0)
    air, bone, fluid = values
    array = np.full(size[::-1], air, dtype=dtype)
    array[1:-1, 1:-1, 1:-1] = bone
    array[truth] = fluid
    scan = sitk.GetImageFromArray(array)
    scan.CopyInformation(image)
    return scan, truth


def write(image, path: Path, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), compress)
    return path


def run(capsys, *args, model=None):
    """The command line as a user runs it; returns exit code, stdout and stderr."""
    argv = [str(a) for a in args] + ["--quiet"] + (["--model", str(model)] if model else [])
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def dice(a, b) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def write_dicom_series(folder: Path, image: sitk.Image, series_uid: str, description: str,
                       skip: tuple[int, ...] = ()) -> None:
    """One real DICOM CT series (one file per slice) written by GDCM, with its own series UID."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                   direction[1], direction[4], direction[7]))
    for k in range(image.GetDepth()):
        if k in skip:
            continue
        piece = image[:, :, k]
        for tag, value in {
            "0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.1", "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{k + 1}", "0008|103e": description,
            "0020|0037": orientation, "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0018|0050": f"{image.GetSpacing()[2]:.4f}", "0028|1052": "0", "0028|1053": "1",
        }.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-6:]}-{k:03d}.dcm"))
        writer.Execute(piece)


# --- what the scan is ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["slice.png", "slice.nrrd"])
def test_a_2d_image_is_refused_as_not_a_volume(tiny_model, tmp_path, capsys, name):
    picture = sitk.GetImageFromArray((np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8))
    scan = write(picture, tmp_path / name)
    code, _, err = run(capsys, scan, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1
    assert f"{name} is a 2D image (80x64)" in err and "give the 3D CT volume" in err
    assert files_in(tmp_path / "out") == []


def test_a_time_series_is_refused_but_one_time_point_is_read(tiny_model, tmp_path, capsys):
    scan, truth = sphere_scan()
    volume = sitk.GetArrayFromImage(scan)
    series = write(sitk.GetImageFromArray(np.stack([volume] * 3), isVector=False), tmp_path / "cine.nrrd")
    code, _, err = run(capsys, series, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "is a 4D series of 3 volumes" in err and "Extract the one CT volume" in err

    single = sitk.GetImageFromArray(volume[np.newaxis], isVector=False)
    single.SetSpacing((0.4, 0.4, 0.5, 1.0))
    path = write(single, tmp_path / "one-phase.nrrd")
    image = read_scan(path)
    assert image.GetDimension() == 3 and image.GetSize() == (40, 40, 32)
    code, _, err = run(capsys, path, "-o", tmp_path / "out", "--labelmap", model=tiny_model)
    assert code == 0, err
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "one-phase-label.nrrd")))
    assert dice(labels > 0, truth) > 0.85


def test_an_rgb_volume_is_refused(tiny_model, tmp_path, capsys):
    rgb = sitk.GetImageFromArray(np.zeros((20, 24, 28, 3), dtype=np.uint8), isVector=True)
    code, _, err = run(capsys, write(rgb, tmp_path / "render.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "has 3 values per voxel" in err and "scalar CT volume" in err


def test_a_constant_volume_is_refused(tiny_model, tmp_path, capsys):
    empty = sitk.Image(40, 40, 32, sitk.sitkInt16)
    empty.SetSpacing((0.4, 0.4, 0.5))
    code, _, err = run(capsys, write(empty, tmp_path / "blank.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "is constant (every voxel is 0)" in err and "nothing to segment" in err


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_voxels_are_refused(tiny_model, tmp_path, capsys, bad):
    scan, _ = sphere_scan(dtype=np.float32)
    array = sitk.GetArrayFromImage(scan)
    array[30, 2, 5] = bad  # one voxel, in the last slab the check reads
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(scan)
    code, _, err = run(capsys, write(broken, tmp_path / "recon.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "contains NaN or infinite voxels" in err


def test_a_scan_of_a_few_millimetres_is_refused(tiny_model, tmp_path, capsys):
    scan, _ = sphere_scan(spacing=(0.1, 0.1, 0.1))  # 4 x 4 x 3.2 mm
    code, _, err = run(capsys, write(scan, tmp_path / "crumb.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "covers only 3.20 mm" in err and "is it in mm?" in err
    slab = sitk.GetImageFromArray(np.full((3, 40, 40), BONE, dtype=np.int16))
    code, _, err = run(capsys, write(slab, tmp_path / "slab.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "is only 40x40x3 voxels" in err


def test_extreme_anisotropy_is_refused_and_moderate_anisotropy_is_warned(tiny_model, tmp_path, capsys):
    thick, _ = sphere_scan(size=(160, 160, 8), spacing=(0.1, 0.1, 5.0))
    code, _, err = run(capsys, write(thick, tmp_path / "thick.nrrd"), "-o", tmp_path / "out", model=tiny_model)
    assert code == 1
    assert "0.1 x 0.1 x 5 mm, 50 times longer" in err and "Reconstruct thinner slices" in err
    assert files_in(tmp_path / "out") == []

    # A 16 mm cube of bone, no air rim: with 1 mm slices an air-bone edge would blur into the tiny
    # model's fluid band and outgrow the sphere.
    moderate, truth = sphere_scan(size=(64, 64, 16), spacing=(0.25, 0.25, 1.0), radius_mm=4.5,
                                  offset_mm=(1, 0, 0), values=(BONE, BONE, FLUID))
    path = write(moderate, tmp_path / "routine.nrrd")
    code, _, err = run(capsys, path, "-o", tmp_path / "out", "--report", "--labelmap", model=tiny_model)
    assert code == 0, err
    assert "warning: routine.nrrd: Anisotropic voxels (0.25 x 0.25 x 1 mm, 4.0:1)" in err
    report = json.loads((tmp_path / "out" / "routine.report.json").read_text())
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith("Anisotropic voxels")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "routine-label.nrrd")))
    assert dice(labels > 0, truth) > 0.8


def test_scan_warnings_cover_coarse_voxels_and_wide_fields_of_view():
    assert scan_warnings(sphere_scan(spacing=(0.3, 0.3, 0.3))[0]) == []
    coarse = scan_warnings(sphere_scan(spacing=(1.2, 1.2, 1.2))[0])
    assert len(coarse) == 1 and coarse[0].startswith("Coarse voxels (up to 1.2 mm)")
    head = sitk.Image(400, 400, 30, sitk.sitkInt16)
    head.SetSpacing((0.5, 0.5, 0.5))  # 200 mm: both ears
    wide = scan_warnings(head, grid_size=128)
    assert len(wide) == 1 and "200 mm wide" in wide[0] and "1.56 mm per voxel" in wide[0]
    assert "other one is left out" in wide[0]
    assert scan_warnings(head, grid_size=128, whole_field=False) == []  # a located model finds both ears


def test_an_oblique_scan_is_segmented_on_its_own_grid(tiny_model, tmp_path, capsys):
    axis = np.array([1.0, 2.0, 3.0]) / np.linalg.norm([1.0, 2.0, 3.0])
    angle = np.deg2rad(35)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    scan, truth = sphere_scan(direction=tuple(rotation.ravel()))
    path = write(scan, tmp_path / "oblique.nrrd")
    code, _, err = run(capsys, path, "-o", tmp_path / "out", "--labelmap", model=tiny_model)
    assert code == 0, err
    labels = sitk.ReadImage(str(tmp_path / "out" / "oblique-label.nrrd"))
    assert labels.GetSize() == scan.GetSize()
    assert labels.GetDirection() == pytest.approx(scan.GetDirection(), abs=1e-6)
    assert labels.GetOrigin() == pytest.approx(scan.GetOrigin(), abs=1e-6)
    assert labels.GetSpacing() == pytest.approx(scan.GetSpacing(), abs=1e-6)
    assert dice(sitk.GetArrayFromImage(labels) > 0, truth) > 0.85


def test_left_and_right_ears_give_mirrored_results(tiny_model):
    """A right ear is a left ear mirrored: the same voxels flipped along x (same geometry), or the
    same voxels with a left-handed direction. Either way the result must mirror too."""
    segmenter = Segmenter(load_model(tiny_model), SegmentationSettings(device="cpu"))
    left, truth = sphere_scan(offset_mm=(3.0, -1.0, 0.5))
    left_labels = sitk.GetArrayFromImage(segmenter.segment(left).labelmap)
    assert dice(left_labels > 0, truth) > 0.9

    right = sitk.GetImageFromArray(sitk.GetArrayFromImage(left)[:, :, ::-1].copy())
    right.CopyInformation(left)
    right_labels = sitk.GetArrayFromImage(segmenter.segment(right).labelmap)
    assert dice(right_labels > 0, truth[:, :, ::-1]) > 0.9
    agreement = dice(right_labels > 0, left_labels[:, :, ::-1] > 0)
    assert agreement > 0.98, f"mirrored result differs from the mirrored scan's ({agreement:.3f})"

    flipped = sitk.Image(left)
    direction = np.array(left.GetDirection()).reshape(3, 3) @ np.diag([-1.0, 1.0, 1.0])
    flipped.SetDirection(tuple(direction.ravel()))  # det -1: the physical mirror image
    flipped_result = segmenter.segment(flipped).labelmap
    assert flipped_result.GetDirection() == pytest.approx(tuple(direction.ravel()))
    assert dice(sitk.GetArrayFromImage(flipped_result) > 0, left_labels > 0) > 0.98


# --- the file ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, compress", [
    ("cut.nrrd", False), ("cut.nrrd", True), ("cut.nii", False), ("cut.nii.gz", True), ("cut.mha", False),
])
def test_a_truncated_file_is_refused(tiny_model, tmp_path, capsys, name, compress):
    scan, _ = sphere_scan()
    whole = write(scan, tmp_path / "whole" / name, compress)
    data = whole.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, cut, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1, "half a file must not be segmented as if it were whole"
    assert f"{name}" in err and ("truncated" in err or "ends early" in err)
    assert "again" in err  # says what to do
    assert files_in(tmp_path / "out") == []


@pytest.mark.parametrize("name, content, message", [
    ("noise.nrrd", bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)), "is not a valid .nrrd file"),
    ("notes.txt", b"patient 12: left ear, see CT", "is not a scan file (.txt"),
    ("report.pdf", b"%PDF-1.4\n%...", "is not a scan file (.pdf"),
    ("export.nii.gz", b"", "is empty (0 bytes)"),
])
def test_unreadable_or_non_scan_files_are_named(tiny_model, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = run(capsys, path, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and message in err


def test_a_header_without_its_voxel_file_names_the_missing_file(tiny_model, tmp_path, capsys):
    scan, _ = sphere_scan()
    header = write(scan, tmp_path / "ear.mhd")
    (tmp_path / "ear.raw").unlink()
    code, _, err = run(capsys, header, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "voxel data file ear.raw is missing" in err and "Copy ear.raw together with ear.mhd" in err


def test_own_results_are_not_taken_for_scans(tiny_model, tmp_path, capsys):
    scan, _ = sphere_scan()
    code, _, err = run(capsys, write(scan, tmp_path / "ear.nrrd"), "-o", tmp_path / "out", "--labelmap", model=tiny_model)
    assert code == 0, err
    code, _, err = run(capsys, tmp_path / "out" / "ear.seg.nrrd", "-o", tmp_path / "again", model=tiny_model)
    assert code == 1 and "is a segmentation (.seg.nrrd), not a scan" in err
    code, _, err = run(capsys, tmp_path / "out" / "ear-label.nrrd", "-o", tmp_path / "again", model=tiny_model)
    assert code == 1 and "is a labelmap written by this tool" in err


def test_a_header_too_big_for_this_machine_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.mha"
    path.write_text("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                    "ElementSpacing = 0.01 0.01 0.01\nDimSize = 40000 40000 4000\nElementType = MET_SHORT\n"
                    "ElementDataFile = LOCAL\n" + "x" * 64)
    clock = time.perf_counter()
    with pytest.raises(InputError, match=r"40000x40000x4000 voxels\) needs about \d+\.\d GiB of memory"):
        read_scan(path)
    assert time.perf_counter() - clock < 5


# --- DICOM ---------------------------------------------------------------------------------------

def test_a_folder_with_two_dicom_series_says_how_many_and_to_split_them(tiny_model, tmp_path, capsys):
    scan, _ = sphere_scan(size=(40, 40, 24))
    folder = tmp_path / "study"
    write_dicom_series(folder, scan, "1.2.826.0.1.3680043.2.1125.2.1", "Temporal bone 0.4 mm")
    write_dicom_series(folder, scan[:, :, :12], "1.2.826.0.1.3680043.2.1125.2.2", "Scout")
    code, _, err = run(capsys, folder, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1
    assert "holds 2 DICOM series" in err and "Split them" in err
    assert "Temporal bone 0.4 mm (24 files)" in err and "Scout (12 files)" in err
    assert files_in(tmp_path / "out") == []


def test_a_folder_with_one_dicom_series_is_segmented(tiny_model, tmp_path, capsys):
    scan, truth = sphere_scan(size=(40, 40, 24), offset_mm=(1.0, 0.0, 0.0))
    folder = tmp_path / "series"
    write_dicom_series(folder, scan, "1.2.826.0.1.3680043.2.1125.3.1", "Temporal bone")
    code, out, err = run(capsys, folder, "-o", tmp_path / "out", "--labelmap", model=tiny_model)
    assert code == 0, err
    labels = sitk.ReadImage(str(tmp_path / "out" / "series-label.nrrd"))
    assert labels.GetSize() == (40, 40, 24)
    assert labels.GetSpacing() == pytest.approx(scan.GetSpacing(), abs=1e-3)
    assert dice(sitk.GetArrayFromImage(labels) > 0, truth) > 0.85


@pytest.mark.parametrize("skip, gap", [((11,), "1.00"), ((11, 12), "1.50")])
def test_a_dicom_series_with_a_missing_slice_or_a_lone_slice_is_refused(tiny_model, tmp_path, capsys, skip, gap):
    """One missing slice is the hardest case: a gap of just twice the slice spacing."""
    scan, _ = sphere_scan(size=(40, 40, 24))
    folder = tmp_path / "gappy"
    write_dicom_series(folder, scan, "1.2.826.0.1.3680043.2.1125.4.1", "Temporal bone", skip=skip)
    code, _, err = run(capsys, folder, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "has a gap" in err and f"{gap} mm instead of 0.50 mm" in err

    lone = sorted(folder.iterdir())[5]
    code, _, err = run(capsys, lone, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1 and "one DICOM slice; give the folder that holds the whole series" in err


# --- the model -----------------------------------------------------------------------------------

def test_a_tampered_model_stops_the_command_before_any_scan_is_read(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    with open(folder / "stage3.onnx", "ab") as stream:
        stream.write(b"\0")
    scan, _ = sphere_scan()
    code, _, err = run(capsys, write(scan, tmp_path / "ear.nrrd"), "-o", tmp_path / "out", model=folder)
    assert code == 2 and err.startswith("error: Model tiny-test-model 0.0.1: stage3.onnx does not match")
    assert files_in(tmp_path / "out") == []


def test_a_stage_with_the_wrong_class_count_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    onnx.save(stage_graph(channels=1, classes=3), str(folder / "stage1.onnx"))
    save_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    with pytest.raises(ModelError, match="stage1.onnx gives 3 classes but the manifest lists 3 labels plus background"):
        Segmenter(load_model(folder)).segment(sphere_scan()[0])


def test_a_model_that_fails_while_running_gives_one_line_naming_the_scan(tiny_model, tmp_path, capsys):
    """A graph that loads but cannot run on the model grid (a fixed 64x64 input, grid 32)."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    graph = stage_graph(channels=1)
    for dim, value in zip(graph.graph.input[0].type.tensor_type.shape.dim[2:], (64, 64)):
        dim.dim_value = value
    onnx.save(graph, str(folder / "stage1.onnx"))
    save_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    scan, _ = sphere_scan()
    path = write(scan, tmp_path / "ear.nrrd")
    code, _, err = run(capsys, path, "-o", tmp_path / "out", model=folder)
    assert code == 1
    line = [entry for entry in err.splitlines() if entry.startswith("error:")]
    assert len(line) == 1 and line[0].startswith(f"error: {path}:")
    assert "The model failed while running" in line[0] and "re-export" in line[0]
    assert files_in(tmp_path / "out") == []


def test_an_unexpected_error_is_one_line_with_the_scan_and_a_debug_switch(tiny_model, tmp_path, capsys, monkeypatch):
    scan, _ = sphere_scan()
    path = write(scan, tmp_path / "ear.nrrd")

    def bug(self, *args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(Segmenter, "segment_file", bug)
    code, _, err = run(capsys, path, "-o", tmp_path / "out", model=tiny_model)
    assert code == 1
    assert f"error: {path}: unexpected ZeroDivisionError: float division by zero." in err
    assert "This is a bug" in err and "--debug" in err and "INNER_EAR_SEG_DEBUG=1" in err

    assert main([str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("INNER_EAR_SEG_DEBUG", "1")
    assert main([str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet"]) == 1
    assert "Traceback" in capsys.readouterr().err


# --- the output ----------------------------------------------------------------------------------

def test_an_unwritable_output_folder_fails_before_segmenting(tiny_model, tmp_path, capsys):
    scan, _ = sphere_scan()
    path = write(scan, tmp_path / "ear.nrrd")
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    code, _, err = run(capsys, path, "-o", blocker, model=tiny_model)
    assert code == 2 and "The output folder" in err and "is a file" in err
    code, _, err = run(capsys, path, "-o", "/proc/inner-ear-seg-results", model=tiny_model)
    assert code == 2 and "Cannot write into /proc/inner-ear-seg-results" in err and "nothing was segmented" in err


DISK_FULL_CHILD = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, sys.argv[1])
    limit = int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as on a full disk
    from InnerEarSegmentationLib.cli import main
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[3:]))
""")


def test_a_disk_that_fills_up_mid_write_leaves_no_partial_file_and_keeps_the_old_one(tiny_model, tmp_path):
    scan, _ = sphere_scan(size=(120, 120, 100), spacing=(0.15, 0.15, 0.15), radius_mm=6.0, offset_mm=(0, 0, 0))
    path = write(scan, tmp_path / "ear.nrrd")
    fresh = tmp_path / "fresh"
    assert main([str(path), "-o", str(fresh), "--model", str(tiny_model), "--quiet"]) == 0
    complete = (fresh / "ear.seg.nrrd").read_bytes()
    header = complete.index(b"\n\n") + 2
    limit = (header + len(complete)) // 2
    assert header < limit < len(complete), "the limit must fall inside the voxel data"

    out = tmp_path / "out"
    out.mkdir()
    earlier = b"NRRD0004\n# earlier work that must survive\n"
    (out / "ear.seg.nrrd").write_bytes(earlier)
    child = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(LIB), str(limit), str(path), "-o", str(out),
         "--model", str(tiny_model), "--quiet", "--overwrite"],
        capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert child.returncode == 1, child.stderr
    assert "Traceback" not in child.stderr
    assert f"Writing {out / 'ear.seg.nrrd'} failed" in child.stderr
    assert "nothing was left behind" in child.stderr and "Free some disk space" in child.stderr
    assert files_in(out) == ["ear.seg.nrrd"], "a temporary or partial file was left behind"
    assert (out / "ear.seg.nrrd").read_bytes() == earlier


# --- value ranges --------------------------------------------------------------------------------

def test_uint16_micro_ct_up_to_65535_is_segmented(tiny_model, tmp_path, capsys):
    """Unsigned 16-bit with an offset of 32768 (the model's mean says so) and a metal implant
    saturated at 65535: no wrap-around, no overflow anywhere on the way."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"]["mean"] = 32768.0
    save_manifest(folder, manifest)
    scan, truth = sphere_scan(values=(32768 + AIR, 32768 + BONE, 32768 + FLUID), dtype=np.uint16)
    array = sitk.GetArrayFromImage(scan)
    array[3:6, 30:33, 30:33] = 65535  # an electrode far from the labyrinth
    scan = sitk.GetImageFromArray(array)
    scan.SetSpacing((0.4, 0.4, 0.5))
    code, _, err = run(capsys, write(scan, tmp_path / "micro.nrrd"), "-o", tmp_path / "out", "--labelmap", model=folder)
    assert code == 0, err
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "micro-label.nrrd")))
    assert dice(labels > 0, truth) > 0.9


def test_float64_input_is_segmented_and_beyond_float32_is_refused(tiny_model, tmp_path, capsys):
    scan, truth = sphere_scan(dtype=np.float64)
    code, _, err = run(capsys, write(scan, tmp_path / "double.nrrd"), "-o", tmp_path / "out", "--labelmap", model=tiny_model)
    assert code == 0, err
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "double-label.nrrd")))
    assert dice(labels > 0, truth) > 0.9

    huge = sitk.GetImageFromArray(sitk.GetArrayFromImage(scan) * 1e300)
    huge.CopyInformation(scan)
    with pytest.raises(InputError, match="beyond what 32-bit processing holds"):
        validate_scan(huge, "huge.nrrd")


# --- the NIfTI size check, header by header --------------------------------------------------------

def nifti_header(version: int, dims: tuple[int, ...], bitpix: int, offset: int, endian: str = "<") -> bytes:
    """The fields _nifti_total_bytes reads, where NIfTI-1 (348 bytes) or NIfTI-2 (540) keeps them."""
    import struct

    dims = tuple(dims) + (1,) * (8 - len(dims))
    if version == 1:
        head = bytearray(348)
        head[0:4] = struct.pack(endian + "i", 348)
        head[40:56] = struct.pack(endian + "8h", *dims)
        head[72:74] = struct.pack(endian + "h", bitpix)
        head[108:112] = struct.pack(endian + "f", float(offset))
    else:
        head = bytearray(540)
        head[0:4] = struct.pack(endian + "i", 540)
        head[14:16] = struct.pack(endian + "h", bitpix)
        head[16:80] = struct.pack(endian + "8q", *dims)
        head[168:176] = struct.pack(endian + "q", offset)
    return bytes(head)


@pytest.mark.parametrize("version, offset", [(1, 352), (2, 544)])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_the_nifti_header_gives_the_size_a_complete_file_has(version, offset, endian):
    from InnerEarSegmentationLib.scanio import _nifti_total_bytes

    def total(dims, bitpix=16):
        return _nifti_total_bytes(nifti_header(version, dims, bitpix, offset, endian))

    assert total((3, 10, 20, 30)) == offset + 10 * 20 * 30 * 2
    assert total((3, 10, 20, 30), bitpix=1) == offset + 10 * 20 * 30  # bits round up to a byte
    assert total((4, 10, 20, 30, 1)) == total((3, 10, 20, 30))        # one time point
    assert total((4, 10, 20, 30, 3)) == offset + 3 * 10 * 20 * 30 * 2
    assert total((0, 10, 20, 30)) == offset + 2                       # dim[0] = 0: one voxel
    assert total((9, 2, 2, 2, 2, 2, 2, 2)) == offset + 2 ** 7 * 2     # at most 7 dimensions
    assert _nifti_total_bytes(nifti_header(version, (3, 4, 4, 4), 8, 0, endian)) == 348 + 64


def test_a_real_nifti_file_has_the_size_its_header_gives_and_other_bytes_are_not_nifti(tmp_path):
    from InnerEarSegmentationLib.scanio import _nifti_total_bytes

    path = write(sphere_scan(size=(12, 10, 8))[0], tmp_path / "ear.nii")
    assert _nifti_total_bytes(path.read_bytes()[:560]) == path.stat().st_size
    assert _nifti_total_bytes(bytes(600)) is None and _nifti_total_bytes(b"\x5c\x01\x00\x00") is None


def test_a_file_that_is_not_what_its_name_says_is_named_with_its_full_extension(tmp_path):
    path = tmp_path / "Noise.NII.GZ"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"is not a valid \.nii\.gz file"):
        read_scan(path)
