"""How close the cochlea measurements come to phantoms of exactly known geometry.

Each phantom's exact labels are drawn on grids of 0.1-0.5 mm voxels in random orientations,
measured, and compared with the same figures computed from the phantom's construction (its duct
centreline, modiolar axis and exact signed distances). Then one ear in five poses per voxel size
(repeatability) and, where present, the real specimens. Prints a markdown report::

    PYTHONPATH=InnerEarSegmentation nice -n 19 python Benchmarks/cochlea_measurements.py \
        --seeds 6 --real ../main/Training/data/real-anatomy > Benchmarks/MEASUREMENTS.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegmentationLib.cochlea_metrics import CannotMeasure, measure_cochlea
from InnerEarSegmentationLib.cochlea_spiral import Axis
from InnerEarSegmentationLib.phantom import make_phantom

SPACINGS = (0.1, 0.2, 0.3, 0.4, 0.5)
TOLERANCE = {"a_value_mm": 0.3, "b_value_mm": 0.3, "h_value_mm": 0.3, "cdl_centreline_mm": 1.0,
             "angular_length_deg": 20.0}
REAL = ("RT143", "RT138", "RT147", "LT143")
NORMAL = {"a_value_mm": (8.75, 0.31), "b_value_mm": (6.53, 0.35), "h_value_mm": (3.26, 0.24),
          "cdl_centreline_mm": (32.45, 1.31)}


def truth(phantom) -> dict[str, float]:
    """The figures by the measurement's definitions, from the phantom's exact construction."""
    lab = phantom.labyrinth()
    tube = lab.structures[1][0]
    geometry = phantom.cochlea_geometry()
    axis = Axis(geometry.base_centre_mm, geometry.axis)
    outside = np.min([p.sdf(tube.points) for p in lab.structures[2]], axis=0) >= 0
    first = int(np.argmax(outside))
    duct = tube.points[first:]
    v = duct[0] - axis.point
    toward = v - (v @ axis.direction) * axis.direction
    toward /= np.linalg.norm(toward)
    radius, angle, height = axis.cylindrical(duct, toward)

    def cochlea(points):
        inside = tube.sdf(points) < 0
        vestibule = np.min([p.sdf(points) for p in lab.structures[2]], axis=0) < 0
        return inside & ~vestibule

    def extents(direction):
        """Across and along the axis, of the exact section through the axis containing direction."""
        s = np.arange(-7.0, 7.0, 0.02)
        h = np.arange(-4.0, 8.0, 0.02)
        points = axis.point + s[None, :, None] * direction + h[:, None, None] * axis.direction
        inside = cochlea(points.reshape(-1, 3)).reshape(points.shape[:2])
        columns, rows = np.nonzero(inside.any(axis=0))[0], np.nonzero(inside.any(axis=1))[0]
        return s[columns[-1]] - s[columns[0]] + 0.02, h[rows[-1]] - h[rows[0]] + 0.02

    b_value, h_value = extents(np.cross(axis.direction, toward))
    return {
        "a_value_mm": extents(toward)[0],
        "b_value_mm": b_value,
        "h_value_mm": h_value,
        "cdl_centreline_mm": float(np.linalg.norm(np.diff(duct, axis=0), axis=1).sum()),
        "angular_length_deg": float(np.degrees(abs(angle[-1] - angle[0]))),
    }


def random_direction(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def labels_on_grid(phantom, spacing: float, direction: np.ndarray, rng: np.random.Generator) -> sitk.Image:
    """Exact labels on an oriented grid of ``spacing`` covering the cochlea and the vestibule
    next to it, with a random sub-voxel offset."""
    geometry = phantom.cochlea_geometry()
    points = np.vstack([phantom.labyrinth().structures[1][0].points, geometry.base_centre_mm])
    local = (points - points.mean(axis=0)) @ direction
    lo, hi = local.min(axis=0) - 3.0, local.max(axis=0) + 3.0
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    reference = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    reference.SetSpacing([spacing] * 3)
    reference.SetDirection([float(x) for x in direction.ravel()])
    origin = points.mean(axis=0) + direction @ (lo + rng.uniform(0, spacing, 3))
    reference.SetOrigin([float(x) for x in origin])
    return phantom.labels_on(reference)


def measure(labels: sitk.Image) -> tuple[dict[str, float] | None, float]:
    """The figures and the CPU seconds they took (wall time on a shared machine says little)."""
    clock = time.process_time()
    try:
        measured = measure_cochlea(labels)
    except CannotMeasure as error:
        print(f"<!-- cannot measure: {error} -->")
        return None, time.process_time() - clock
    seconds = time.process_time() - clock
    return {key: getattr(measured, key) for key in TOLERANCE} | {
        "cdl_lateral_wall_mm": measured.cdl_lateral_wall_mm}, seconds


def phantom_table(seeds: int) -> None:
    rng = np.random.default_rng(14)
    rows, timings = [], []
    print("## Phantoms: error of each figure (measured minus exact)\n")
    print("| seed | voxel mm | A | B | H | CDL centreline | angle ° | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(seeds):
        phantom = make_phantom(seed, "clinical")
        exact = truth(phantom)
        for spacing in SPACINGS:
            labels = labels_on_grid(phantom, spacing, random_direction(rng), rng)
            measured, seconds = measure(labels)
            timings.append(seconds)
            if measured is None:
                rows.append(None)
                print(f"| {seed} | {spacing} | cannot measure | | | | | {seconds:.2f} |")
                continue
            errors = {key: measured[key] - exact[key] for key in TOLERANCE}
            rows.append(errors)
            cells = " | ".join(f"{errors[key]:+.2f}" for key in TOLERANCE)
            print(f"| {seed} | {spacing} | {cells} | {seconds:.2f} |", flush=True)
    print("\nExact figures of the last phantom: "
          + ", ".join(f"{key} {value:.2f}" for key, value in exact.items()) + "\n")
    print("| figure | tolerance | within | share | mean error | 95th percentile of abs error |")
    print("|---|---|---|---|---|---|")
    for key, limit in TOLERANCE.items():
        values = np.array([row[key] if row else np.inf for row in rows])
        finite = values[np.isfinite(values)]
        within = int((np.abs(values) <= limit).sum())
        print(f"| {key} | {limit} | {within}/{len(values)} | {within / len(values):.0%} | "
              f"{finite.mean():+.2f} | {np.percentile(np.abs(finite), 95):.2f} |")
    print(f"\nMeasuring time (CPU seconds of this process): median {np.median(timings):.2f} s, "
          f"max {max(timings):.2f} s over {len(timings)} measurements.\n")


def repeatability(poses: int, seed: int = 3) -> None:
    rng = np.random.default_rng(99)
    phantom = make_phantom(seed, "clinical")
    print(f"## Repeatability: phantom {seed}, {poses} random poses per voxel size\n")
    print("| voxel mm | CDL centreline per pose | SD | A SD | angle SD |")
    print("|---|---|---|---|---|")
    for spacing in (0.2, 0.3, 0.4, 0.5):
        found = [measure(labels_on_grid(phantom, spacing, random_direction(rng), rng))[0] for _ in range(poses)]
        found = [f for f in found if f]
        cdl = np.array([f["cdl_centreline_mm"] for f in found])
        print(f"| {spacing} | {' '.join(f'{x:.2f}' for x in cdl)} | {cdl.std(ddof=1):.2f} | "
              f"{np.std([f['a_value_mm'] for f in found], ddof=1):.2f} | "
              f"{np.std([f['angular_length_deg'] for f in found], ddof=1):.1f} |", flush=True)
    print()


def real_specimens(folder: Path) -> None:
    print("## Real specimens (labels 17 cochlea, 18 vestibule)\n")
    present = [name for name in REAL if (folder / f"{name}_anatomy.nrrd").exists()]
    if not present:
        print(f"Not measured: no `<SPECIMEN>_anatomy.nrrd` in {folder}.\n")
        return
    print("| specimen | A | B | H | CDL centreline | CDL lateral wall | turns | Escudé | Alexiades |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in present:
        labels = sitk.ReadImage(str(folder / f"{name}_anatomy.nrrd"))
        try:
            m = measure_cochlea(labels, cochlea=17, vestibule=18)
        except CannotMeasure as error:
            print(f"| {name} | cannot measure: {error} |||||||")
            continue
        print(f"| {name} | {m.a_value_mm:.2f} | {m.b_value_mm:.2f} | {m.h_value_mm:.2f} | "
              f"{m.cdl_centreline_mm:.1f} | {m.cdl_lateral_wall_mm:.1f} | {m.turns:.2f} | "
              f"{m.formulas['cdl_escude_2006_mm']:.1f} | {m.formulas['cdl_alexiades_2015_mm']:.1f} |")
    print("\nNormal HRCT ranges (36 ears, mean ± SD): "
          + ", ".join(f"{k} {m} ± {s}" for k, (m, s) in NORMAL.items()) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--poses", type=int, default=5, help="poses per voxel size for repeatability")
    parser.add_argument("--real", type=Path, default=Path("Training/data/real-anatomy"))
    parser.add_argument("--skip", nargs="*", default=(), choices=("phantoms", "repeatability", "real"))
    args = parser.parse_args(argv)
    print("# Cochlea measurements against exact answers\n")
    print(f"Command: `PYTHONPATH=InnerEarSegmentation nice -n 19 python Benchmarks/cochlea_measurements.py "
          f"{' '.join(sys.argv[1:])}`\n")
    if "phantoms" not in args.skip:
        phantom_table(args.seeds)
    if "repeatability" not in args.skip:
        repeatability(args.poses)
    if "real" not in args.skip:
        real_specimens(args.real)
    return 0


if __name__ == "__main__":
    sys.exit(main())
