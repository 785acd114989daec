"""What the benchmark runs on: phantom scan files, a published-size model, int8 variants.

Everything is written once into a work folder and reused by later runs (same seed, same files).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.phantom import Phantom, make_phantom

SEED = 2026
FOV_MM = 24.0  # a cube, so that every scan is exactly size³ (phantom FOVs are 18-26 mm)
# A size-N scan is a phantom rendered directly (N <= 512) or a phantom of N / UPSAMPLE voxels
# interpolated slab by slab (rendering 900³ directly needs > 10 GB and many minutes).
UPSAMPLE_ABOVE = 512


def phantom_recipe(size: int) -> dict:
    """make_phantom arguments for a scan of size³ voxels (the spacing is raised to fit)."""
    if size <= UPSAMPLE_ABOVE:
        return {"seed": SEED, "modality": "clinical", "spacing_mm": 0.001, "fov_mm": FOV_MM, "max_size": size,
                "factor": 1}
    factor = next(f for f in (3, 4, 2, 5, 6) if size % f == 0 and size // f <= UPSAMPLE_ABOVE)
    return {"seed": SEED, "modality": "microct", "spacing_mm": 0.001, "fov_mm": FOV_MM, "max_size": size // factor,
            "factor": factor}


def phantom_of(recipe: dict) -> Phantom:
    return make_phantom(recipe["seed"], recipe["modality"], spacing_mm=recipe["spacing_mm"],
                        fov_mm=recipe["fov_mm"], max_size=recipe["max_size"])


def fingerprint(phantom: Phantom) -> dict:
    """What must not change between writing a cached scan and using its phantom as the truth
    (the phantom generator is still being worked on)."""
    lab = phantom.labyrinth()
    return {"size": list(phantom.size), "spacing": [round(s, 9) for s in phantom.spacing_mm],
            "origin": [round(o, 6) for o in phantom.origin_mm],
            "labyrinth_box": [round(v, 6) for v in (*lab.lo, *lab.hi)]}


def write_mha_header(path: Path, size_xyz, spacing, origin, element: str = "MET_SHORT") -> None:
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        f"Offset = {' '.join(repr(float(v)) for v in origin)}\n"
        "CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n"
        f"ElementSpacing = {' '.join(repr(float(v)) for v in spacing)}\n"
        f"DimSize = {' '.join(str(int(v)) for v in size_xyz)}\n"
        f"ElementType = {element}\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode("ascii"))


def upsampled_slabs(volume: np.ndarray, factor: int, slab: int = 24):
    """Trilinear upsampling of a [z, y, x] volume by ``factor``, as int16 slabs along z (voxel
    centres aligned as for a grid of the same extent: fine j <-> coarse (j + 0.5) / f - 0.5)."""
    shape = [n * factor for n in volume.shape]
    coords = [np.clip((np.arange(n) + 0.5) / factor - 0.5, 0, m - 1) for n, m in zip(shape, volume.shape)]
    # y then x first (whole volume, float32 at f² the size of one source z-slab at a time)
    for z0 in range(0, shape[0], slab):
        zs = coords[0][z0:z0 + slab]
        lo = int(np.floor(zs.min()))
        hi = min(int(np.ceil(zs.max())) + 1, volume.shape[0])
        block = volume[lo:hi].astype(np.float32)
        zz, yy, xx = np.meshgrid(zs - lo, coords[1], coords[2], indexing="ij")
        values = ndimage.map_coordinates(block, [zz, yy, xx], order=1, mode="nearest")
        yield np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def scan_file(size: int, folder: Path, log=print) -> tuple[Path, Path | None, dict]:
    """The int16 phantom scan of size³ voxels as an uncompressed .mha (labels too when rendered
    directly); returns (scan, labels or None, recipe)."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = phantom_recipe(size)
    scan, labels = folder / f"phantom-{size}.mha", folder / f"phantom-{size}-label.nrrd"
    sidecar = folder / f"phantom-{size}.json"
    phantom = phantom_of(recipe)
    stamp = {"recipe": recipe, "phantom": fingerprint(phantom)}
    if scan.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == stamp:
        return scan, (labels if labels.is_file() else None), recipe
    for stale in (scan, labels, sidecar):
        stale.unlink(missing_ok=True)
    log(f"rendering phantom {phantom.size} ({recipe['modality']}, seed {recipe['seed']}) for the {size}³ scan")
    image = phantom.image()
    array = sitk.GetArrayViewFromImage(image)
    spacing, origin = np.array(image.GetSpacing()), np.array(image.GetOrigin())
    temporary = scan.with_suffix(".part")
    factor = recipe["factor"]
    if factor == 1:
        write_mha_header(temporary, image.GetSize(), spacing, origin)
        with open(temporary, "ab") as stream:
            stream.write(np.clip(np.rint(array), -32768, 32767).astype("<i2").tobytes())
        sitk.WriteImage(phantom.labels(), str(labels), True)
    else:
        fine_spacing = spacing / factor
        fine_origin = origin - spacing / 2 + fine_spacing / 2
        write_mha_header(temporary, [n * factor for n in image.GetSize()], fine_spacing, fine_origin)
        with open(temporary, "ab") as stream:
            for slab in upsampled_slabs(np.asarray(array), factor):
                stream.write(slab.astype("<i2").tobytes())
        labels = None
    temporary.rename(scan)
    sidecar.write_text(json.dumps(stamp))
    return scan, (labels if labels and labels.is_file() else None), recipe


