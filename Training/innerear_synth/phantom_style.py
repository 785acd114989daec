"""A new look for a procedural phantom: its gray values bent by a random monotone curve, then the
same scanner physics and units as the real-anatomy renders, so the phantoms teach shape without
teaching the generator's one set of tissue values."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .appearance import scanner_physics, to_units


def restyle(scan: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """The phantom scan with random tissue contrast (order kept), noise, bias and units."""
    array = sitk.GetArrayFromImage(scan).astype(np.float32)
    low, high = np.percentile(array, [0.5, 99.5])
    unit = np.clip((array - low) / max(high - low, 1e-6), 0.0, 1.0)
    knots = np.sort(rng.uniform(0.0, 1.0, 3))
    targets = np.sort(rng.uniform(0.05, 0.95, 3))
    curved = np.interp(unit, np.concatenate([[0.0], knots, [1.0]]),
                       np.concatenate([[rng.uniform(0.0, 0.1)], targets, [rng.uniform(0.9, 1.0)]]))
    protocol = str(rng.choice(("clinical", "cbct", "microct")))
    voxels, _ = to_units(scanner_physics(curved.astype(np.float32), rng, protocol),
                         rng, protocol)
    styled = sitk.GetImageFromArray(voxels)
    styled.CopyInformation(scan)
    return styled
