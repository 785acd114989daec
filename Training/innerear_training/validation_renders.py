"""Writes validation scans: renders of the real specimens with a render seed training did not use,
each as a scan file beside its label file, for ``innerear_training.evaluate --data``.

    python -m innerear_training.validation_renders --out /tmp/valrender --per-specimen 4 --render-seed 1

These are the scans that guide design choices (the test renderer's scans never do), so the
folder is reproducible from this command alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import SimpleITK as sitk

from innerear_synth.render import draw_generator, load_specimen, render_scan


def write_renders(out: Path, specimens: list[str], per_specimen: int, render_seed: int) -> list[Path]:
    """Renders ``per_specimen`` scans of each specimen (the training renderer's draw for
    ``render_seed``) and writes NAME.nrrd, NAME-label.nrrd and NAME.json; returns the scans."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(per_specimen):
        for specimen in specimens:
            scan, labels_on, description = render_scan(load_specimen(specimen), draw_generator(render_seed, index, specimen))
            labels = sitk.GetImageFromArray(labels_on(scan))
            labels.CopyInformation(scan)
            name = f"{specimen}-s{render_seed}-r{index}"
            sitk.WriteImage(scan, str(out / f"{name}.nrrd"), True)
            sitk.WriteImage(labels, str(out / f"{name}-label.nrrd"), True)
            (out / f"{name}.json").write_text(json.dumps(description, indent=1), encoding="utf-8")
            written.append(out / f"{name}.nrrd")
            print(f"  {name}: {description['protocol']}, {description['field']} field, "
                  f"{description['voxel_mm']} mm voxels", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.validation_renders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--specimens", default="RT143,RT138,RT147,LT143")
    parser.add_argument("--per-specimen", type=int, default=4)
    parser.add_argument("--render-seed", type=int, default=1, help="training uses 0 (recipe 2.0)")
    args = parser.parse_args(argv)
    specimens = [s.strip() for s in args.specimens.split(",") if s.strip()]
    write_renders(args.out, specimens, args.per_specimen, args.render_seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