# ----------------------------------------------------------------------------- models
PUBLISHED_STAGES = [
    {"name": "stage1", "file": "stage1.onnx", "view": "coronal", "channels": ["image"], "scale": 0.5},
    {"name": "stage2", "file": "stage2.onnx", "view": "sagittal", "channels": ["image", "stage1"]},
    {"name": "stage3", "file": "stage3.onnx", "view": "axial", "channels": ["image", "stage2", "stage1"]},
]


def published_model(folder: Path, base: int = 32, grid: int = 256, log=print) -> Path:
    """An UNTRAINED cascade of the published size (U-Net base 32, 256³ grid, stage 1 at scale 0.5),
    exported with the training code (BatchNorm folded, softmax output). Speed only: its masks are noise."""
    if (folder / "manifest.json").is_file():
        return folder
    import torch
    from innerear_training.data import STRUCTURE_LABELS
    from innerear_training.networks import UNet2D
    from innerear_training.onnx_export import export_stage

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for stage in PUBLISHED_STAGES:
        net = UNet2D(len(stage["channels"]), len(STRUCTURE_LABELS) + 1, base=base).eval()
        export_stage(net, folder / stage["file"], len(stage["channels"]))
    log(f"exported an untrained base-{base} cascade to {folder}")
    save_manifest(folder, {
        "id": f"untrained-unet{base}-grid{grid}", "version": "0",
        "description": "UNTRAINED, random weights: timing only (published U-Net size).",
        "grid_size": grid, "normalisation": {"method": "volume-zscore"}, "threshold": 0.5,
        "labels": STRUCTURE_LABELS, "stages": PUBLISHED_STAGES,
    })
    return folder


class SliceReader:
    """onnxruntime CalibrationDataReader over [C, Z, Y, X] stacks: batches of slices along an axis."""

    def __init__(self, input_name: str, stacks: list[np.ndarray], axis: int, per_stack: int = 24,
                 batch: int = 8, seed: int = 0) -> None:
        from InnerEarSegmentationLib.slicing import VIEW_AXES, extract_slices

        view = {v: k for k, v in VIEW_AXES.items()}[axis]
        rng = np.random.default_rng(seed)
        batches = []
        for stack in stacks:
            count = stack.shape[axis + 1]
            chosen = np.sort(rng.choice(count, size=min(per_stack, count), replace=False))
            slices = np.concatenate([extract_slices(stack, view, int(s), int(s) + 1) for s in chosen])
            batches += [slices[i:i + batch] for i in range(0, len(slices), batch)]
        self.items = iter([{input_name: b} for b in batches])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # not needed by quantize_static, present for the protocol
        pass


def quantize_folder(source: Path, target: Path, calibration: dict[str, list[np.ndarray]],
                    method: str = "MinMax", log=print) -> Path:
    """Static QDQ int8 copy of a model folder (uint8 activations, per-channel int8 weights):
    ``calibration`` maps stage name -> list of [C, Z, Y, X] stage inputs."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from InnerEarSegmentationLib.slicing import VIEW_AXES

    model = load_model(source)
    target.mkdir(parents=True, exist_ok=True)
    for stage in model.stages:
        prepared = target / f"{stage.name}.pre.onnx"
        quant_pre_process(str(model.stage_path(stage)), str(prepared), skip_symbolic_shape=True)
        import onnx

        input_name = onnx.load(str(prepared)).graph.input[0].name
        reader = SliceReader(input_name, calibration[stage.name], VIEW_AXES[stage.view])
        quantize_static(
            str(prepared), str(target / stage.file), reader, quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=getattr(CalibrationMethod, method),
            op_types_to_quantize=["Conv", "ConvTranspose", "MaxPool", "Concat", "Relu"],
        )
        prepared.unlink()
    data = json.loads(json.dumps(model.raw))
    data["id"] = f"{model.id}-int8"
    data["description"] = f"int8 QDQ ({method} calibration) of {model.id} {model.version}. " + model.description
    save_manifest(target, data)
    log(f"quantised {model.name} -> {target}")
    return target


def reset(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
