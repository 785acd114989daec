"""Reading scans (a file or a DICOM series folder) and refusing ones that cannot be segmented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

SCAN_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm")
# Outputs of this tool and label files that a folder run must not take for scans.
NOT_SCANS = (".seg.nrrd", "-label.nrrd", "_label.nrrd", "-label.nii.gz", "_label.nii.gz", "-labels.nrrd")
MIN_EXTENT_MM = 5.0


def is_scan_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(SCAN_SUFFIXES) and not name.endswith(NOT_SCANS)


def find_scans(folder: Path) -> list[Path]:
    """Scan files directly in ``folder`` and sub-folders holding a DICOM series."""
    folder = Path(folder)
    found = [p for p in sorted(folder.iterdir()) if is_scan_file(p) and not p.name.lower().endswith(".dcm")]
    if sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        found.insert(0, folder)
    found += [p for p in sorted(folder.iterdir()) if p.is_dir() and sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p))]
    return found


def read_scan(path: str | Path) -> sitk.Image:
    """Reads a scan file or the single DICOM series in a folder; checks it can be segmented."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist. Check the path.")
    image = _read_dicom_folder(path) if path.is_dir() else _read_file(path)
    return validate_scan(image, str(path))


def _read_file(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1][:160] if str(error).strip() else ""
        raise InputError(f"Cannot read {path}: the file is not a readable image or is truncated "
                         f"({detail}). Export the scan again as NRRD, NIfTI, MHA or DICOM.") from None


def _read_dicom_folder(path: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(f"{path} is a folder without a DICOM series. Give a scan file or a "
                         "folder that holds one DICOM series.")
    if len(series) > 1:
        raise InputError(f"{path} holds {len(series)} DICOM series ({', '.join(series[:4])}…). "
                         "Put each series in its own folder, or pass one series' folder.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise InputError(f"Cannot read the DICOM series in {path} ({str(error).strip()[:160]}). "
                         "Check that no slice is missing or corrupt.") from None


def validate_scan(image: sitk.Image, name: str = "the scan") -> sitk.Image:
    """Refuses what the model cannot segment, naming the problem and the fix."""
    if image.GetDimension() != 3:
        hint = "a time series: extract one time point" if image.GetDimension() == 4 else "not a volume"
        raise InputError(f"{name} has {image.GetDimension()} dimensions ({hint}). "
                         "Give a 3D CT volume of the temporal bone.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(RGB or vector image). Give the scalar CT volume, not a rendering or colour map.")
    size = image.GetSize()
    if min(size) < 8:
        raise InputError(f"{name} is only {size[0]}x{size[1]}x{size[2]} voxels. Give a 3D scan, "
                         "not a single slice or a thin slab.")
    extent = [n * s for n, s in zip(size, image.GetSpacing())]
    if min(extent) < MIN_EXTENT_MM:
        raise InputError(f"{name} covers only {min(extent):.2f} mm along one axis; the inner ear "
                         f"needs at least {MIN_EXTENT_MM:.0f} mm. Check the voxel spacing in the header.")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or infinite voxels. Repair or re-export the scan.")
    sample = array[::4, ::4, ::4]
    if sample.size and np.ptp(sample) == 0 and np.ptp(array) == 0:
        raise InputError(f"{name} is constant (every voxel is {array.flat[0]}): there is nothing "
                         "to segment. Check that the right file was exported.")
    return image
