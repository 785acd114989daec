"""Model folders: a manifest.json beside one ONNX file per cascade stage.

The manifest records everything needed to reproduce a result (id, version, grid, normalisation,
labels, stages) and the sha256 of every file; a file whose checksum differs is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError
from .preprocess import NORMALISATIONS
from .labels import Label
from .slicing import VIEW_AXES

MANIFEST_NAME = "manifest.json"
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_ID = "innerear-anatomy"


@dataclass(frozen=True)
class Stage:
    """One U-Net of the cascade: which view it slices and which volumes it takes as channels.

    ``channels`` names "image" or the names of earlier stages (whose binary masks are fed).
    """

    name: str
    file: str
    view: str
    channels: tuple[str, ...]
    sha256: str
    scale: float = 1.0


@dataclass(frozen=True)
class Locator:
    """The whole-scan U-Net that finds the labyrinth before the cascade segments a fixed-size box
    around it (``roi_extent_mm``): one image channel, its own cube over the scan's whole field."""

    file: str
    view: str
    grid_size: int
    min_extent_mm: float
    sha256: str
    threshold: float = 0.5  # its finds: voxels at least this sure

    def as_stage(self) -> Stage:
        return Stage("locator", self.file, self.view, ("image",), self.sha256)


@dataclass(frozen=True)
class ModelManifest:
    folder: Path
    id: str
    version: str
    description: str
    grid_size: int
    normalisation: dict[str, Any]
    labels: tuple[Label, ...]
    stages: tuple[Stage, ...]
    threshold: float
    raw: dict[str, Any]
    min_extent_mm: float = 0.0
    mirror_average: bool = False  # run on the scan and its left-right mirror, average
    roi_extent_mm: float = 0.0  # > 0: the cascade sees a cube this size around the located labyrinth
    locator: Locator | None = None

    def stage_path(self, stage: Stage) -> Path:
        return self.folder / stage.file

    @property
    def name(self) -> str:
        return f"{self.id} {self.version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_folder() -> Path:
    """The model shipped inside the package (works offline)."""
    return MODELS_DIR / DEFAULT_MODEL_ID


def available_models(extra_folders: list[Path] | None = None) -> list[Path]:
    """Model folders shipped with the package plus those found in ``extra_folders``."""
    folders = [MODELS_DIR, *(extra_folders or [])]
    found = []
    for root in folders:
        if root.is_dir():
            found.extend(sorted(p.parent for p in root.glob(f"*/{MANIFEST_NAME}")))
    return found


def load_model(location: str | Path | None = None, verify: bool = True) -> ModelManifest:
    """Reads and checks a model folder (or its manifest.json); ``None`` means the shipped model."""
    path = Path(location) if location is not None else default_model_folder()
    manifest_path = path if path.suffix == ".json" else path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(
            f"No model manifest at {manifest_path}. Give the folder that holds manifest.json and "
            "the stage .onnx files, or leave the model unset to use the shipped one."
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"The model manifest {manifest_path} is not valid JSON ({error}). "
                         "Re-install or re-export the model.") from None
    manifest = _parse(manifest_path.parent, data, manifest_path)
    if verify:
        verify_files(manifest)
    return manifest


