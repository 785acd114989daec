"""Random appearance (the idea of SynthSeg): gray values, texture and scanner physics drawn afresh
for every training scan, so the network cannot lean on any one scanner.

Only the physics order is kept: air < soft tissue and fluid < bone, with the otic capsule at least
as dense as the bone around it. Values are drawn in a unit scale (air near 0, dense bone near 1)
and written out in HU (clinical CT) or in arbitrary units (cone-beam, micro-CT).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import specimens as sp
from .spatial import log_uniform

# Tissue classes of the derived map's labels.
AIR_LABELS = (sp.AIR, sp.EXTERNAL_CANAL)
BONE_LABELS = (sp.BONE, sp.MALLEUS, sp.INCUS, sp.STAPES)
FLUID_LABELS = (sp.COCHLEA, sp.VESTIBULE, sp.CANALS, sp.VESTIBULAR_AQUEDUCT, sp.INTERNAL_CANAL)
NERVE_LABELS = (sp.SUP_VESTIBULAR_NERVE, sp.INF_VESTIBULAR_NERVE, sp.COCHLEAR_NERVE, sp.FACIAL_NERVE,
                sp.CHORDA_TYMPANI)
VESSEL_LABELS = (sp.CAROTID, sp.SINUS_DURA)
JOINT_LABELS = (sp.TMJ,)


def smooth_noise(rng: np.random.Generator, shape: tuple, scale_voxels: float) -> np.ndarray:
    """Zero-mean, unit-sd noise smooth over ``scale_voxels`` ([z, y, x] float32): drawn on a
    coarse mesh and interpolated linearly (SimpleITK's resampler: threaded, 10x scipy's zoom)."""
    step = max(float(scale_voxels), 1.0)
    coarse_shape = [int(np.ceil(n / step)) + 2 for n in shape]
    coarse = sitk.GetImageFromArray(rng.standard_normal(coarse_shape).astype(np.float32))
    coarse.SetSpacing([step] * 3)
    coarse.SetOrigin([-step / 2] * 3)
    fine = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkUInt8)
    field = sitk.GetArrayFromImage(sitk.Resample(coarse, fine, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    field -= field.mean()
    return field / (field.std() + 1e-6)


def draw_tissue_values(rng: np.random.Generator) -> dict[str, float]:
    """Unit-scale gray values that keep air < soft tissue, fluid < bone <= otic capsule."""
    air = rng.uniform(0.0, 0.15)
    soft = rng.uniform(0.22, 0.5)
    bone = rng.uniform(max(soft + 0.2, 0.55), 0.92)
    values = {
        "air": air, "soft": soft, "bone": bone,
        "capsule": bone + rng.uniform(0.0, 0.6) * (1.0 - bone),
        "fluid": soft + rng.uniform(-0.08, 0.06),
        "nerve": soft + rng.uniform(-0.05, 0.05),
        "vessel": soft + rng.uniform(-0.02, 0.1),
        "joint": soft + rng.uniform(0.0, 0.4) * (bone - soft),
    }
    if rng.random() < 0.15:  # specimen immersed in fluid: air cells and surroundings fill
        values["air"] = values["fluid"] + rng.uniform(-0.05, 0.02)
    return values


def tissue_volume(anatomy: np.ndarray, labyrinth_distance_mm: np.ndarray, spacing_mm: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The noiseless, unblurred unit-scale image of a derived map ([z, y, x] float32)."""
    values = draw_tissue_values(rng)
    lookup = np.full(sp.LABEL_COUNT, values["bone"], dtype=np.float32)
    for labels, key in ((AIR_LABELS, "air"), (BONE_LABELS, "bone"), (FLUID_LABELS, "fluid"),
                        (NERVE_LABELS, "nerve"), (VESSEL_LABELS, "vessel"), (JOINT_LABELS, "joint")):
        lookup[list(labels)] = values[key]
    image = lookup[anatomy]
    bone = np.isin(anatomy, BONE_LABELS)
    # Bone texture (marrow, vessels, pneumatisation below the voxel scale): smooth noise.
    texture = rng.uniform(0.0, 0.25) * (values["bone"] - values["soft"])
    scale = rng.uniform(0.3, 1.2) / spacing_mm
    image[bone] += texture * smooth_noise(rng, anatomy.shape, scale)[bone]
    # The otic capsule: dense, homogeneous bone within a few mm of the labyrinth.
    reach = rng.uniform(0.8, 2.5)
    capsule = bone & (labyrinth_distance_mm < reach)
    weight = np.clip(1.0 - labyrinth_distance_mm[capsule] / reach, 0, 1) ** 0.5
    image[capsule] = image[capsule] * (1 - weight) + values["capsule"] * weight
    soft = ~bone & (anatomy != sp.AIR)
    image[soft] += rng.uniform(0.0, 0.03) * smooth_noise(rng, anatomy.shape, 2.0 / spacing_mm)[soft]
    return image, values


