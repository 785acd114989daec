"""The three acquisition protocols and the per-scan draw of their physical parameters.

Tissues are given as attenuation relative to water at a clinical effective energy (CT numbers at
120 kVp), then moved to the protocol's energy: below ~50 keV the photoelectric effect makes bone
far more attenuating than water, so micro-CT has a larger bone/fluid contrast than clinical CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("microct", "clinical", "cbct")

# CT number (HU, 120 kVp) of each anatomy label: (low, high) of the per-scan draw.
TISSUE_HU = {
    0: (-1000, -1000),  # air, mastoid and middle-ear air cells
    1: (1100, 1500),  # petrous / mastoid bone (the otic capsule adds to it, see CAPSULE_HU)
    2: (1500, 1900), 3: (1500, 1900), 4: (1300, 1800),  # ossicles: compact bone
    6: (5, 15),  # internal auditory canal: CSF
    7: (30, 40), 8: (30, 40), 9: (30, 40), 10: (30, 45), 11: (30, 45),  # nerves
    12: (40, 55),  # carotid: blood, no contrast agent
    13: (35, 55),  # sigmoid sinus and dura
    14: (5, 20),  # vestibular aqueduct: endolymph
    15: (150, 400),  # temporomandibular joint: cartilage, soft tissue and thin bone
    16: (-1000, -1000),  # external auditory canal: air
    17: (0, 20), 18: (0, 20), 19: (0, 20),  # perilymph / endolymph in the labyrinth
}
CAPSULE_HU = (600, 1000)  # the otic capsule is the densest bone in the body (~2000-2400 HU)
TEXTURE_HU = (60, 200)  # smooth density variation of ordinary bone
UNKNOWN_LABEL_HU = 40  # any other label: soft tissue


@dataclass
class ScanParameters:
    """Every physical choice of one rendered scan (drawn from a seed, reported with the scan)."""

    protocol: str
    spacing: tuple[float, float, float]  # x, y, z in mm (z = slice direction)
    psf_fwhm: tuple[float, float, float]  # Gaussian blur before voxel integration, mm
    energy_contrast: float  # bone contrast relative to clinical CT (photoelectric gain)
    noise: float  # noise sd in relative-attenuation units (water = 1) at median ray attenuation
    baseline_path_mm: float  # water the rays cross outside the rendered block (head / holder)
    cupping: float  # relative loss of signal at the centre (scatter, beam hardening)
    bias: float  # amplitude of a smooth multiplicative bias field
    streaks: float  # amplitude of beam-hardening streaks, relative-attenuation units
    units: str  # "HU", "arbitrary"
    scale: float  # gray value per relative-attenuation unit
    offset: float  # gray value of air
    dtype: str  # numpy dtype of the written scan
    max_rotation_deg: float  # random orientation of the anatomy (180 = any)
    oblique_direction: float  # probability that the header's direction is oblique


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def draw_parameters(protocol: str, rng: np.random.Generator, rotation: str = "default") -> ScanParameters:
    """One scan's parameters; ``rotation``: "default" (the protocol's own range), "uniform"
    (any 3D orientation) or "none"."""
    if protocol == "microct":
        s = _u(rng, 0.1, 0.2)
        spacing = (s, s, s)
        fwhm = tuple([_u(rng, 1.0, 1.5) * s] * 3)
        params = dict(energy_contrast=_u(rng, 1.6, 2.6), noise=_u(rng, 0.01, 0.05), baseline_path_mm=_u(rng, 0, 10),
                      cupping=_u(rng, 0.0, 0.04), bias=_u(rng, 0.0, 0.03), streaks=_u(rng, 0.0, 0.03),
                      units="arbitrary", scale=_u(rng, 3000, 6000), offset=_u(rng, 200, 3000), dtype="uint16",
                      max_rotation_deg=180.0, oblique_direction=0.0)
    elif protocol == "clinical":
        s = _u(rng, 0.3, 0.5)
        thickness = s * _u(rng, 1.0, 2.0)
        spacing = (s, s, thickness)
        inplane = _u(rng, 0.5, 0.8)
        fwhm = (inplane, inplane, _u(rng, 0.2, 0.5))  # the slice profile's box comes from the voxel
        params = dict(energy_contrast=1.0, noise=_u(rng, 0.02, 0.08), baseline_path_mm=_u(rng, 120, 170),
                      cupping=0.0, bias=_u(rng, 0.0, 0.01), streaks=_u(rng, 0.0, 0.05),
                      units="HU", scale=1000.0, offset=-1000.0, dtype="int16",
                      max_rotation_deg=25.0, oblique_direction=0.5)
    elif protocol == "cbct":
        s = _u(rng, 0.2, 0.35)
        spacing = (s, s, s)
        fwhm = tuple([_u(rng, 0.4, 0.7)] * 3)
        params = dict(energy_contrast=_u(rng, 0.7, 1.0), noise=_u(rng, 0.06, 0.15), baseline_path_mm=_u(rng, 120, 170),
                      cupping=_u(rng, 0.08, 0.2), bias=_u(rng, 0.03, 0.08), streaks=_u(rng, 0.1, 0.3),
                      units="arbitrary", scale=_u(rng, 500, 1500), offset=_u(rng, -500, 1000), dtype="int16",
                      max_rotation_deg=40.0, oblique_direction=0.3)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if rotation == "uniform":
        params["max_rotation_deg"] = 180.0
    elif rotation == "none":
        params["max_rotation_deg"] = 0.0
        params["oblique_direction"] = 0.0
    elif rotation != "default":
        raise ValueError(f"rotation must be default, uniform or none, not {rotation!r}")
    return ScanParameters(protocol=protocol, spacing=spacing, psf_fwhm=fwhm, **params)


def tissue_table(rng: np.random.Generator, energy_contrast: float) -> tuple[np.ndarray, float, float]:
    """Relative attenuation (water = 1) per label value (256 entries), the otic capsule's extra
    and the bone texture's amplitude, at the protocol's energy."""
    hu = np.full(256, UNKNOWN_LABEL_HU, dtype=np.float64)
    for label, (low, high) in TISSUE_HU.items():
        hu[label] = _u(rng, low, high)
    relative = 1.0 + hu / 1000.0
    dense = hu > 0
    relative[dense] = 1.0 + energy_contrast * hu[dense] / 1000.0
    capsule = energy_contrast * _u(rng, *CAPSULE_HU) / 1000.0
    texture = energy_contrast * _u(rng, *TEXTURE_HU) / 1000.0
    return relative.astype(np.float32), capsule, texture
