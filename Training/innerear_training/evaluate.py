"""Evaluates an exported model through the real inference engine (onnxruntime) and writes the
paper's Table 1 for the cascade and for the single U-Net (stage 1 alone + largest component).

    python -m innerear_training.evaluate --model MODEL_FOLDER --phantoms 12 --seed-start 9000 \
        --modalities clinical,microct --out RESULTS.md
    python -m innerear_training.evaluate --model MODEL_FOLDER --data FOLDER_OF_SCANS_AND_LABELS

Held-out phantoms must use seeds that training did not (training uses 1000.. by default).
Metrics are computed on each scan's own grid (the labelmap the extension would give the user);
the Wilcoxon signed-rank test compares cascade and single U-Net case by case.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import stats

from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.metrics import compute_metrics, per_label_dice
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

from . import data as datamod
from .report import emit

METHODS = {"cascade": None, "single U-Net": 1}
TABLE = [("dice", "Dice"), ("jaccard", "Jaccard"), ("accuracy", "Accuracy"), ("precision", "Precision"),
         ("recall", "Recall"), ("specificity", "Specificity"), ("roc_auc", "ROC AUC"),
         ("hausdorff_mm", "Hausdorff (mm)"), ("hd95_mm", "HD95 (mm)"), ("msd_mm", "Mean surface distance (mm)")]


def log(message: str) -> None:
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def phantom_scan_and_truth(seed: int, modality: str, microct_max_size=None, cache: Path | None = None):
    """A held-out phantom's image and its labels on the image's own grid (cached as .mha)."""
    options = datamod.phantom_options(modality, microct_max_size)
    key = f"{modality}-{seed}-{options.get('max_size', 'default')}-{datamod._source_key()}"
    if cache is not None and (Path(cache) / f"{key}-image.mha").is_file() and (Path(cache) / f"{key}-labels.mha").is_file():
        return (sitk.ReadImage(str(Path(cache) / f"{key}-image.mha")),
                sitk.GetArrayFromImage(sitk.ReadImage(str(Path(cache) / f"{key}-labels.mha"))))
    phantom = datamod.phantom_scan(seed, modality, **options)
    image = phantom.image()
    truth = phantom.labels_on(image)
    truth_image = truth if isinstance(truth, sitk.Image) else None
    truth = sitk.GetArrayFromImage(truth) if isinstance(truth, sitk.Image) else np.asarray(truth)
    truth = truth.astype(np.uint8)
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        if truth_image is None:
            truth_image = sitk.GetImageFromArray(truth)
            truth_image.CopyInformation(image)
        sitk.WriteImage(sitk.Cast(truth_image, sitk.sitkUInt8), str(Path(cache) / f"{key}-labels.mha"))
        sitk.WriteImage(image, str(Path(cache) / f"{key}-image.mha"))
    return image, truth


def phantom_scans(seeds, modalities, microct_max_size=None, cache: Path | None = None):
    """(name, modality, image, truth labels on the image's own grid) for held-out phantoms."""
    for index, seed in enumerate(seeds):
        modality = modalities[index % len(modalities)]
        image, truth = phantom_scan_and_truth(seed, modality, microct_max_size, cache)
        yield f"{modality}-{seed}", modality, image, truth


def folder_scans(folder: Path):
    for scan, label_file in datamod.find_labelled_scans(folder):
        image = sitk.ReadImage(str(scan))
        labels = sitk.ReadImage(str(label_file))
        labels = sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        yield datamod._strip_extension(scan.name)[0], "scan", image, sitk.GetArrayFromImage(labels)


def evaluate_case(segmenter: Segmenter, image: sitk.Image, truth: np.ndarray, values: list[int]) -> dict:
    spacing_zyx = tuple(float(s) for s in image.GetSpacing()[::-1])
    started = time.perf_counter()
    try:
        result = segmenter.segment(image)
        prediction = sitk.GetArrayFromImage(result.labelmap)
        probability = (sitk.GetArrayFromImage(result.foreground_probability)
                       if result.foreground_probability is not None else None)
    except InputError:  # nothing found: an empty prediction, scored as such
        prediction = np.zeros_like(truth)
        probability = None
    seconds = time.perf_counter() - started
    row = compute_metrics(prediction > 0, truth > 0, spacing_zyx, probability)
    if len(values) > 1:
        for value, score in per_label_dice(prediction, truth, values).items():
            row[f"dice_{value}"] = score
    row["seconds"] = seconds
    return row


def mean_sd(values) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return "-"
    if not np.all(np.isfinite(values)):
        finite = values[np.isfinite(values)]
        return f"{np.mean(finite):.3f} ± {np.std(finite, ddof=1) if finite.size > 1 else 0:.3f} ({values.size - finite.size} not finite)"
    sd = np.std(values, ddof=1) if values.size > 1 else float("nan")
    return f"{values.mean():.3f} ± {sd:.3f}"


def wilcoxon(a, b) -> str:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2 or np.allclose(a, b):
        return "n/a"
    try:
        return f"{stats.wilcoxon(a, b).pvalue:.2g}"
    except ValueError:
        return "n/a"


def table(rows: dict[str, list[dict]], keys: list[tuple[str, str]]) -> list[str]:
    names = list(rows)
    lines = ["| Metric | " + " | ".join(names) + " | Wilcoxon p (cascade vs single) |",
             "|---|" + "---|" * len(names) + "---|"]
    for key, title in keys:
        if key not in rows[names[0]][0]:
            continue
        columns = [mean_sd([r[key] for r in rows[n]]) for n in names]
        p = wilcoxon([r[key] for r in rows[names[0]]], [r[key] for r in rows[names[1]]]) if len(names) > 1 else "-"
        lines.append(f"| {title} | " + " | ".join(columns) + f" | {p} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, help="folder of real scans + label files")
    parser.add_argument("--phantoms", type=int, default=12, help="held-out phantoms (both modalities)")
    parser.add_argument("--seed-start", type=int, default=9000)
    parser.add_argument("--modalities", default="clinical,microct")
    parser.add_argument("--microct-max-size", type=int, default=400,
                        help="cap on micro-CT phantom voxels per axis (400: about 0.05-0.065 mm)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/innerear-eval-cache"),
                        help="folder caching the generated held-out phantoms")
    parser.add_argument("--out", type=Path, help="Markdown file for the results")
    parser.add_argument("--also-last-stage", type=int, action="append", default=[],
                        help="also report the cascade stopped after stage N (an extra column)")
    args = parser.parse_args(argv)
    command = "python -m innerear_training.evaluate " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    model = load_model(args.model)
    values = [label.value for label in model.labels]
    label_names = {label.value: label.name for label in model.labels}
    methods = dict(METHODS)
    for last in args.also_last_stage:
        methods[f"stages 1-{last}"] = last
    segmenters = {name: Segmenter(model, SegmentationSettings(device="cpu", last_stage=last, keep_probability=True,
                                                              threads=args.threads))
                  for name, last in methods.items()}
    if args.data:
        scans = folder_scans(args.data)
        source = f"scans and labels in {args.data}"
    else:
        modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
        seeds = range(args.seed_start, args.seed_start + args.phantoms)
        scans = phantom_scans(seeds, modalities, args.microct_max_size, args.cache)
        source = (f"{args.phantoms} held-out synthetic phantoms (seeds {args.seed_start}-"
                  f"{args.seed_start + args.phantoms - 1}, modalities alternating {', '.join(modalities)})")
    rows = {name: [] for name in methods}
    cases = []
    for name, modality, image, truth in scans:
        if not truth.any():
            log(f"{name}: the label file is empty; skipped")
            continue
        cases.append({"name": name, "modality": modality, "size": list(image.GetSize()),
                      "spacing": [round(s, 4) for s in image.GetSpacing()]})
        for method, segmenter in segmenters.items():
            row = evaluate_case(segmenter, image, truth, values)
            row["modality"] = modality
            rows[method].append(row)
            log(f"{name} ({image.GetSize()}, {image.GetSpacing()[0]:.3f} mm) {method}: Dice {row['dice']:.4f}"
                + "".join(f", {label_names[v]} {row[f'dice_{v}']:.3f}" for v in values if f"dice_{v}" in row)
                + f", HD {row['hausdorff_mm']:.2f} mm, {row['seconds']:.1f} s")
        del image, truth

    structure_keys = [(f"dice_{v}", f"Dice {label_names[v]}") for v in values] if len(values) > 1 else []
    keys = TABLE + structure_keys + [("seconds", "Seconds per scan (CPU, incl. resampling)")]
    lines = [f"# Evaluation of {model.name}", "",
             f"Model folder: `{model.folder}`  ", f"Data: {source}  ",
             f"Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
             f"{platform.machine()} CPU, {args.threads} thread(s), onnxruntime through "
             "`InnerEarSegmentationLib.pipeline.Segmenter`  ",
             "Metrics on each scan's own voxel grid (labyrinth = all structures together); "
             "mean ± sd over scans; Wilcoxon signed-rank test pairs the two methods scan by scan.", "",
             "Command:", "", "```", f"cd Training && PYTHONPATH=../InnerEarSegmentation {command}", "```", "",
             f"## All scans (n = {len(cases)})", ""]
    lines += table(rows, keys)
    for modality in sorted({c["modality"] for c in cases}):
        subset = {m: [r for r in rs if r["modality"] == modality] for m, rs in rows.items()}
        count = len(subset["cascade"])
        lines += ["", f"## {modality} (n = {count})", ""]
        lines += table(subset, [k for k in keys if k[0] in ("dice", "jaccard", "precision", "recall", "hausdorff_mm")
                                or k[0].startswith("dice_") or k[0] == "seconds"])
    lines += ["", "## Per scan (labyrinth Dice)", "", "| Scan | Size | Spacing (mm) | Cascade | Single U-Net |", "|---|---|---|---|---|"]
    for case, c_row, s_row in zip(cases, rows["cascade"], rows["single U-Net"]):
        lines.append(f"| {case['name']} | {'x'.join(map(str, case['size']))} | {case['spacing'][0]} | "
                     f"{c_row['dice']:.4f} | {s_row['dice']:.4f} |")
    emit(lines, args.out)
    if args.out:
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
