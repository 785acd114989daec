"""The head-size scenario: a 512x512x400 int16 CT of a head with both ears, segmented end to end.

    PYTHONPATH=InnerEarSegmentation:Training python Benchmarks/head_scan.py --out Benchmarks/HEAD.md

The scan is a synthetic head (``innerear_synth.head``: skull, brain, sinuses, mastoids; two real
temporal bones as its ears), 250 mm wide at 0.49 mm, 400 slices, written once as an
uncompressed .mha into the work folder. Each run is ``inner-ear-seg`` in a fresh process on the
shipped model (both ears, measurements on), timed from the outside; peak memory is that
process's ru_maxrss (os.wait4). The report's own timings give the parts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SEED, FIELD_MM, SIZE, SLICES = 7, 250.0, 512, 400
TARGET_S, TARGET_MEMORY = 20.0, 2.5  # seconds end to end; peak memory in multiples of the scan


def head_scan(folder: Path) -> Path:
    """The 512x512x400 head, rendered once (~1 min, 4 GB) in a child process: a run forked from a
    process that had grown that large would count its pages in its own peak memory."""
    path = folder / "head-512x512x400.mha"
    if not path.is_file():
        subprocess.run([sys.executable, __file__, "--render", str(folder)], check=True)
    return path


def render(folder: Path) -> None:
    """Renders the head and writes it with its ears' truth beside it."""
    from innerear_synth.head import render_head

    head = render_head(np.random.default_rng(SEED), "RT147", "LT143", field_mm=FIELD_MM, voxel_mm=FIELD_MM / SIZE)
    image = head.image
    assert image.GetSize() == (SIZE, SIZE, SIZE), image.GetSize()
    ear_z = np.mean([ear["labyrinth_centre_mm"][2] for ear in head.ears])
    middle = int(round((ear_z - image.GetOrigin()[2]) / image.GetSpacing()[2]))
    first = int(np.clip(middle - SLICES // 2, 0, SIZE - SLICES))
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image[:, :, first:first + SLICES], str(folder / "head-512x512x400.mha"), False)
    (folder / "head-ears.json").write_text(json.dumps(head.ears), encoding="utf-8")


def run_once(scan: Path, out: Path) -> dict:
    """One end-to-end command-line run in a fresh process: wall seconds, peak RSS, report."""
    command = [sys.executable, "-m", "InnerEarSegmentationLib.cli", str(scan), "-o", str(out), "--report",
               "--quiet", "--overwrite"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    output = child.stdout.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"inner-ear-seg failed:\n{output}")
    report = json.loads((out / f"{scan.stem}.report.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "peak_bytes": usage.ru_maxrss * 1024, "report": report, "output": output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/innerear-benchmark"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="Markdown file for the figures")
    parser.add_argument("--render", type=Path, help=argparse.SUPPRESS)  # the child that renders the scan
    args = parser.parse_args(argv)
    if args.render:
        render(args.render)
        return 0
    scan = head_scan(args.work)
    scan_bytes = SIZE * SIZE * SLICES * 2
    runs = [run_once(scan, args.work / "head-out") for _ in range(args.runs)]
    best = min(runs, key=lambda run: run["wall_s"])
    report = best["report"]
    sides = [ear["side"] for ear in report["ears"]]
    peak = max(run["peak_bytes"] for run in runs)
    walls = ", ".join(f"{run['wall_s']:.1f}" for run in runs)
    lines = ["## Head-size scenario", "",
             f"Run {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; command: `python Benchmarks/head_scan.py --runs {args.runs}` "
             "(with `PYTHONPATH=InnerEarSegmentation:Training`, from the repository root). "
             f"{os.cpu_count()} CPU(s), Python {platform.python_version()}.", "",
             f"A synthetic head CT, 512x512x400 int16 ({scan_bytes / 2**20:.0f} MiB), 250 mm at 0.49 mm, both ears "
             f"(innerear_synth.head, seed {SEED}); `inner-ear-seg --report` with model "
             f"{report['model']['id']} {report['model']['version']} in a fresh process, {args.runs} runs.", "",
             "| target | measured | met? |", "| --- | --- | --- |",
             f"| end to end <= {TARGET_S:g} s | best {best['wall_s']:.1f} s, all "
             f"{walls} s | {'yes' if best['wall_s'] <= TARGET_S else 'NO'} |",
             f"| peak memory <= {TARGET_MEMORY:g}x scan | {peak / 2**20:.0f} MiB = {peak / scan_bytes:.2f}x | "
             f"{'yes' if peak <= TARGET_MEMORY * scan_bytes else 'NO'} |",
             f"| both ears found | {len(sides)} ear(s): {', '.join(str(side) for side in sides)} | "
             f"{'yes' if sorted(map(str, sides)) == ['left', 'right'] else 'NO'} |", "",
             "Parts of the best run (the report's `timings_s`, both ears summed): "
             + ", ".join(f"{key} {value:.2f} s" for key, value in report["timings_s"].items()) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
