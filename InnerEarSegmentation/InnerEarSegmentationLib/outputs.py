"""Writers for results: Slicer .seg.nrrd, labelmap, smoothed STL/OBJ surface, JSON report.

Every writer goes through a temporary file in the target folder and renames it at the end, so
a full disk or a crash never leaves half a file, and nothing is overwritten unless asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import SimpleITK as sitk

from .errors import OutputError
from .labels import Label


@contextlib.contextmanager
def atomic_target(path: Path, overwrite: bool) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if writing succeeded."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists. Choose another output folder or ask to overwrite "
                          "(--overwrite on the command line).")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix="".join(path.suffixes[-2:]) or ".tmp", dir=folder)
        os.close(handle)
    except OSError as error:
        raise OutputError(f"Cannot write into {folder} ({error.strerror}). Choose a folder you can write to.") from None
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb+") as written:  # a full disk may only show when data reaches it
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        reason = getattr(error, "strerror", None) or _writer_reason(error)
        raise OutputError(f"Writing {path} failed ({reason}); nothing was left behind. "
                          "Free some disk space or choose another folder.") from None
    finally:
        temporary.unlink(missing_ok=True)


def _writer_reason(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()
             and not line.strip().startswith("Exception thrown in")]
    return (lines[-1] if lines else type(error).__name__)[:160]


def ensure_writable(folder: Path) -> None:
    """Fails at once, before any scan is segmented, if results cannot be written into ``folder``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"The output folder {folder} is a file. Choose a folder with -o.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".inner-ear-seg-write-test.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"Cannot write into {folder} ({error.strerror or error}); nothing was "
                          "segmented. Choose an output folder you can write to (-o).") from None


def _write_image(image: sitk.Image, path: Path, overwrite: bool, fields: dict[str, str]) -> Path:
    """Writes ``image`` as uint8 with ``fields`` in its header. A uint8 image is written as it is,
    its own header fields set for the write and restored after: a cast or copy would double a
    micro-CT labelmap (3.4 GB for 1500³)."""
    if image.GetPixelID() != sitk.sitkUInt8:
        image = sitk.Cast(image, sitk.sitkUInt8)
    before = {key: image.GetMetaData(key) for key in fields if image.HasMetaDataKey(key)}
    try:
        for key, value in fields.items():
            image.SetMetaData(key, value)
        with atomic_target(path, overwrite) as temporary:
            writer = sitk.ImageFileWriter()
            writer.SetFileName(str(temporary))
            writer.SetImageIO("NrrdImageIO" if path.name.endswith((".nrrd", ".nhdr")) else "")
            writer.UseCompressionOn()
            writer.Execute(image)
    finally:
        for key in fields:
            if key in before:
                image.SetMetaData(key, before[key])
            else:
                image.EraseMetaData(key)
    return path


def provenance_fields(report: dict[str, Any]) -> dict[str, str]:
    """Header fields that say which software, model and settings made a file."""
    return {
        "InnerEarSegmentation_Software": f"{report['software']['name']} {report['software']['version']}",
        "InnerEarSegmentation_Model": f"{report['model']['id']} {report['model']['version']}",
        "InnerEarSegmentation_ModelManifestSha256": report["model"]["manifest_sha256"],
        "InnerEarSegmentation_Settings": json.dumps(report["settings"], sort_keys=True),
        "InnerEarSegmentation_Created": report["created"],
    }


def write_segmentation(labelmap: sitk.Image, labels: tuple[Label, ...], path: Path,
                       report: dict[str, Any], overwrite: bool = False) -> Path:
    """A Slicer segmentation file: one shared labelmap layer, one named, coloured, tagged segment
    per label, readable by Slicer's Segmentations module as it is."""
    extents = _extents(labelmap, [label.value for label in labels])
    fields = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        **provenance_fields(report),
    }
    for index, label in enumerate(labels):
        prefix = f"Segment{index}_"
        fields.update({
            prefix + "ID": _segment_id(label),
            prefix + "Name": label.name,
            prefix + "NameAutoGenerated": "0",
            prefix + "Color": " ".join(f"{c:.6g}" for c in label.color),
            prefix + "ColorAutoGenerated": "0",
            prefix + "LabelValue": str(label.value),
            prefix + "Layer": "0",
            prefix + "Extent": extents[label.value],
            prefix + "Tags": f"TerminologyEntry:{label.terminology}|" if label.terminology else "",
        })
    return _write_image(labelmap, path, overwrite, fields)


def _segment_id(label: Label) -> str:
    return label.name.replace(" ", "_")


def _extents(labelmap: sitk.Image, values: list[int], chunk_voxels: int = 16_000_000) -> dict[int, str]:
    """Each label's extent as Slicer stores it: "i0 i1 j0 j1 k0 k1" (x, y, z voxel index ranges).
    Slab by slab, so no full-size mask is ever made."""
    array = sitk.GetArrayViewFromImage(labelmap)
    step = max(1, chunk_voxels // max(array[0].size, 1))
    found: dict[int, list[np.ndarray]] = {value: [] for value in values}
    for z0 in range(0, array.shape[0], step):
        slab = array[z0:z0 + step]
        for value in values:
            mask = slab == value
            if mask.any():
                found[value].append(np.stack([mask.any(axis=(1, 2)).nonzero()[0][[0, -1]] + z0,
                                              mask.any(axis=(0, 2)).nonzero()[0][[0, -1]],
                                              mask.any(axis=(0, 1)).nonzero()[0][[0, -1]]]))
    extents = {}
    for value, boxes in found.items():
        if not boxes:
            extents[value] = "0 -1 0 -1 0 -1"
            continue
        boxes = np.array(boxes)  # [slab, z/y/x, low/high]
        low, high = boxes[:, :, 0].min(axis=0), boxes[:, :, 1].max(axis=0)
        extents[value] = " ".join(f"{int(low[axis])} {int(high[axis])}" for axis in (2, 1, 0))
    return extents


def write_labelmap(labelmap: sitk.Image, path: Path, report: dict[str, Any], overwrite: bool = False) -> Path:
    """A plain labelmap volume (0 background, label values as in the model's manifest)."""
    return _write_image(labelmap, path, overwrite, provenance_fields(report))


def write_report(report: dict[str, Any], path: Path, overwrite: bool = False) -> Path:
    with atomic_target(path, overwrite) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def write_preview(scan: Path, labelmap: sitk.Image, labels: tuple[Label, ...], path: Path,
                  overwrite: bool = False, report: dict[str, Any] | None = None) -> Path:
    """The QC picture (``preview.preview_image``) of a scan file and its labelmap, as a PNG;
    under it, from the ``report``, the model that made it and each ear's side and measurements."""
    from .ear_summary import picture_lines
    from .preview import preview_image, write_png
    from .scanio import read_scan

    picture = preview_image(read_scan(scan), labelmap, labels, footer=picture_lines(report) if report else ())
    with atomic_target(path, overwrite) as temporary:
        write_png(picture, temporary)
    return path
