"""How often the engine names the right side from the anatomy alone, on renders whose side is known.

    python -m innerear_training.side_check --model MODEL --data /tmp/valrender --out SIDES.md

The scans of ``validation_renders`` are drawn in any pose, so their headers carry no patient
axes worth the name: the side must come from the segmented labyrinth's handedness (the report's
``laterality.anatomy_side``). The true side is the specimen's (RT: right, LT: left), swapped when
the render mirrored it. Each scan is counted right, wrong or unread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import SimpleITK as sitk

from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.laterality import LEFT, RIGHT
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

from .report import emit


def true_side(description: dict) -> str:
    """The render's side: the specimen's own, the other one when it was mirrored."""
    side = RIGHT if description["specimen"].startswith("RT") else LEFT
    return ({RIGHT, LEFT} - {side}).pop() if description["mirror"] else side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.side_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, required=True, help="a validation_renders folder")
    parser.add_argument("--out", type=Path, help="Markdown table")
    args = parser.parse_args(argv)
    segmenter = Segmenter(load_model(args.model), SegmentationSettings(measure=False))
    rows, counts = [], {"right": 0, "wrong": 0, "unread": 0}
    for described in sorted(args.data.glob("*.json")):
        description = json.loads(described.read_text(encoding="utf-8"))
        truth = true_side(description)
        try:
            reading = segmenter.segment(sitk.ReadImage(str(described.with_suffix(".nrrd")))).report["laterality"]
        except InputError:
            reading = {"anatomy_side": None, "spiral_score": None}
        found = reading["anatomy_side"]
        verdict = "unread" if found is None else ("right" if found == truth else "wrong")
        counts[verdict] += 1
        rows.append(f"| {described.stem} | {description['protocol']} | {description['field']} | {truth} | "
                    f"{found or '-'} | {reading['spiral_score']} | {verdict} |")
        print(rows[-1], flush=True)
    lines = [f"# Side from the anatomy: {segmenter.model.name} on {args.data}", "",
             f"{counts['right']} right, {counts['wrong']} wrong, {counts['unread']} unread of {len(rows)} scans.", "",
             "| scan | protocol | field | true side | read | spiral score | verdict |", "|---|---|---|---|---|---|---|",
             *rows]
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