def _parse(folder: Path, data: dict, where: Path) -> ModelManifest:
    try:
        labels = tuple(Label.from_dict(item) for item in data["labels"])
        stages = tuple(
            Stage(
                name=str(item["name"]),
                file=str(item["file"]),
                view=str(item["view"]),
                channels=tuple(str(c) for c in item["channels"]),
                sha256=str(item["sha256"]).lower(),
                scale=float(item.get("scale", 1.0)),
            )
            for item in data["stages"]
        )
        manifest = ModelManifest(
            folder=folder,
            id=str(data["id"]),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            grid_size=int(data["grid_size"]),
            normalisation=dict(data["normalisation"]),
            labels=labels,
            stages=stages,
            threshold=float(data.get("threshold", 0.5)),
            raw=data,
            min_extent_mm=float(data.get("grid_min_extent_mm", 0.0)),
            mirror_average=bool(data.get("mirror_average", False)),
            roi_extent_mm=float(data.get("roi_extent_mm", 0.0)),
            locator=_parse_locator(data.get("locator")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"The model manifest {where} lacks or garbles the field {error}. "
                         "Re-export the model with the training tools.") from None
    _check_consistency(manifest, where)
    return manifest


def _parse_locator(item: dict | None) -> Locator | None:
    if item is None:
        return None
    return Locator(file=str(item["file"]), view=str(item.get("view", "coronal")), grid_size=int(item["grid_size"]),
                   min_extent_mm=float(item.get("grid_min_extent_mm", 0.0)), sha256=str(item["sha256"]).lower(),
                   threshold=float(item.get("threshold", 0.5)))


def _check_consistency(manifest: ModelManifest, where: Path) -> None:
    if not manifest.stages:
        raise ModelError(f"The model manifest {where} lists no stages.")
    if manifest.roi_extent_mm > 0 and manifest.locator is None:
        raise ModelError(f"The model manifest {where} asks for a {manifest.roi_extent_mm:g} mm box around "
                         "the labyrinth but names no locator to find it. Re-export the model.")
    if manifest.locator is not None and (manifest.locator.grid_size % 8 or manifest.locator.view not in VIEW_AXES):
        raise ModelError(f"The locator in {where} needs a grid that is a multiple of 8 and a view among "
                         f"{sorted(VIEW_AXES)}. Re-export the model.")
    if manifest.grid_size % 8 or manifest.grid_size < 16:
        raise ModelError(f"The model manifest {where} asks for a grid of {manifest.grid_size}; "
                         "it must be a multiple of 8 (the U-Net pools three times).")
    if manifest.normalisation.get("method") not in NORMALISATIONS:
        raise ModelError(f"The model manifest {where} has an unknown normalisation "
                         f"{manifest.normalisation.get('method')!r}; expected one of {', '.join(NORMALISATIONS)}.")
    known = {"image"}
    for stage in manifest.stages:
        if stage.view not in VIEW_AXES:
            raise ModelError(f"Stage {stage.name} in {where} has view {stage.view!r}; "
                             f"expected one of {sorted(VIEW_AXES)}.")
        unknown = [c for c in stage.channels if c not in known]
        if unknown:
            raise ModelError(f"Stage {stage.name} in {where} takes channel(s) {unknown} that no "
                             "earlier stage produces.")
        if stage.scale not in (1.0, 0.5, 0.25):
            raise ModelError(f"Stage {stage.name} in {where} has scale {stage.scale}; "
                             "supported: 1, 0.5, 0.25.")
        known.add(stage.name)
    values = [label.value for label in manifest.labels]
    if sorted(values) != list(range(1, len(values) + 1)):
        raise ModelError(f"The labels in {where} must be numbered 1..{len(values)}; got {values}.")


def verify_files(manifest: ModelManifest) -> None:
    """Refuses a model whose stage files are missing or differ from the manifest's sha256."""
    located = (manifest.locator.as_stage(),) if manifest.locator else ()
    for stage in located + manifest.stages:
        path = manifest.stage_path(stage)
        if not path.is_file():
            raise ModelError(f"Model {manifest.name}: the file {path} for stage {stage.name} is "
                             "missing. Re-install the model.")
        actual = sha256_of(path)
        if actual != stage.sha256:
            raise ModelError(
                f"Model {manifest.name}: {path.name} does not match its manifest (sha256 "
                f"{actual[:12]}… instead of {stage.sha256[:12]}…). The file is corrupt or was "
                "replaced; re-install or re-download the model."
            )


def save_manifest(folder: Path, data: dict[str, Any]) -> Path:
    """Writes manifest.json, filling in each stage's sha256 from the file beside it.

    Used by the training export; the result is checked by loading it back.
    """
    folder = Path(folder)
    data = json.loads(json.dumps(data))
    for stage in data["stages"] + ([data["locator"]] if data.get("locator") else []):
        stage["sha256"] = sha256_of(folder / stage["file"])
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    load_model(folder)
    return path
