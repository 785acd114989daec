"""Write the derived real-anatomy maps, their pictures and their record.

    cd Training && python -m innerear_synth.derive

For each specimen: split the bony labyrinth (``labyrinth_split``), find the patient axes
(``specimen_axes``), and write ``Training/data/real-anatomy/<name>_anatomy.nrrd`` (source labels,
label 5 replaced by 17 cochlea, 18 vestibule, 19 canals; direction and origin in patient LPS with
the labyrinth's centroid at 0, the direction mirrored where the voxel frame is), ``<name>_split.png`` and ``specimens.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import SimpleITK as sitk

from . import specimens as sp
from .labyrinth_split import split_labyrinth
from .pictures import split_figure
from .specimen_axes import find_axes


def derive(name: str) -> dict:
    source = sp.read_source(name)
    labels = sitk.GetArrayFromImage(source)
    spacing = np.array(source.GetSpacing())
    hits = np.argwhere(labels == sp.LABYRINTH)
    low, high = np.maximum(hits.min(0) - 6, 0), hits.max(0) + 7
    box = tuple(slice(a, b) for a, b in zip(low, high))
    parts = split_labyrinth(labels[box] == sp.LABYRINTH, float(spacing.mean()))
    derived = labels.copy()
    derived[derived == sp.LABYRINTH] = sp.BONE  # voxels the split dropped (none when one piece)
    region = derived[box]
    for value, label in sp.STRUCTURE_OF.items():
        region[parts == label] = value
    axes = find_axes(derived, spacing)
    named_side = sp.SPECIMENS[name][1]
    direction = axes.direction(named_side)
    centre_voxel_mm = np.argwhere(parts > 0).mean(axis=0)[::-1] + low[::-1]
    centre_voxel_mm = centre_voxel_mm * spacing
    image = sitk.GetImageFromArray(derived)
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin((-direction @ centre_voxel_mm).tolist())
    sp.DERIVED_FOLDER.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(sp.derived_path(name)), useCompression=True)
    structures = sitk.GetImageFromArray(sp.structures(derived))
    structures.CopyInformation(image)
    split_figure(structures, (0.0, 0.0, 0.0), sp.DERIVED_FOLDER / f"{name}_split.png")
    voxel = float(np.prod(spacing))
    return {
        "source_file": sp.SPECIMENS[name][0], "donor": sp.DONOR[name], "side_named": named_side,
        "voxel_frame_shows": axes.voxel_handedness, "voxel_frame_mirrored": axes.voxel_handedness != named_side,
        "spacing_mm": spacing.round(6).tolist(),
        "voxel_axes_in_lps": {"x": direction[:, 0].round(3).tolist(), "y": direction[:, 1].round(3).tolist(),
                              "z": direction[:, 2].round(3).tolist()},
        "volumes_mm3": {"labyrinth": round(float((labels == sp.LABYRINTH).sum()) * voxel, 1),
                        **{key: round(float((parts == label).sum()) * voxel, 1)
                           for key, label in (("cochlea", 1), ("vestibule", 2), ("canals", 3))}},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_synth.derive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specimens", default=",".join(sp.SPECIMENS))
    args = parser.parse_args(argv)
    record = {}
    for name in args.specimens.split(","):
        record[name] = derive(name)
        print(name, json.dumps(record[name]))
    (sp.DERIVED_FOLDER / "specimens.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
