"""Both ears of head-size scans: found, sided and segmented as well as each ear given alone.

    python -m innerear_training.head_check --model MODEL --heads 20 --head-seed 101 --out HEADS.md

Each head (``innerear_synth.head``, a seed training did not use) holds two real specimens, one
per side. For each true ear the report gives whether an ear was found there (a box centre within
FOUND_MM of the true labyrinth), whether its side was named right, its labyrinth Dice on the
scan's grid, and the Dice of the same ear segmented from a CROP_MM crop round it (what a user
who crops first gets). The first ``--flips`` heads are written with their slices in reverse
order under an unchanged header (a mirrored world in which the labyrinths' handedness no longer
matches where they lie): the side check must flag them. A header flipped left-right alone makes
a consistent mirror world (each ear's handedness flips with its position) and cannot be caught
from the anatomy; it is not counted here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.metrics import dice
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

from .data import EAR_REACH_MM, head_pair, within
from .report import emit

FOUND_MM = 8.0   # a box centred this close to the true labyrinth found it
CROP_MM = 30.0   # the "tight crop" each ear is also segmented from
FIELDS_MM = (24.0, 60.0, 120.0)  # the crops of one ear compared with the whole head


def _crop(image: sitk.Image, centre_mm, extent_mm: float) -> sitk.Image:
    low = image.TransformPhysicalPointToIndex([c - extent_mm / 2 for c in centre_mm])
    high = image.TransformPhysicalPointToIndex([c + extent_mm / 2 for c in centre_mm])
    low = [max(0, i) for i in low]
    high = [min(n - 1, i) for i, n in zip(high, image.GetSize())]
    return sitk.RegionOfInterest(image, [h - l + 1 for l, h in zip(low, high)], low)


def _reversed_slices(image: sitk.Image) -> sitk.Image:
    """The voxels in reverse slice order under the same header."""
    flipped = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(image)[::-1].copy())
    flipped.CopyInformation(image)
    return flipped


def check_head(segmenter: Segmenter, index: int, seed: int, specimens: list[str], flip: bool) -> list[dict]:
    """One row per true ear of head ``index``."""
    from innerear_synth.head import render_head
    from innerear_synth.render import draw_generator

    right, left = head_pair(index, specimens)
    head = render_head(draw_generator(seed, index, "head"), right, left)
    image = _reversed_slices(head.image) if flip else head.image
    truth = np.ascontiguousarray(head.labels_on(head.image)[::-1 if flip else 1])
    truth_image = _as_image(truth, image)
    clock = time.perf_counter()
    try:
        result = segmenter.segment(image)
        ears, labels = result.report["ears"], sitk.GetArrayFromImage(result.labelmap)
    except InputError:
        ears, labels = [], np.zeros_like(truth)
    seconds = time.perf_counter() - clock
    flagged = any(ear.get("laterality", {}).get("agrees") is False for ear in ears)
    rows = []
    for ear in head.ears:
        centre = np.array(ear["labyrinth_centre_mm"])
        if flip:  # the same voxels, now at the mirrored height
            z0, dz, n = image.GetOrigin()[2], image.GetSpacing()[2], image.GetSize()[2]
            centre[2] = 2 * z0 + (n - 1) * dz - centre[2]
        near = within(image, centre, EAR_REACH_MM)
        found = [e for e in ears if "located" in e
                 and np.linalg.norm(np.array(e["located"]["box_centre_mm"]) - centre) < FOUND_MM]
        values = found[0]["label_values"] if found else []
        ear_dice = dice(np.isin(labels, values) & near, (truth > 0) & near) if found else 0.0
        try:
            alone = segmenter.segment(_crop(image, centre, CROP_MM)).labelmap
            crop_truth = sitk.GetArrayFromImage(_crop(truth_image, centre, CROP_MM))
            crop_dice = dice(sitk.GetArrayViewFromImage(alone) > 0, crop_truth > 0)
        except InputError:
            crop_dice = 0.0
        rows.append({"head": index, "field_mm": head.description["extent_mm"], "voxel_mm": head.description["voxel_mm"],
                     "slice_mm": head.description["slice_mm"], "side": ear["side"], "specimen": ear["specimen"],
                     "mirrored": ear["mirrored"], "found": bool(found), "named": found[0]["side"] if found else None,
                     "dice": ear_dice, "crop_dice": crop_dice, "flip": flip, "flagged": flagged, "seconds": seconds,
                     "ears_found": len(ears)})
    return rows


def field_of_view_row(segmenter: Segmenter, index: int, seed: int, specimens: list[str]) -> list[dict]:
    """Each ear of head ``index`` segmented from crops of FIELDS_MM round it and from the whole
    head: labyrinth Dice of that ear on each (issue 12 asks them within 0.02 of each other)."""
    from innerear_synth.head import render_head
    from innerear_synth.render import draw_generator

    head = render_head(draw_generator(seed, index, "head"), *head_pair(index, specimens))
    truth = _as_image(head.labels_on(head.image), head.image)
    whole = sitk.GetArrayFromImage(segmenter.segment(head.image).labelmap)
    rows = []
    for ear in head.ears:
        centre = ear["labyrinth_centre_mm"]
        scores = {}
        for field in FIELDS_MM:
            crop = _crop(head.image, centre, field)
            near = within(crop, centre, EAR_REACH_MM)
            try:
                found = sitk.GetArrayViewFromImage(segmenter.segment(crop).labelmap) > 0
            except InputError:
                found = np.zeros(near.shape, bool)
            scores[f"{field:g}"] = dice(found & near, (sitk.GetArrayFromImage(_crop(truth, centre, field)) > 0) & near)
        near = within(head.image, centre, EAR_REACH_MM)
        scores["whole"] = dice((whole > 0) & near, (sitk.GetArrayViewFromImage(truth) > 0) & near)
        rows.append({"head": index, "side": ear["side"], "field_mm": head.description["extent_mm"], **scores})
    return rows


def _as_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.head_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--heads", type=int, default=20)
    parser.add_argument("--head-seed", type=int, default=101, help="a seed training did not use")
    parser.add_argument("--specimens", default="RT143,RT138,RT147,LT143")
    parser.add_argument("--flips", type=int, default=5, help="heads written with their slices reversed")
    parser.add_argument("--out", type=Path, help="Markdown table")
    parser.add_argument("--fields", type=int, default=0,
                        help="instead: the first N upright heads' ears at 24, 60 and 120 mm and in the whole head")
    args = parser.parse_args(argv)
    specimens = [s.strip() for s in args.specimens.split(",") if s.strip()]
    segmenter = Segmenter(load_model(args.model), SegmentationSettings(measure=False))
    if args.fields:
        rows = [row for index in range(args.flips, args.flips + args.fields)
                for row in field_of_view_row(segmenter, index, args.head_seed, specimens)]
        emit(fields_summary(rows, segmenter.model.name, args), args.out)
        return 0
    rows = []
    for index in range(args.heads):
        for row in check_head(segmenter, index, args.head_seed, specimens, index < args.flips):
            rows.append(row)
            print(row, flush=True)
    emit(summary(rows, segmenter.model.name, args), args.out)
    return 0


def fields_summary(rows: list[dict], model: str, args: argparse.Namespace) -> list[str]:
    """One row per ear: its Dice at each field and the spread."""
    keys = [f"{field:g}" for field in FIELDS_MM] + ["whole"]
    spreads = [max(r[k] for k in keys) - min(r[k] for k in keys) for r in rows]
    lines = [f"# One ear at several fields of view: {model}", "",
             f"Command: `python -m innerear_training.head_check --fields {args.fields} --head-seed {args.head_seed} "
             f"--flips {args.flips}`", "",
             f"Ears whose labyrinth Dice spans at most 0.02 over the fields: {sum(s <= 0.02 for s in spreads)} of "
             f"{len(rows)}; mean spread {np.mean(spreads):.3f}.", "",
             "| head | ear | " + " | ".join(f"{k} mm" if k != "whole" else "whole head" for k in keys) + " | spread |",
             "|---|---|" + "---|" * (len(keys) + 1)]
    lines += [f"| {r['head']} ({'x'.join(f'{v:.0f}' for v in r['field_mm'])} mm) | {r['side']} | "
              + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {s:.3f} |" for r, s in zip(rows, spreads)]
    return lines


def summary(rows: list[dict], model: str, args: argparse.Namespace) -> list[str]:
    """The report: what issue 12 asks of head-size scans, then one row per ear."""
    plain = [r for r in rows if not r["flip"]]
    flipped = [r for r in rows if r["flip"]]
    heads_ok = sum(all(r["found"] and r["named"] == r["side"] for r in plain if r["head"] == h)
                   for h in sorted({r["head"] for r in plain}))
    gaps = [r["crop_dice"] - r["dice"] for r in plain]
    lines = [f"# Both ears in head-size scans: {model}", "",
             f"Command: `python -m innerear_training.head_check --heads {args.heads} --head-seed {args.head_seed} "
             f"--specimens {args.specimens} --flips {args.flips}`", "",
             f"- heads with both ears found and named right (slices in order): {heads_ok} of {len({r['head'] for r in plain})}",
             f"- ears found: {sum(r['found'] for r in plain)} of {len(plain)}; named right: "
             f"{sum(r['named'] == r['side'] for r in plain)}",
             f"- labyrinth Dice per ear: mean {np.mean([r['dice'] for r in plain]):.3f}, worst "
             f"{min(r['dice'] for r in plain):.3f}; the same ear as a {CROP_MM:g} mm crop: mean "
             f"{np.mean([r['crop_dice'] for r in plain]):.3f}; crop minus head: mean {np.mean(gaps):+.3f}, "
             f"largest {max(gaps):+.3f}",
             f"- ears whose Dice is within 0.02 of their crop's: {sum(abs(g) <= 0.02 for g in gaps)} of {len(gaps)} "
             f"(head better by more: {sum(g < -0.02 for g in gaps)}, worse by more: {sum(g > 0.02 for g in gaps)})",
             f"- heads with reversed slices flagged by the side check: "
             f"{len({r['head'] for r in flipped if r['flagged']})} of {len({r['head'] for r in flipped})}",
             f"- seconds per head (both ears, 2 cores): median {np.median([r['seconds'] for r in rows[::2]]):.1f}", "",
             "| head | field mm | voxel / slice mm | ear | specimen | found | named | Dice | crop Dice | reversed | flagged | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['head']} | {'x'.join(f'{v:.0f}' for v in r['field_mm'])} | {r['voxel_mm']:.2f} / {r['slice_mm']:.2f} | "
              f"{r['side']} | {r['specimen']}{' (mirrored)' if r['mirrored'] else ''} | {'yes' if r['found'] else 'NO'} | "
              f"{r['named'] or '-'} | {r['dice']:.3f} | {r['crop_dice']:.3f} | {'yes' if r['flip'] else ''} | "
              f"{'yes' if r['flagged'] else ''} | {r['seconds']:.1f} |" for r in rows]
    return lines


if __name__ == "__main__":
    sys.exit(main())
