"""Is what the cascade found a fluid space inside dense bone, as the labyrinth always is?

The bony labyrinth is a fluid-filled cavity in the otic capsule, the densest bone of the body;
in CT, cone-beam or micro-CT alike its inside is darker than a shell of bone around it. A find
without that contrast (a stretch of bone, soft tissue in a chest or abdomen, the top of a head)
is no inner ear. Measured on the model box as the network saw it: with the ``robust-range``
normalisation the box's darkest values are -1 and its densest +1, whatever the scanner's units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SHELL_MM = (0.5, 1.5)    # the shell: this far outside the find (clear of its blurred edge)
MIN_CONTRAST = 0.25      # shell median minus inside median, in robust-range units (-1..1)


def fluid_contrast(image: np.ndarray, mask: np.ndarray, spacing_mm: float) -> float:
    """Median of a shell 0.5-1.5 mm around ``mask`` minus the median inside it (image units)."""
    reach = int(np.ceil(SHELL_MM[1] / spacing_mm)) + 1  # the crop holds the whole shell
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - reach, 0)
    high = np.minimum(where.max(axis=0) + reach + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    inside, values = mask[box], image[box]
    distance = ndimage.distance_transform_edt(~inside, sampling=spacing_mm)
    shell = (distance > SHELL_MM[0]) & (distance <= SHELL_MM[1])
    return float(np.median(values[shell]) - np.median(values[inside]))


def lies_in_bone(image: np.ndarray, mask: np.ndarray, spacing_mm: float, normalisation: dict) -> bool:
    """Whether the find is darker than the bone round it; True when the check cannot apply (an
    empty find, or a model whose normalisation does not put bone near +1)."""
    if normalisation.get("method") != "robust-range" or not mask.any():
        return True
    return fluid_contrast(image, mask, spacing_mm) >= MIN_CONTRAST
