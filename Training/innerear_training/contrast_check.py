"""The fluid-in-bone contrast (``capsule.fluid_contrast``) of every find, on ears and on scans
without one: the evidence for ``capsule.MIN_CONTRAST``.

    python -m innerear_training.contrast_check --renders /tmp/valrender --heads 8 --head-seed 101 \
        --no-ear-seed 6 --out CONTRAST.md

Ears: the validation renders (``validation_renders --render-seed 1``) and validation heads; no
ears: ``no_ear_check``'s ten kinds of scan drawn with a validation seed (its test seed is 5).
Each box the cascade segments (30 mm³ or more) is listed with its contrast, before the check
drops any, so the threshold can be read off the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import SimpleITK as sitk

from InnerEarSegmentationLib import pipeline
from InnerEarSegmentationLib.capsule import MIN_CONTRAST, fluid_contrast
from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.model import load_model

from .report import emit, table_report


class Recorder:
    """Segments scans with the check switched off and notes each box's contrast."""

    def __init__(self, model: Path | None):
        self.segmenter = pipeline.Segmenter(load_model(model), pipeline.SegmentationSettings(measure=False))
        self.boxes: list[tuple[float, float]] = []
        cascade = pipeline.run_cascade

        def recorded(image, *args, **kwargs):
            output = cascade(image, *args, **kwargs)
            spacing = self.segmenter.model.roi_extent_mm / image.shape[0]
            volume = float(output.mask.sum()) * spacing ** 3
            if volume >= pipeline.MIN_EAR_MM3:
                self.boxes.append((volume, fluid_contrast(image, output.mask, spacing)))
            return output

        pipeline.run_cascade = recorded
        pipeline.lies_in_bone = lambda *args: True

    def rows(self, kind: str, name: str, scan: sitk.Image) -> list[str]:
        self.boxes = []
        try:
            self.segmenter.segment(scan)
        except InputError:
            pass
        return [f"| {kind} | {name} | {volume:.0f} | {contrast:.3f} |" for volume, contrast in self.boxes] or \
            [f"| {kind} | {name} | nothing found | |"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.contrast_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--renders", type=Path, help="folder of validation renders (NAME.nrrd)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-seed", type=int, default=101)
    parser.add_argument("--no-ear-seed", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from innerear_synth.head import render_head
    from innerear_synth.render import draw_generator

    from .data import head_pair
    from .no_ear_check import SPECIMENS, scans

    recorder, rows = Recorder(args.model), []
    for path in sorted(args.renders.glob("*.nrrd")) if args.renders else []:
        if not path.name.endswith("-label.nrrd"):
            rows += recorder.rows("ear", f"render {path.stem}", sitk.ReadImage(str(path)))
    for index in range(args.heads):
        head = render_head(draw_generator(args.head_seed, index, "head"), *head_pair(index, list(SPECIMENS)))
        rows += recorder.rows("ears", f"head {index} (seed {args.head_seed})", head.image)
    for name, scan in scans(args.no_ear_seed):
        rows += recorder.rows("no ear", f"{name} (seed {args.no_ear_seed})", scan)
    for row in rows:
        print(row, flush=True)
    emit(table_report(f"Fluid-in-bone contrast of each find: {recorder.segmenter.model.name}",
                      f"python -m innerear_training.contrast_check {' '.join(argv or sys.argv[1:])}",
                      ["Contrast: median of a 0.5-1.5 mm shell round the find minus its inside median, on the "
                       f"model box (robust range, -1..1). The engine drops a find under {MIN_CONTRAST}."],
                      ["scan holds", "scan", "find mm³", "contrast"], rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
