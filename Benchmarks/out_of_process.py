"""The module's out-of-process run against the command line on the same scan, and Cancel's delay.

    PYTHONPATH=InnerEarSegmentation python Benchmarks/out_of_process.py [--repeats 3] [--model DIR]

(needs the test extra: slicer-core for the headless scene, set up by Testing/mrml_scene.py)

Command line: ``inner-ear-seg scan.nrrd`` in a fresh process (wall time, startup included).
Module: the Logic's path (``mrml_segment.segment_volume_node``) on the scan loaded as a volume node
in a headless MRML scene (slicer-core): write the scan for the child, run the child, read the
labelmap back and fill the segmentation node; once without and once with the 3D surface (the
module's default). Runs alternate, so a machine busy with other work slows both alike; medians are
printed, of the wall time and of the CPU time (this process plus its children), which a busy
machine barely changes. Cancel: a run on the scan upsampled 2x per axis is cancelled once its work
on the scan has begun; the time from ``cancel()`` until the child is gone is printed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "InnerEarSegmentation"), str(ROOT / "Testing")]

import SimpleITK as sitk  # noqa: E402

from InnerEarSegmentationLib.mrml_segment import SegmentationRun, segment_volume_node  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402
from InnerEarSegmentationLib.sample_data import synthetic_temporal_bone  # noqa: E402
from InnerEarSegmentationLib.subprocess_run import child_environment  # noqa: E402
from mrml_scene import make_scene  # noqa: E402  (Testing/: the scene set up as Slicer does)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``work()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    work()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def run_cli(scan: Path, model: str, output: Path) -> None:
    command = [sys.executable, "-m", "InnerEarSegmentationLib.cli", str(scan), "-o", str(output),
               "--overwrite", "--quiet", "--device", "cpu", *(["--model", model] if model else [])]
    subprocess.run(command, check=True, env=child_environment(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def run_module(image: sitk.Image, model: str, show3d: bool) -> None:
    headless = make_scene()
    volume = volume_node_from_sitk(image, headless.scene, "CT")
    segment_volume_node(volume, model=model or None, device="cpu", show3d=show3d)


def time_cancel(image: sitk.Image, model: str) -> float:
    headless = make_scene()
    run = SegmentationRun(volume_node_from_sitk(image, headless.scene, "CT"), model=model or None,
                          device="cpu", show3d=False).start()
    try:
        while True:
            latest = run.poll()
            if latest and latest[1] != "loading the model":  # into the work on the scan
                break
            if run.finished:
                raise RuntimeError("the run ended before it could be cancelled")
            time.sleep(0.01)
        clock = time.perf_counter()
        run.cancel()
        while not run.process.finished:
            time.sleep(0.005)
        return time.perf_counter() - clock
    finally:
        run.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="", help="model folder (default: the shipped model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        scan = synthetic_temporal_bone(Path(work))
        image = sitk.ReadImage(str(scan))
        print(f"scan: the Sample Data phantom, {image.GetSize()} voxels, {sys.version.split()[0]}")
        times: dict[str, list[tuple[float, float]]] = {"cli": [], "module": [], "module+3D": []}
        for _ in range(args.repeats):
            times["cli"].append(timed(lambda: run_cli(scan, args.model, Path(work) / "out")))
            times["module"].append(timed(lambda: run_module(image, args.model, show3d=False)))
            times["module+3D"].append(timed(lambda: run_module(image, args.model, show3d=True)))
        fine = sitk.Expand(image, [2, 2, 2], sitk.sitkLinear)
        cancels = [time_cancel(fine, args.model) for _ in range(args.repeats)]
    cli_wall = statistics.median(w for w, _ in times["cli"])
    cli_cpu = statistics.median(c for _, c in times["cli"])
    print(f"model: {args.model or 'shipped'}; {args.repeats} runs each, medians")
    for name, values in times.items():
        wall, cpu = statistics.median(w for w, _ in values), statistics.median(c for _, c in values)
        print(f"{name:10s} wall {wall:6.2f} s ({wall / cli_wall:.2f}x CLI)  CPU {cpu:6.2f} s ({cpu / cli_cpu:.2f}x CLI)"
              f"  runs {', '.join(f'{w:.2f}/{c:.2f}' for w, c in values)}")
    print(f"cancel     to exit: max {max(cancels):.3f} s  runs {', '.join(f'{v:.3f}' for v in cancels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
