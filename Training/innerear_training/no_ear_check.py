"""Scans with no inner ear must be refused: "no inner ear found", and no segment.

    python -m innerear_training.no_ear_check --model MODEL --seed 5 --out NO_EAR.md

Ten scans, three kinds: a head cut above the temporal bones (``innerear_synth.head``, only the
slices more than CUT_ABOVE_MM above the ears), a chest- or abdomen-like volume
(``innerear_synth.body``: its spinal canal is fluid inside bone, as a labyrinth is) and a
temporal-bone block whose labyrinth was filled with bone (``innerear_synth.render`` of a real
specimen with its cochlea, vestibule and canals relabelled bone; the internal auditory canal and
vestibular aqueduct stay fluid). Each is counted refused or not, with what was found.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

from .report import emit, table_report

CUT_ABOVE_MM = 35.0
SPECIMENS = ("RT143", "RT138", "RT147", "LT143")


def head_above_the_ears(rng: np.random.Generator, specimen: str) -> sitk.Image:
    from innerear_synth.head import render_head

    head = render_head(rng, specimen)
    top = max(ear["labyrinth_centre_mm"][2] for ear in head.ears) + CUT_ABOVE_MM
    first = int(np.ceil((top - head.image.GetOrigin()[2]) / head.image.GetSpacing()[2]))
    return head.image[:, :, min(first, head.image.GetSize()[2] - 16):]


def filled_labyrinth(rng: np.random.Generator, specimen: str) -> sitk.Image:
    from innerear_synth import specimens as sp
    from innerear_synth.render import load_specimen, render_scan

    original = load_specimen(specimen)
    labels = np.where(np.isin(original.labels, (sp.COCHLEA, sp.VESTIBULE, sp.CANALS)), sp.BONE, original.labels)
    scan, _, _ = render_scan(dataclasses.replace(original, labels=labels.astype(original.labels.dtype)), rng, "clinical")
    return scan


def body(rng: np.random.Generator, kind: str) -> sitk.Image:
    from innerear_synth.body import render_body

    return render_body(rng, kind)


def scans(seed: int) -> list[tuple[str, sitk.Image]]:
    """The ten scans: 3 heads cut above the ears, 2 chests, 2 abdomens, 3 bone-filled labyrinths."""
    rng = np.random.default_rng(seed)
    made = [(f"head above the ears ({name})", head_above_the_ears(rng, name)) for name in SPECIMENS[:3]]
    made += [(f"{kind} {index + 1}", body(rng, kind)) for kind in ("chest", "abdomen") for index in range(2)]
    made += [(f"{name}, labyrinth filled with bone", filled_labyrinth(rng, name)) for name in SPECIMENS[1:]]
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.no_ear_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, help="Markdown table")
    args = parser.parse_args(argv)
    segmenter = Segmenter(load_model(args.model), SegmentationSettings(measure=False))
    rows, refused = [], 0
    for name, scan in scans(args.seed):
        field = " x ".join(f"{n * s:.0f}" for n, s in zip(scan.GetSize(), scan.GetSpacing()))
        try:
            result = segmenter.segment(scan)
            found = ", ".join(f"{s['name']} {s['volume_mm3']:.1f} mm³" for s in result.report["segments"] if s["voxels"])
            verdict = "segmented (wrong)"
        except InputError as error:
            found, verdict = str(error).split(".")[0], "refused"
            refused += 1
        rows.append(f"| {name} | {field} mm | {verdict} | {found} |")
        print(rows[-1], flush=True)
    emit(table_report(f"Scans with no inner ear: {segmenter.model.name}",
                      f"python -m innerear_training.no_ear_check --seed {args.seed}",
                      [f"Refused with \"no inner ear found\": {refused} of {len(rows)}."],
                      ["scan", "field", "verdict", "what was found"], rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
