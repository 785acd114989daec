"""Gives a model folder another locator without retraining its cascade.

    python -m innerear_training.new_locator --model MODEL_FOLDER --locator /tmp/loc22 \
        --version 2.2.0 --note "what changed"

The locator is the stage 1 of a whole-field model (``train --stages 1``, e.g. the recipe
``recipes/locator-2.2.args``) or the locator of another model; it is copied in as locator.onnx,
the manifest's ``locator`` entry (with its sha256) and version are rewritten and the change is
added to the release notes, so the model folder stays one checked unit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from InnerEarSegmentationLib.model import MANIFEST_NAME, save_manifest

from .export import locator_entry


def replace_locator(model: Path, locator: Path, version: str, note: str, threshold: float = 0.5) -> dict:
    """Copies ``locator`` into ``model`` and rewrites its manifest; returns the new manifest."""
    data = json.loads((model / MANIFEST_NAME).read_text(encoding="utf-8"))
    data["locator"] = {**locator_entry(model, locator, data["normalisation"]), "threshold": threshold}
    data["version"] = version
    data.setdefault("release_notes", {})[version] = note
    save_manifest(model, data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.new_locator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder to change (in place)")
    parser.add_argument("--locator", type=Path, required=True, help="whole-field model whose stage 1 is the locator")
    parser.add_argument("--version", required=True)
    parser.add_argument("--note", required=True, help="release note for this version")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="how sure the locator must be of a voxel for it to count as a find")
    args = parser.parse_args(argv)
    data = replace_locator(args.model, args.locator, args.version, args.note, args.threshold)
    print(f"{args.model}: version {data['version']}, locator from {data['locator']['from']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
