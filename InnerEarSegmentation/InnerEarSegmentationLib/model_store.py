"""Import models into one cache folder shared by every Slicer version (and the command line).

A model arrives as a folder, a .zip, or a URL (of a .zip or of a manifest.json whose stage files
sit beside it). It is assembled in a staging folder inside the cache, every file is checked
against the manifest's sha256 (``model.load_model``), and only then renamed into place, so a
half-downloaded or tampered model never appears in the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from .errors import ModelError
from .model import MANIFEST_NAME, ModelManifest, load_model, sha256_of
from .progress import Progress

CACHE_ENV = "INNER_EAR_SEGMENTATION_HOME"
CHUNK = 1 << 20


def cache_root() -> Path:
    """``$INNER_EAR_SEGMENTATION_HOME`` or ~/.inner-ear-segmentation: outside any Slicer install."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".inner-ear-segmentation")


def models_dir(root: Optional[Path] = None) -> Path:
    return Path(root or cache_root()) / "models"


def cached_models(root: Optional[Path] = None) -> list[Path]:
    """Model folders in the cache (each holds a manifest.json)."""
    folder = models_dir(root)
    return sorted(p.parent for p in folder.glob(f"*/{MANIFEST_NAME}")) if folder.is_dir() else []


def _is_url(source: str) -> bool:
    return re.match(r"^(https?|file)://", source) is not None


def download(url: str, target: Path, progress: Optional[Progress] = None, timeout: float = 60.0) -> Path:
    """Streams ``url`` to ``target``, reporting the fraction done; Cancel stops between chunks."""
    progress = progress or Progress()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as stream:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while True:
                progress.check()
                block = response.read(CHUNK)
                if not block:
                    break
                stream.write(block)
                done += len(block)
                progress.report(done / total if total else 0.0, f"downloading {Path(target).name}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ModelError(f"Could not download {url} ({getattr(error, 'reason', error)}). Check the "
                         "address and the network, or download the file and import it from disk.") from None
    return target


def _stage_files(manifest_path: Path) -> list[str]:
    """The stage file names a manifest lists, refusing anything that is not a plain file name."""
    try:
        files = [str(stage["file"]) for stage in json.loads(manifest_path.read_text("utf-8"))["stages"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{manifest_path} is not a model manifest ({error}).") from None
    for name in files:
        if Path(name).name != name or name in ("", ".", ".."):
            raise ModelError(f"The manifest {manifest_path} names the file {name!r}; stage files must "
                             "be plain names beside the manifest.")
    return files


def _copy_model(source_folder: Path, target: Path) -> None:
    """Copies manifest.json and the stage files it lists (nothing else) into ``target``."""
    target.mkdir(parents=True)
    manifest = source_folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ModelError(f"No {MANIFEST_NAME} in {source_folder}; a model folder holds the manifest "
                         "and its stage .onnx files.")
    for name in [MANIFEST_NAME, *_stage_files(manifest)]:
        if not (source_folder / name).is_file():
            raise ModelError(f"The model in {source_folder} lacks {name}, which its manifest lists.")
        shutil.copy2(source_folder / name, target / name)


def _unpack(archive: Path, staging: Path) -> Path:
    """Extracts a .zip safely and returns the folder that holds manifest.json."""
    if not zipfile.is_zipfile(archive):
        raise ModelError(f"{archive.name} is not a .zip archive or a model folder.")
    unpacked = staging / "unpacked"
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            resolved = (unpacked / member).resolve()
            if unpacked.resolve() not in resolved.parents and resolved != unpacked.resolve():
                raise ModelError(f"{archive.name} contains the unsafe path {member!r}; refused.")
        bundle.extractall(unpacked)
    found = sorted(unpacked.rglob(MANIFEST_NAME), key=lambda p: len(p.parts))
    if not found:
        raise ModelError(f"{archive.name} holds no {MANIFEST_NAME}.")
    return found[0].parent


def _fetch_url(url: str, staging: Path, progress: Progress, timeout: float) -> Path:
    """Downloads a .zip, or a manifest.json plus the stage files beside it; returns the folder."""
    name = Path(urllib.parse.urlparse(url).path).name or "model.zip"
    if name.endswith(".json"):
        folder = staging / "downloaded"
        folder.mkdir()
        download(url, folder / MANIFEST_NAME, progress.span(0.0, 0.05), timeout)
        files = _stage_files(folder / MANIFEST_NAME)
        for index, file_name in enumerate(files):
            part = progress.span(0.05 + 0.95 * index / len(files), 0.05 + 0.95 * (index + 1) / len(files))
            download(urllib.parse.urljoin(url, file_name), folder / file_name, part, timeout)
        return folder
    return _unpack(download(url, staging / name, progress, timeout), staging)


def _same_model(a: ModelManifest, b: Path) -> bool:
    return (b / MANIFEST_NAME).is_file() and sha256_of(a.folder / MANIFEST_NAME) == sha256_of(b / MANIFEST_NAME)


def _verifies(folder: Path) -> bool:
    try:
        load_model(folder)
    except ModelError:
        return False
    return True


def import_model(source: str | Path, root: Optional[Path] = None, progress: Optional[Progress] = None,
                 timeout: float = 60.0) -> Path:
    """Verifies a model from a folder, .zip or URL and installs it in the cache; returns its folder."""
    progress = progress or Progress()
    destination_root = models_dir(root)
    destination_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=destination_root))
    try:
        text = str(source)
        if _is_url(text):
            folder = _fetch_url(text, staging, progress.span(0.0, 0.9), timeout)
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise ModelError(f"{path} does not exist; give a model folder, a .zip or a URL.")
            folder = path.parent if path.name == MANIFEST_NAME else path
            folder = folder if folder.is_dir() else _unpack(folder, staging)
        candidate = staging / "model"
        _copy_model(folder, candidate)
        progress.report(0.95, "checking the model files")
        manifest = load_model(candidate)  # raises ModelError on any sha256 mismatch
        safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{manifest.id}-{manifest.version}")
        destination = destination_root / safe_name
        if destination.exists():
            if _same_model(manifest, destination) and _verifies(destination):
                progress.report(1.0, "model already installed")
                return destination
            os.rename(destination, staging / "previous")
        os.rename(candidate, destination)
        progress.report(1.0, f"installed {manifest.name}")
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)