def scanner_physics(image: np.ndarray, rng: np.random.Generator,
                    protocol: str) -> np.ndarray:
    """Bias, cupping, streaks and noise on the scan's own grid ([z, y, x], unit scale)."""
    shape = image.shape
    if rng.random() < 0.5:  # smooth multiplicative bias (detector gain, beam hardening)
        image = image * (1 + rng.uniform(0.0, 0.12) * smooth_noise(rng, shape, max(shape) / 3))
    if protocol == "cbct" or rng.random() < 0.2:  # cupping: darker centre in each axial plane
        y, x = np.meshgrid(np.linspace(-1, 1, shape[1]), np.linspace(-1, 1, shape[2]), indexing="ij")
        image = image + rng.uniform(0.0, 0.12) * ((x ** 2 + y ** 2) / 2 - 0.5)[None]
    if protocol == "cbct" or rng.random() < 0.2:  # streaks: a few straight bands in the axial plane
        y, x = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
        for _ in range(int(rng.integers(1, 6))):
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(-0.5, 0.5) * max(shape[1:])
            distance = (x - shape[2] / 2) * np.cos(angle) + (y - shape[1] / 2) * np.sin(angle) - offset
            width = rng.uniform(0.5, 3.0)
            image = image + rng.uniform(-0.06, 0.06) * np.exp(-(distance / width) ** 2)[None]
    sd = log_uniform(rng, 0.004, 0.09) * (1.5 if protocol == "cbct" else 1.0)
    noise = rng.standard_normal(shape).astype(np.float32)
    if rng.random() < 0.5:  # correlated noise (reconstruction kernel)
        noise = ndimage.gaussian_filter(noise, rng.uniform(0.4, 1.2))
        noise /= noise.std() + 1e-6
    return (image + sd * noise).astype(np.float32)


def to_units(image: np.ndarray, rng: np.random.Generator, protocol: str) -> tuple[np.ndarray, dict]:
    """Clinical CT in HU (int16); cone-beam and micro-CT in arbitrary units (offset and gain)."""
    if protocol == "clinical":
        gain = rng.uniform(2200.0, 4000.0)
        out = np.clip(-1000.0 + image * gain, -1024, 3071)
        return np.round(out).astype(np.int16), {"units": "HU", "gain": round(gain, 1)}
    gain = log_uniform(rng, 50.0, 30000.0)
    offset = rng.uniform(-0.5, 2.0) * gain
    out = offset + image * gain
    if rng.random() < 0.5:
        low, high = np.percentile(out, [0.01, 99.99])
        out = np.round(np.clip((out - low) / max(high - low, 1e-6), 0, 1) * 65535).astype(np.uint16)
        return out, {"units": "arbitrary uint16", "gain": round(gain, 2)}
    return out.astype(np.float32), {"units": "arbitrary float", "gain": round(gain, 2), "offset": round(offset, 2)}
