"""Reading scans (a file or a DICOM series folder) and refusing ones that cannot be segmented.

Every refusal is an ``InputError`` whose text names the problem and what to do about it. A file's
header is checked before its voxels are read, so a 2D image, a time series, an RGB export, a
broken header or a scan too big for this machine is refused at once, not after a long read.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from .errors import InputError

SCAN_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm")
# Outputs of this tool and label files that a folder run must not take for scans.
NOT_SCANS = (".seg.nrrd", "-label.nrrd", "_label.nrrd", "-label.nii.gz", "_label.nii.gz", "-labels.nrrd")
FORMATS = "NRRD, NIfTI, MHA/MHD or a folder holding one DICOM series"

MIN_VOXELS = 8            # per axis: fewer is a slice or a thin slab, not a volume
MIN_EXTENT_MM = 5.0       # the cochlea alone is about 9 x 5 mm
# Slice spacing. The semicircular canals are about 1 mm wide and the cochlea about 5 mm tall;
# the cascade sees the scan resampled to isotropic voxels in three views. Beyond 10:1 (e.g.
# 0.1 x 0.1 x 5 mm) whole canals fall between two slices and the cochlea spans one or two, so the
# labyrinth cannot be recovered by any interpolation: refuse and ask for thinner slices. Between
# 3:1 and 10:1 (e.g. 0.4 x 0.4 x 2 mm, a routine head CT) it runs, with a warning in the report.
MAX_ANISOTROPY = 10.0
WARN_ANISOTROPY = 3.0
MAX_SPACING_MM = 2.0      # coarser voxels than this cannot show a 1 mm canal at all
WARN_SPACING_MM = 1.0
WARN_EXTENT_MM = 80.0     # wider may hold both ears; a whole-field model keeps the largest labyrinth
# Peak bytes per voxel once the scan's pixels are freed: the uint8 labelmap as numpy array and
# as image while it is mapped back. 1500³ int16: 6.3 GiB estimated, 6.6 GiB measured
# (Testing/test_large_scan.py).
WORK_BYTES_PER_VOXEL = 2
CHUNK_VOXELS = 32_000_000  # value checks go slab by slab: never a full-size temporary


def is_scan_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(SCAN_SUFFIXES) and not name.endswith(NOT_SCANS)


def find_scans(folder: Path) -> list[Path]:
    """Scan files directly in ``folder`` and sub-folders holding a DICOM series."""
    folder = Path(folder)
    found = [p for p in sorted(folder.iterdir()) if is_scan_file(p) and not p.name.lower().endswith(".dcm")]
    if series_ids(folder):
        found.insert(0, folder)
    found += [p for p in sorted(folder.iterdir()) if p.is_dir() and series_ids(p)]
    return found


def read_scan(path: str | Path) -> sitk.Image:
    """Reads a scan file or the single DICOM series in a folder; checks it can be segmented."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist. Check the path.")
    if path.is_dir():
        image = _read_dicom_folder(path)
    else:
        image = _read_file(path)
    return validate_scan(image, str(path))


# --- files ---------------------------------------------------------------------------------------

