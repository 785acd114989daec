"""The imaging chain after the object: blur, voxel integration, artefacts and noise.

Arrays are [z, y, x] with z the slice (table) direction of the scanner, so projections, noise
texture and streaks lie in the axial planes as a real scanner makes them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WATER_MU_PER_MM = 0.019  # linear attenuation of water near 70 keV (0.19 /cm)
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def blur(array: np.ndarray, fwhm_zyx_mm: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Gaussian point-spread function (the focal spot and detector, before voxel integration)."""
    return ndimage.gaussian_filter(array, np.asarray(fwhm_zyx_mm) * FWHM_TO_SIGMA / spacing_zyx, mode="nearest")


def block_mean(array: np.ndarray, factors_zyx: tuple[int, int, int]) -> np.ndarray:
    """Mean over each block of sub-voxels: the signal integrated over the acquisition voxel."""
    kz, ky, kx = factors_zyx
    if kz == ky == kx == 1:
        return array
    z, y, x = array.shape[0] // kz, array.shape[1] // ky, array.shape[2] // kx
    shaped = array[: z * kz, : y * ky, : x * kx].reshape(z, kz, y, ky, x, kx)
    return shaped.mean(axis=(1, 3, 5), dtype=np.float32)


def ray_variance(relative: np.ndarray, spacing_zyx: np.ndarray, baseline_path_mm: float) -> np.ndarray:
    """Relative noise variance per voxel from its rays (photon counts fall as exp(-line integral),
    so the variance of a reconstructed voxel grows with the attenuation of the rays through it).
    Two ray directions per axial slice (rows and columns) stand in for the full rotation; the
    result is normalised to a median of one."""
    mu = np.clip(relative, 0, None) * WATER_MU_PER_MM
    base = baseline_path_mm * WATER_MU_PER_MM
    along_x = np.exp(mu.sum(axis=2) * spacing_zyx[2] + base)  # [z, y]
    along_y = np.exp(mu.sum(axis=1) * spacing_zyx[1] + base)  # [z, x]
    variance = 0.5 * (along_x[:, :, None] + along_y[:, None, :])
    return (variance / np.median(variance)).astype(np.float32)


def ct_noise(shape: tuple[int, int, int], spacing_zyx: np.ndarray, fwhm_zyx_mm: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Unit-sd noise with filtered-back-projection texture: in each axial slice its power grows
    with frequency like the ramp filter and is cut by the reconstruction kernel (the in-plane
    PSF); along z it is correlated over the slice profile."""
    white = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[1], d=spacing_zyx[1])[:, None]
    fx = np.fft.rfftfreq(shape[2], d=spacing_zyx[2])[None, :]
    f2 = fy ** 2 + fx ** 2
    sigma_mm = float(np.mean(fwhm_zyx_mm[1:])) * FWHM_TO_SIGMA
    amplitude = (f2 ** 0.25) * np.exp(-2 * np.pi ** 2 * sigma_mm ** 2 * f2)
    noise = np.fft.irfft2(np.fft.rfft2(white, axes=(1, 2)) * amplitude, s=shape[1:], axes=(1, 2)).astype(np.float32)
    sigma_z = fwhm_zyx_mm[0] * FWHM_TO_SIGMA / spacing_zyx[0]
    if sigma_z > 0.3:
        noise = ndimage.gaussian_filter1d(noise, sigma_z, axis=0)
    return noise / max(float(noise.std()), 1e-12)


def cupping_and_bias(shape: tuple[int, int, int], cupping: float, bias: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative gain: a radial dip at the rotation axis (scatter and beam hardening in
    cone-beam and micro-CT) times a smooth random field of low order."""
    z, y, x = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    radius2 = y[:, None] ** 2 + x[None, :] ** 2
    gain = np.broadcast_to(1.0 - cupping * np.clip(1.0 - radius2 / 2.0, 0, 1), shape).astype(np.float32)
    if bias > 0:
        field = np.zeros(shape, dtype=np.float32)
        for _ in range(6):  # separable products of slow cosines
            kz, ky, kx = rng.uniform(0.5, 2.0, 3) * np.pi
            phase = rng.uniform(0, 2 * np.pi, 3)
            field += (np.cos(kz * z + phase[0])[:, None, None] * np.cos(ky * y + phase[1])[None, :, None]
                      * np.cos(kx * x + phase[2])[None, None, :])
        field /= max(float(np.abs(field).max()), 1e-6)
        gain = gain * (1.0 + bias * field)
    return gain


def streaks(relative: np.ndarray, amplitude: float, rng: np.random.Generator, angles: int = 5,
            work_size: int = 96) -> np.ndarray:
    """Beam-hardening streaks: the squared line integral of dense material along a few ray
    directions (the nonlinearity a water-corrected scanner leaves), high-passed across the rays
    and smeared back along them, as filtered back-projection would. Scaled to ``amplitude``
    (largest streak, relative-attenuation units). Worked out on a grid of at most ``work_size``
    voxels a side and interpolated back: streaks are broad and this keeps it to a second."""
    if amplitude <= 0:
        return np.zeros_like(relative)
    factor = max(1.0, max(relative.shape) / work_size)
    dense = np.clip(relative - 1.5, 0, None)
    if factor > 1:
        dense = ndimage.zoom(dense, 1 / factor, order=1)
    total = np.zeros_like(dense)
    for angle in rng.uniform(0, 180, angles):
        turned = ndimage.rotate(dense, angle, axes=(1, 2), reshape=False, order=1, mode="constant")
        path = turned.sum(axis=2)  # [z, y]
        error = path ** 2
        error = error - ndimage.gaussian_filter1d(error, 3.0, axis=1)
        smear = np.broadcast_to(error[:, :, None], turned.shape)
        total += ndimage.rotate(smear, -angle, axes=(1, 2), reshape=False, order=1, mode="constant")
    if factor > 1:
        total = ndimage.zoom(total, np.array(relative.shape) / np.array(total.shape), order=1)
    peak = float(np.abs(total).max())
    return -amplitude * total / peak if peak > 0 else total
