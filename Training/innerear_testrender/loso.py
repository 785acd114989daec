"""Leave-one-specimen-out evaluation on scans from the independent test renderer.

    python -m innerear_testrender.loso --model MODEL_DIR[,MODEL_DIR...] --specimens RT143,RT138 \
        --out REPORT.md
    python -m innerear_testrender.loso --model-per-specimen RT143=/a,RT138=/b,RT147=/c,LT143=/d \
        --specimens RT143,RT138,RT147,LT143 --single-unet --out REPORT.md

For each specimen it renders ``--orientations`` scans per protocol (micro-CT, clinical CT,
cone-beam CT; each a random pose, every other one mirrored into the opposite ear) and
``--tight`` 9-12 mm cochlea crops per protocol, segments each with the extension's engine
(``Segmenter``) and scores it: labyrinth and per-structure Dice, sub-voxel HD95, worst scan,
cochlea Dice on the tight crops. A model trained with a specimen must not be scored on it:
give each held-out specimen its fold's model with ``--model-per-specimen``. Note that LT143 is
the left ear of the same person as RT143, so a fold holding out one should hold out both.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .anatomy import ANATOMY_FOLDER, load_anatomy
from .pictures import case_picture
from .protocols import PROTOCOLS
from .render import FOVS, render
from .report import scan_table, summary_table, tests_table
from .scoring import Engines, Method, score


def log(message: str) -> None:
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def parse_methods(models: str | None, per_specimen: str | None, single_unet: bool) -> list[Method]:
    """Columns: each ``--model`` folder, the per-specimen folds, and with ``--single-unet`` a
    stage-1-only twin of each."""
    methods = []
    for folder in (models.split(",") if models else ([] if per_specimen else [""])):
        path = Path(folder) if folder else None
        label = path.name if path else "shipped model"
        methods.append(Method(label, {"*": path}))
    if per_specimen:
        folds = {}
        for item in per_specimen.split(","):
            specimen, _, folder = item.partition("=")
            if not folder:
                raise SystemExit(f"--model-per-specimen wants SPECIMEN=FOLDER items, got {item!r}")
            folds[specimen.strip()] = Path(folder.strip())
        methods.append(Method("held-out fold model", folds))
    if single_unet:
        methods += [Method(f"{m.name} (single U-Net)", m.folders, last_stage=1) for m in list(methods)]
    names = [m.name for m in methods]
    for index, method in enumerate(methods):  # two folders with the same name stay apart
        if names.count(method.name) > 1:
            method.name = f"{method.name} #{index + 1}"
    return methods


def scan_plan(specimen_index: int, protocols: list[str], orientations: int, tight: int, seed: int,
              fov: str, mirror: str) -> list[dict]:
    """The scans of one specimen: each with its own seed, so any one can be rendered again."""
    plan = []
    for p_index, protocol in enumerate(protocols):
        for i in range(orientations):
            flip = mirror == "all" or (mirror == "alternate" and (i + p_index) % 2 == 1)
            plan.append({"protocol": protocol, "fov": fov, "mirror": flip,
                         "seed": seed + 10000 * specimen_index + 100 * PROTOCOLS.index(protocol) + i})
        for j in range(tight):
            flip = mirror == "all" or (mirror == "alternate" and (j + p_index) % 2 == 0)
            plan.append({"protocol": protocol, "fov": "tight", "mirror": flip,
                         "seed": seed + 10000 * specimen_index + 100 * PROTOCOLS.index(protocol) + 50 + j})
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_testrender.loso", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder(s), comma-separated (default: the shipped model)")
    parser.add_argument("--model-per-specimen", help="SPECIMEN=FOLDER,... : each held-out specimen's fold model")
    parser.add_argument("--specimens", default="RT143,RT138,RT147,LT143")
    parser.add_argument("--anatomy-folder", type=Path, default=ANATOMY_FOLDER)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--orientations", type=int, default=3, help="random poses per protocol and specimen")
    parser.add_argument("--tight", type=int, default=1, help="9-12 mm cochlea crops per protocol and specimen")
    parser.add_argument("--fov", choices=[f for f in FOVS if f != "tight"], default="crop",
                        help="crop: 20-40 mm around the labyrinth; whole: the ~49 mm block")
    parser.add_argument("--fov-mm", type=float, help="fixed field of view in mm instead of the random one")
    parser.add_argument("--rotation", choices=["default", "uniform", "none"], default="default",
                        help="default: any pose for micro-CT, tilts up to 25/40 degrees for clinical/CBCT")
    parser.add_argument("--mirror", choices=["alternate", "none", "all"], default="alternate",
                        help="render the opposite ear (mirror image) for every other scan, none or all")
    parser.add_argument("--single-unet", action="store_true", help="also score stage 1 alone (last_stage=1)")
    parser.add_argument("--seed", type=int, default=20260000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-cases", type=Path, help="write every rendered scan and truth (.nrrd) here")
    parser.add_argument("--pictures", type=Path, help="write PNGs of the typical and the worst scan here")
    parser.add_argument("--out", type=Path, help="Markdown report")
    args = parser.parse_args(argv)
    command = "python -m innerear_testrender.loso " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    methods = parse_methods(args.model, args.model_per_specimen, args.single_unet)
    specimens = [s.strip() for s in args.specimens.split(",") if s.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    engines = Engines(threads=args.threads)
    rows: dict[str, list[dict]] = {m.name: [] for m in methods}
    cases: list[dict] = []
    pictures: list[tuple] = []  # (dice of the first method, name, slices, spacing)
    for s_index, specimen in enumerate(specimens):
        anatomy = load_anatomy(specimen, args.anatomy_folder)
        for item in scan_plan(s_index, protocols, args.orientations, args.tight, args.seed, args.fov, args.mirror):
            scan = render(anatomy, item["protocol"], item["seed"], fov=item["fov"], mirror=item["mirror"],
                          rotation=args.rotation, fov_mm=None if item["fov"] == "tight" else args.fov_mm)
            name = f"{specimen}-{item['protocol']}-{item['fov']}-{item['seed']}" + ("-mirror" if item["mirror"] else "")
            case = {"scan": name, "specimen": specimen, **scan.describe(), "render_s": scan.seconds}
            cases.append(case)
            if args.save_cases:
                args.save_cases.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(scan.image, str(args.save_cases / f"{name}.nrrd"), True)
                sitk.WriteImage(scan.truth, str(args.save_cases / f"{name}-truth.nrrd"), True)
                (args.save_cases / f"{name}.json").write_text(json.dumps(case, indent=1), encoding="utf-8")
            for m_index, method in enumerate(methods):
                segmenter = engines.segmenter(method.folder_for(specimen), method.last_stage)
                row, slices = score(segmenter, scan)
                row.update(scan=name, protocol=item["protocol"], fov=item["fov"])
                rows[method.name].append(row)
                if m_index == 0 and item["fov"] != "tight":
                    pictures.append((row["dice"], name, slices, tuple(scan.image.GetSpacing()[::-1])))
                log(f"{name} {method.name}: Dice {row['dice']:.3f} (C {row['dice_1']:.2f} V {row['dice_2']:.2f} "
                    f"S {row['dice_3']:.2f}), HD95 {row['hd95_mm']:.2f} mm (voxel {row['hd95_voxel_mm']:.2f}), "
                    f"render {scan.seconds:.1f} s, segment {row['segment_s']:.1f} s")
            del scan

    models = {}
    for method in methods:
        for specimen in specimens:
            manifest = engines.model(method.folder_for(specimen))
            models[str(manifest.folder)] = manifest.name
    main_rows = {n: [r for r in rs if r["fov"] != "tight"] for n, rs in rows.items()}
    tight_rows = {n: [r for r in rs if r["fov"] == "tight"] for n, rs in rows.items()}
    lines = ["# Leave-one-specimen-out evaluation on test-renderer scans", "",
             f"Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
             f"{platform.machine()} CPU, {args.threads} thread(s), engine `InnerEarSegmentationLib.pipeline.Segmenter`  ",
             "Models: " + ", ".join(f"`{name}` ({folder})" for folder, name in models.items()) + "  ",
             f"Specimens: {', '.join(specimens)}; protocols: {', '.join(protocols)}; {args.orientations} pose(s) per "
             f"protocol ({args.fov} field of view, rotation {args.rotation}, mirror {args.mirror}) + {args.tight} "
             "tight cochlea crop(s) per protocol; renderer `innerear_testrender` (independent of the training renderer)  ",
             "Mean ± sd over scans. HD95 sub-voxel: between iso-surfaces of the prediction's probability and the "
             "truth's partial-volume fraction; voxel-centre: `metrics.hd95_mm` (floored at the spacing).", "",
             "Command:", "", "```", f"cd Training && PYTHONPATH=../InnerEarSegmentation {command}", "```", "",
             f"## All poses ({args.fov} field of view)", ""]
    lines += summary_table(main_rows)
    for protocol in protocols:
        subset = {n: [r for r in rs if r["protocol"] == protocol] for n, rs in main_rows.items()}
        lines += ["", f"### {protocol}", ""] + summary_table(subset)
    if any(tight_rows.values()):
        lines += ["", "## Tight cochlea crops (9-12 mm)", ""]
        lines += summary_table(tight_rows, keys=[("dice_1", "Cochlea Dice"), ("dice", "Labyrinth Dice"),
                                                 ("hd95_mm", "HD95 sub-voxel (mm)")])
    tests = tests_table(main_rows)
    if tests:
        lines += ["", "## Paired tests (Wilcoxon signed-rank, all poses)", ""] + tests
    render_times = {p: [c["render_s"] for c in cases if c["protocol"] == p] for p in protocols}
    lines += ["", "Render time per scan (s): " + ", ".join(
        f"{p} {np.mean(t):.1f} (max {np.max(t):.1f})" for p, t in render_times.items() if t)]
    lines += ["", "## Every scan", ""] + scan_table(cases, rows)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        log(f"wrote {args.out}")
    if args.pictures and pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
        ordered = sorted(pictures, key=lambda p: p[0])
        for label, (dice, name, slices, spacing) in (("worst", ordered[0]), ("typical", ordered[len(ordered) // 2])):
            path = args.pictures / f"{label}-{name}.png"
            case_picture(path, slices, spacing)
            log(f"wrote {path} (Dice {dice:.3f}; green truth, magenta prediction)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
