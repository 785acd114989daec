"""Writes a model folder (stage1.onnx, stage2.onnx, stage3.onnx, manifest.json) for the extension.

Called at the end of training; can also re-export from checkpoints:

    python -m innerear_training.export --workdir /tmp/innerear-model-work --out MODEL_FOLDER

(uses ``stageN.pt`` and ``training.json`` from the work folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from InnerEarSegmentationLib.model import load_model, save_manifest

from .networks import build
from .onnx_export import export_stage

DESCRIPTION = (
    "Auto-context cascade of three 2D U-Nets (coronal, sagittal, axial) for the inner ear. "
    "TRAINED ON SYNTHETIC PHANTOMS ONLY (computer-generated temporal-bone CT, clinical and "
    "micro-CT resolution). It has NOT been validated on real scans and is NOT for clinical use; "
    "expect errors on real patient or specimen CT until a model trained on real, labelled scans "
    "replaces it."
)
ANATOMY_DESCRIPTION = (
    "Auto-context cascade of three 2D U-Nets (coronal, sagittal, axial) for the inner ear. "
    "Trained on CT-like images rendered with random appearance, pose, field of view and voxel size "
    "from the hand-drawn labels of {count} real human temporal bones ({specimens}; research-use data, "
    "no licence stated by its source) and on procedural phantoms. Measured only on renderings of "
    "those specimens and on phantoms (see the manifest's 'evaluation'), never on clinical patient "
    "scans: NOT for clinical use."
)


BOX_DESCRIPTION = (
    " The cascade segments a {extent:g} mm cube round the labyrinth, which a locator (a U-Net over "
    "the whole scan) finds first."
)


def describe(data: dict, roi_extent_mm: float = 0.0) -> str:
    """The manifest's description for what the model was trained on (and where it looks)."""
    anatomy = data.get("real_anatomy")
    if not anatomy:
        return DESCRIPTION
    specimens = anatomy["specimens"]
    text = ANATOMY_DESCRIPTION.format(count=len(specimens), specimens=", ".join(specimens))
    return text + (BOX_DESCRIPTION.format(extent=roi_extent_mm) if roi_extent_mm > 0 else "")


def manifest_data(stage_files: list[str], labels: list[dict], normalisation: dict, grid: int,
                  record: dict, model_id: str, version: str, description: str = DESCRIPTION,
                  min_extent_mm: float = 0.0) -> dict:
    from .train import STAGES

    extent = {"grid_min_extent_mm": min_extent_mm} if min_extent_mm > 0 else {}
    return {
        "id": model_id,
        "version": version,
        "description": description,
        "licence": "Apache-2.0",
        "grid_size": grid,
        **extent,
        "normalisation": normalisation,
        "threshold": 0.5,
        "labels": labels,
        "stages": [dict(STAGES[i], file=name) for i, name in enumerate(stage_files)],
        "training": record,
    }


LOCATOR_FILE = "locator.onnx"


def locator_entry(out: Path, source: Path, normalisation: dict) -> dict:
    """Copies a locator into ``out`` as locator.onnx and returns its manifest entry: the stage 1 of
    a whole-field model, or the locator of a model that has one (so a recipe may name the shipped
    model, whichever kind it is)."""
    model = load_model(source)
    if model.locator is not None:
        entry = dict(model.raw["locator"])
        entry.pop("sha256", None)
        shutil.copyfile(model.stage_path(model.locator.as_stage()), Path(out) / LOCATOR_FILE)
        return {**entry, "file": LOCATOR_FILE}
    if model.stages[0].channels != ("image",):
        raise SystemExit(f"--locator {source}: its stage 1 must take the image alone.")
    if model.normalisation != normalisation:
        raise SystemExit(f"--locator {source}: its normalisation is {model.normalisation}; the locator "
                         f"must share the model's {normalisation}.")
    shutil.copyfile(model.stage_path(model.stages[0]), Path(out) / LOCATOR_FILE)
    return {"file": LOCATOR_FILE, "view": model.stages[0].view, "grid_size": model.grid_size,
            "grid_min_extent_mm": model.min_extent_mm, "from": f"{model.name} {model.stages[0].name}"}


def write_model_folder(out: Path, onnx_paths: list[Path], labels: list[dict], normalisation: dict,
                       config, record: dict, model_id: str = "innerear-phantom",
                       version: str = "1.0.0", locator: Path | None = None) -> Path:
    """Copies the exported stages (and a locator's stage 1) into ``out``; writes the checked manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for path in onnx_paths:
        target = out / Path(path).name
        if Path(path).resolve() != target.resolve():
            shutil.copyfile(path, target)
        names.append(target.name)
    settings = config if isinstance(config, dict) else {"grid": config.grid, "min_extent_mm": config.min_extent_mm,
                                                        "roi_extent_mm": config.roi_extent_mm}
    roi = settings.get("roi_extent_mm", 0.0)
    record = dict(record)
    record.pop("history", None)  # the per-epoch history stays in the work folder's training.json
    data = manifest_data(names, labels, normalisation, settings["grid"], record, model_id, version,
                         description=describe(record.get("data", {}), roi),
                         min_extent_mm=settings.get("min_extent_mm", 0.0))
    if locator is not None:
        data.update(roi_extent_mm=roi, locator=locator_entry(out, locator, normalisation))
    save_manifest(out, data)
    load_model(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="folder with stageN.pt and training.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", type=Path, help="JSON label table (default: the three structures)")
    parser.add_argument("--normalisation", default='{"method": "robust-range"}')
    parser.add_argument("--id", default="innerear-phantom")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--locator", type=Path, help="whole-field model folder whose stage 1 finds the labyrinth "
                                                      "(for models trained with --roi-extent-mm)")
    args = parser.parse_args(argv)
    from . import data as datamod

    record = json.loads((args.workdir / "training.json").read_text()) if (args.workdir / "training.json").is_file() else {}
    labels = json.loads(args.labels.read_text()) if args.labels else datamod.STRUCTURE_LABELS
    paths = []
    for checkpoint in sorted(args.workdir.glob("stage[0-9].pt")):
        stored = torch.load(checkpoint, map_location="cpu")
        net = build(stored["config"])
        net.load_state_dict(stored["state"])
        net.eval()
        path = args.workdir / f"{checkpoint.stem}.onnx"
        error = export_stage(net, path, stored["config"]["in_channels"])
        print(f"{path.name}: max |onnxruntime - torch| = {error:.1e}")
        paths.append(path)
    settings = {"grid": record.get("grid_size", 128), "min_extent_mm": record.get("grid_min_extent_mm", 0.0),
                "roi_extent_mm": record.get("roi_extent_mm", 0.0)}
    if settings["roi_extent_mm"] > 0 and not args.locator:
        parser.error("these stages were trained on boxes around the labyrinth: give --locator")
    write_model_folder(args.out, paths, labels, json.loads(args.normalisation), settings, record,
                       args.id, args.version, locator=args.locator)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