def _read_file(path: Path) -> sitk.Image:
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as error:
        raise InputError(f"Cannot open {path} ({error.strerror}). Check that the file is readable "
                         "by you.") from None
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes): the export or copy did not finish. "
                         "Export or copy the scan again.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as error:
        raise _unreadable(path, error) from None
    dicom = _is_dicom(reader.GetMetaDataKeys(), path)
    _refuse_own_results(path, reader)
    extract = check_layout(str(path), reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents(),
                           reader.GetPixelID(), reader.GetSpacing(), dicom=dicom)
    if extract is not None:
        reader.SetExtractSize(extract)
    check_memory(str(path), reader.GetSize()[:3], reader.GetPixelID())
    _check_nifti_complete(path)
    _check_metaimage_data_file(path)
    _check_metaimage_complete(path)
    try:
        with _quiet_itk():
            return reader.Execute()
    except MemoryError:
        raise InputError(_out_of_memory(str(path), reader.GetSize())) from None
    except RuntimeError as error:
        if "alloc" in str(error).lower():
            raise InputError(_out_of_memory(str(path), reader.GetSize())) from None
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> InputError:
    reason = itk_reason(error)
    name = path.name.lower()
    if "Unable to determine ImageIO reader" in str(error):
        if not name.endswith(SCAN_SUFFIXES + (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")):
            return InputError(f"{path} is not a scan file ({path.suffix or 'no extension'} is not an "
                              f"image format this tool reads). Give a CT volume as {FORMATS}.")
        return InputError(f"{path} is not a valid {_suffix(path)} file: its contents are not an "
                          "image this tool can read (corrupt, truncated, or not what its name says). "
                          f"Export the scan again as {FORMATS}.")
    return InputError(f"Cannot read {path}: the file is corrupt or truncated ({reason}). "
                      f"Copy or export the scan again as {FORMATS}.")


def itk_reason(error: Exception, limit: int = 160) -> str:
    """The informative line of an ITK/SimpleITK exception text (no file:line, no stale errno)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in")
             and not line.startswith("Reason: No such file or directory")]
    if not lines:
        return "no detail given"
    line = lines[-1]
    line = re.sub(r"^(sitk::ERROR|ITK ERROR|itk::ERROR):\s*", "", line)
    line = re.sub(r"^\w+\(0x[0-9a-f]+\):\s*", "", line)
    return line[:limit]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in SCAN_SUFFIXES + (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp") if name.endswith(s)),
                path.suffix)


def _is_dicom(keys: Sequence[str], path: Path) -> bool:
    return path.name.lower().endswith(".dcm") or any(re.fullmatch(r"[0-9a-fA-F]{4}\|[0-9a-fA-F]{4}", k) for k in keys)


def _refuse_own_results(path: Path, reader: sitk.ImageFileReader) -> None:
    keys = set(reader.GetMetaDataKeys())
    if "Segmentation_MasterRepresentation" in keys or "Segment0_ID" in keys:
        raise InputError(f"{path} is a segmentation (.seg.nrrd), not a scan. Give the CT volume "
                         "it was made from.")
    if "InnerEarSegmentation_Model" in keys:
        raise InputError(f"{path} is a labelmap written by this tool, not a scan. Give the CT "
                         "volume it was made from.")


def _check_nifti_complete(path: Path) -> None:
    """ITK reads a truncated NIfTI without complaint and fills the missing voxels with zeros;
    refuse it instead. Uncompressed: compare the file size with the header's. Compressed: the gzip
    trailer stores the uncompressed size (mod 2³²); only if it disagrees is the stream decoded."""
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"  # some tools name a plain .nii ".nii.gz"
        opener = gzip.open if compressed else open
        with opener(path, "rb") as stream:
            head = stream.read(560)
        expected = _nifti_total_bytes(head)
        if expected is None:
            return
        if not compressed:
            actual = path.stat().st_size
        else:
            with open(path, "rb") as raw:
                raw.seek(-4, os.SEEK_END)
                trailer = struct.unpack("<I", raw.read(4))[0]
            if trailer == expected % 2 ** 32:
                return
            actual = 0
            with gzip.open(path, "rb") as stream:
                while block := stream.read(1 << 24):
                    actual += len(block)
    except (EOFError, zlib.error, gzip.BadGzipFile):
        actual = -1
    except OSError:
        return  # unreadable files get their message from the reader
    if actual < expected:
        detail = "its compressed data ends early" if actual < 0 else f"{actual} of {expected} bytes"
        raise InputError(f"{path} is truncated ({detail}): the copy or export did not finish. "
                         "Copy or export the scan again.")


def _check_metaimage_data_file(path: Path) -> None:
    """A .mhd header whose voxel file was not copied along: say which file is missing."""
    if not path.name.lower().endswith(".mhd"):
        return
    try:
        text = path.read_text(encoding="latin-1", errors="replace")
    except OSError:
        return
    found = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", text, re.MULTILINE)
    if not found or found.group(1).upper() in ("LOCAL", "LIST") or "%" in found.group(1) or " " in found.group(1):
        return
    data = path.parent / found.group(1)
    if not data.is_file():
        raise InputError(f"{path} is a header whose voxel data file {data.name} is missing (it must lie "
                         f"beside the header). Copy {data.name} together with {path.name}.")


# MetaImage element types by their size in bytes (MET_LONG/ULONG are 4 bytes in MetaIO).
_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


def _check_metaimage_complete(path: Path) -> None:
    """Older ITK (SimpleITK 2.3, in Slicer 5.8) reads a truncated MetaImage with only a warning and
    zeros for the missing voxels; refuse it by comparing the voxel bytes with the header's sizes."""
    name = path.name.lower()
    if not name.endswith((".mha", ".mhd")):
        return
    try:
        with open(path, "rb") as stream:
            head = stream.read(1 << 16)
    except OSError:
        return
    found = re.search(rb"^[ \t]*ElementDataFile[ \t]*=[ \t]*(\S+)[ \t]*\r?\n", head, re.MULTILINE)
    if not found:
        return
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*(.*?)\s*$", head[:found.start()].decode("latin-1"), re.MULTILINE))
    target = found.group(1).decode("latin-1")
    if target.upper() == "LOCAL":
        data, available = path, path.stat().st_size - found.end()
    elif target.upper() != "LIST" and "%" not in target and (path.parent / target).is_file():
        data = path.parent / target
        available = data.stat().st_size
    else:
        return
    try:
        if fields.get("CompressedData", "False").lower() == "true":
            expected = int(fields["CompressedDataSize"])
        else:
            count = math.prod(int(v) for v in fields["DimSize"].split())
            expected = count * int(fields.get("ElementNumberOfChannels", "1")) * _MET_BYTES[fields["ElementType"]]
    except (KeyError, ValueError):
        return
    if available < expected:
        raise InputError(f"{path} is truncated ({max(available, 0)} of {expected} bytes of voxel data in "
                         f"{data.name}): the copy or export did not finish. Copy or export the scan again.")


def _nifti_total_bytes(head: bytes) -> int | None:
    """Header plus voxel bytes that a NIfTI-1 or NIfTI-2 header promises (None if not NIfTI)."""
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            bitpix = struct.unpack(endian + "h", head[72:74])[0]
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", head[14:16])[0]
            dims = struct.unpack(endian + "8q", head[16:80])
            offset = struct.unpack(endian + "q", head[168:176])[0]
            break
    else:
        return None
    count = max(0, min(int(dims[0]), 7))
    voxels = math.prod(max(1, int(d)) for d in dims[1:count + 1])
    return max(offset, 348) + voxels * max(bitpix, 8) // 8


# --- DICOM ---------------------------------------------------------------------------------------

def series_ids(folder: Path) -> tuple[str, ...]:
    with _quiet_itk():
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _series_summary(folder: Path, series: str) -> str:
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series)
    description = ""
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
        with _quiet_itk():
            reader.ReadImageInformation()
        for tag in ("0008|103e", "0008|0060"):
            if reader.HasMetaDataKey(tag) and reader.GetMetaData(tag).strip():
                description = reader.GetMetaData(tag).strip()
                break
    except (RuntimeError, IndexError):
        pass
    return f"{description or 'series ' + series[-12:]} ({len(files)} file{'s' if len(files) != 1 else ''})"


def _read_dicom_folder(path: Path) -> sitk.Image:
    series = series_ids(path)
    if not series:
        raise InputError(f"{path} is a folder without a DICOM series. Give a scan file or a "
                         "folder that holds one DICOM series.")
    if len(series) > 1:
        listed = "; ".join(_series_summary(path, s) for s in series[:6]) + ("; …" if len(series) > 6 else "")
        raise InputError(f"{path} holds {len(series)} DICOM series ({listed}). Split them: put each "
                         "series in its own folder (Slicer's DICOM module or dcm2niix can sort them) "
                         "and pass the folder of the CT series to segment.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
    if len(files) < MIN_VOXELS:
        raise InputError(f"The DICOM series in {path} has only {len(files)} slice(s). Give the "
                         "whole 3D series (all its slices in one folder).")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with _quiet_itk():
            image = reader.Execute()
    except MemoryError:
        raise InputError(_out_of_memory(str(path), None)) from None
    except RuntimeError as error:
        raise InputError(f"Cannot read the DICOM series in {path} ({itk_reason(error)}). "
                         "Check that no slice is corrupt and all slices have the same size.") from None
    _check_slice_gaps(path, reader, len(files))
    return image


def _check_slice_gaps(path: Path, reader: sitk.ImageSeriesReader, count: int) -> None:
    """A missing file in a series makes ITK stretch the volume silently: refuse uneven gaps."""
    try:
        positions = np.array([[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")] for i in range(count)])
        orientation = np.array([float(v) for v in reader.GetMetaData(0, "0020|0037").split("\\")])
    except (RuntimeError, ValueError):
        return  # no geometry tags: nothing to check
    if positions.shape != (count, 3) or orientation.shape != (6,):
        return
    normal = np.cross(orientation[:3], orientation[3:])
    steps = np.diff(np.sort(positions @ normal))
    if len(steps) == 0:
        return
    typical = float(np.median(steps))
    if typical <= 0:
        raise InputError(f"The DICOM series in {path} has several slices at the same position "
                         "(two series mixed, or duplicated files). Keep one copy of each slice.")
    gaps = np.nonzero(steps > 1.5 * typical)[0]
    if len(gaps):
        raise InputError(f"The DICOM series in {path} has a gap: {len(gaps)} place(s) where slices are "
                         f"missing (the largest {steps.max():.2f} mm instead of {typical:.2f} mm). "
                         "Copy the complete series again.")


# --- checks --------------------------------------------------------------------------------------

def check_layout(name: str, dimension: int, size: Sequence[int], components: int, pixel_id: int,
                 spacing: Sequence[float], dicom: bool = False) -> list[int] | None:
    """Refuses layouts the model cannot take; returns an extract size for a 4D file with one
    time point (read as 3D), else None. Works from a header, before any voxel is read."""
    extract = None
    if dimension == 4 and size[3] == 1:
        extract, size, spacing, dimension = [size[0], size[1], size[2], 0], size[:3], spacing[:3], 3
    if dimension == 2 or (dimension == 3 and dicom and size[2] == 1):
        what = ("one DICOM slice; give the folder that holds the whole series" if dicom
                else "a single slice or a picture, not a volume; give the 3D CT volume")
        raise InputError(f"{name} is a 2D image ({size[0]}x{size[1]}): {what} ({FORMATS}).")
    if dimension == 4:
        raise InputError(f"{name} is a 4D series of {size[3]} volumes (time points, phases or echoes). "
                         "Extract the one CT volume to segment and give that.")
    if dimension != 3:
        raise InputError(f"{name} has {dimension} dimensions. Give a 3D CT volume ({FORMATS}).")
    if "complex" in sitk.GetPixelIDValueAsString(pixel_id):
        raise InputError(f"{name} has complex-valued voxels (raw MR or k-space data). Give a CT "
                         "volume with real (Hounsfield or grey) values.")
    if components != 1:
        raise InputError(f"{name} has {components} values per voxel (an RGB colour export or a vector "
                         "field). Give the scalar CT volume, not a rendering, screenshot or colour map.")
    if min(size) < MIN_VOXELS:
        raise InputError(f"{name} is only {size[0]}x{size[1]}x{size[2]} voxels: a single slice or a thin "
                         f"slab. Give the 3D scan (at least {MIN_VOXELS} voxels along every axis).")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{name} has an invalid voxel spacing in its header "
                         f"({', '.join(f'{s:g}' for s in spacing)}). Fix the header or export the scan again.")
    extent = [n * s for n, s in zip(size, spacing)]
    if min(extent) < MIN_EXTENT_MM:
        raise InputError(f"{name} covers only {min(extent):.2f} mm along one axis; the inner ear "
                         f"needs at least {MIN_EXTENT_MM:.0f} mm. Check the voxel spacing in the header "
                         "(is it in mm?) or give a larger field of view.")
    ratio = max(spacing) / min(spacing)
    if ratio > MAX_ANISOTROPY:
        raise InputError(f"{name} has voxels {_spacing(spacing)} mm, {ratio:.0f} times longer along one "
                         f"axis than another (at most {MAX_ANISOTROPY:.0f}:1 is accepted): the semicircular "
                         "canals (about 1 mm wide) fall between slices. Reconstruct thinner slices "
                         "(1 mm or less; 0.6 mm or less is best) and segment those.")
    if max(spacing) > MAX_SPACING_MM:
        raise InputError(f"{name} has voxels {_spacing(spacing)} mm; coarser than {MAX_SPACING_MM:g} mm "
                         "cannot show the semicircular canals (about 1 mm wide). Reconstruct the scan "
                         "with voxels of 1 mm or less (0.6 mm or less is best).")
    return extract


def _spacing(spacing: Sequence[float]) -> str:
    return " x ".join(f"{s:.3g}" for s in spacing)


def memory_available() -> int | None:
    """Bytes this machine can give now (Linux: MemAvailable + free swap, at most a container's
    memory limit), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo if line.split()[1:]}
        available = fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            available = min(available, int(Path(limit_file).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
    return available


def memory_needed(size: Sequence[int], pixel_id: int) -> int:
    """Peak bytes to segment a scan of ``size`` voxels of this type: its pixels (until the model
    grid is made) or the labelmap work, whichever is larger, plus 1 GiB for everything else."""
    voxels = math.prod(int(n) for n in size)
    pixel_bytes = _pixel_bytes(pixel_id)
    return max(voxels * pixel_bytes, voxels * WORK_BYTES_PER_VOXEL) + 2 ** 30


def _pixel_bytes(pixel_id: int) -> int:
    text = sitk.GetPixelIDValueAsString(pixel_id)
    bits = re.search(r"(\d+)-bit", text)
    return int(bits.group(1)) // 8 if bits else 4


def check_memory(name: str, size: Sequence[int], pixel_id: int) -> None:
    needed, available = memory_needed(size, pixel_id), memory_available()
    if available is not None and needed > available:
        raise InputError(_out_of_memory(name, size, needed, available))


def _out_of_memory(name: str, size: Sequence[int] | None, needed: int | None = None,
                   available: int | None = None) -> str:
    shape = f" ({'x'.join(str(n) for n in size)} voxels)" if size else ""
    amounts = (f"about {needed / 2 ** 30:.1f} GiB of memory but only {available / 2 ** 30:.1f} GiB is free"
               if needed and available else "more memory than is free")
    return (f"{name}{shape} needs {amounts}. Close other programs, crop the scan to a few "
            "centimetres around the ear, or use a machine with more memory.")


def validate_scan(image: sitk.Image, name: str = "the scan") -> sitk.Image:
    """Refuses what the model cannot segment, naming the problem and the fix; returns the image
    (a 4D image with one time point, or a one-component vector image, as a plain 3D volume)."""
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = sitk.Extract(image, [*image.GetSize()[:3], 0], [0, 0, 0, 0])
    if image.GetNumberOfComponentsPerPixel() == 1 and "vector" in image.GetPixelIDTypeAsString():
        image = sitk.VectorIndexSelectionCast(image, 0)
    check_layout(name, image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel(),
                 image.GetPixelID(), image.GetSpacing())
    low, high = value_range(image)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{name} contains NaN or infinite voxels (failed reconstruction or a bad "
                         "conversion). Repair or export the scan again.")
    if image.GetPixelID() == sitk.sitkFloat64 and max(abs(low), abs(high)) > float(np.finfo(np.float32).max):
        raise InputError(f"{name} has values up to {max(abs(low), abs(high)):.3g}, beyond what 32-bit "
                         "processing holds. Rescale the scan (e.g. to Hounsfield units).")
    if low == high:
        raise InputError(f"{name} is constant (every voxel is {low:g}): there is nothing to "
                         "segment. Check that the right file was exported.")
    return image


def value_range(image: sitk.Image) -> tuple[float, float]:
    """Smallest and largest voxel value; NaN if any voxel is NaN. No full-size temporary."""
    array = sitk.GetArrayViewFromImage(image)
    step = max(1, CHUNK_VOXELS // max(array[0].size, 1))
    low, high = math.inf, -math.inf
    with np.errstate(invalid="ignore"):
        for z in range(0, array.shape[0], step):
            chunk = array[z:z + step]
            chunk_low, chunk_high = float(chunk.min()), float(chunk.max())
            if math.isnan(chunk_low) or math.isnan(chunk_high):
                return math.nan, math.nan
            low, high = min(low, chunk_low), max(high, chunk_high)
    return low, high


def scan_warnings(scan: Any, grid_size: int | None = None, whole_field: bool = True) -> list[str]:
    """Sentences for the report's "warnings": scans that run but whose result may suffer.
    ``scan`` is a SimpleITK image or anything with ``size`` and ``spacing`` (x, y, z);
    ``whole_field``: the model segments the whole field on one grid (it has no locator), so a
    wide scan shrinks the labyrinth and only its largest one is kept."""
    size = tuple(scan.GetSize()) if hasattr(scan, "GetSize") else tuple(scan.size)
    spacing = tuple(scan.GetSpacing()) if hasattr(scan, "GetSpacing") else tuple(scan.spacing)
    warnings = []
    ratio = max(spacing) / min(spacing)
    if ratio > WARN_ANISOTROPY:
        warnings.append(f"Anisotropic voxels ({_spacing(spacing)} mm, {ratio:.1f}:1): the thin "
                        "semicircular canals may come out broken or thickened. Thinner slices "
                        "(0.6 mm or less, ideally isotropic) give a better result.")
    if max(spacing) > WARN_SPACING_MM:
        warnings.append(f"Coarse voxels (up to {max(spacing):.2g} mm) for structures about 1 mm wide: "
                        "expect a rough labyrinth. A temporal-bone protocol (0.6 mm or less) is best.")
    extent = max(n * s for n, s in zip(size, spacing))
    if whole_field and extent > WARN_EXTENT_MM:
        seen = f" at {extent / grid_size:.2f} mm per voxel" if grid_size else ""
        warnings.append(f"The scan is {extent:.0f} mm wide: the labyrinth is looked for over all of it{seen} "
                        "and only the largest one is segmented, so with both ears in view the other one "
                        "is left out. Crop to 2-4 cm around each ear and segment each crop.")
    return warnings


@contextlib.contextmanager
def _quiet_itk() -> Iterator[None]:
    """ITK prints warnings (e.g. "No Series were found") to stderr; our messages say it better."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
