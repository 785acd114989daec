"""Times the whole segmentation and each of its parts on phantom scans, with peak memory and the
network's distance from the arithmetic floor; writes a Markdown report.

    export PYTHONPATH=InnerEarSegmentation:Training
    python Benchmarks/benchmark.py [--sizes 256 900] [--model DIR] [--out Benchmarks/RESULTS.md]

Every scenario runs in a fresh child process; its peak RSS is the kernel's ru_maxrss for that child
(os.wait4), and a sampler reads its VmRSS every 20 ms to say which part the peak belongs to.
Scans, the published-size model and int8 copies are cached in --workdir between runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "InnerEarSegmentation"), str(ROOT / "Training")]

import report  # noqa: E402  (Benchmarks/report.py)


LIBRARY = ROOT / "InnerEarSegmentation"  # --library may point at another copy (e.g. with a patch applied)


def child_environment(library: Path | None = None) -> dict:
    env = dict(os.environ)
    paths = [str(HERE), str(library or LIBRARY), str(ROOT / "Training")]
    extra = env.get("BENCHMARK_EXTRA_PATH")  # e.g. a --target folder holding cc3d
    if extra:
        paths.append(extra)
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


def run_child(kind: str, job: dict, log, library: Path | None = None) -> dict:
    """Runs scenarios.JOBS[kind](job) in a fresh process; adds peak_rss_bytes, per-phase peaks, wall_s."""
    with tempfile.TemporaryDirectory() as scratch:
        job_file, answer_file = Path(scratch) / "job.json", Path(scratch) / "answer.json"
        job_file.write_text(json.dumps(job))
        code = f"import scenarios; scenarios.main({kind!r}, {str(job_file)!r}, {str(answer_file)!r})"
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-c", code], env=child_environment(library), cwd=str(ROOT))
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            status = f"/proc/{child.pid}/status"
            while not stop.is_set():
                try:
                    with open(status) as stream:
                        for line in stream:
                            if line.startswith("VmRSS:"):
                                samples.append((time.monotonic(), int(line.split()[1]) * 1024))
                                break
                except (OSError, ValueError):
                    break
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        wall = time.monotonic() - started
        if child.returncode != 0 or not answer_file.is_file():
            raise RuntimeError(f"benchmark child {kind} failed (exit {child.returncode})")
        answer = json.loads(answer_file.read_text())
    answer["peak_rss_bytes"] = usage.ru_maxrss * 1024
    answer["wall_s"] = wall
    if answer.get("phases"):
        answer["phase_peaks"] = {}
        for name, begin, end in answer["phases"]:
            inside = [rss for t, rss in samples if begin <= t <= (end or float("inf"))]
            if inside:
                answer["phase_peaks"][name] = max(answer["phase_peaks"].get(name, 0), max(inside))
    log(f"  {kind}: {wall:.1f} s wall, peak RSS {usage.ru_maxrss / 2**20:.2f} GiB")
    return answer


def machine() -> dict:
    import numpy
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    memory = next((int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "cpu": cpu, "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
            "memory_bytes": memory, "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    from InnerEarSegmentationLib.model import default_model_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 900], help="scan sides in voxels (int16 phantoms)")
    parser.add_argument("--model", type=Path, help="trained model folder (default: the shipped one, if present)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "innerear-benchmark")
    parser.add_argument("--base", type=int, default=32, help="U-Net width of the published-size model")
    parser.add_argument("--grid", type=int, default=256, help="grid of the published-size model")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 quantisation runs")
    parser.add_argument("--no-sweeps", action="store_true", help="only the pipeline scenarios")
    parser.add_argument("--eval-phantoms", type=int, default=6, help="held-out phantoms for the int8 Dice")
    parser.add_argument("--library", type=Path, help="folder holding the InnerEarSegmentationLib to time "
                        "(default: this checkout's InnerEarSegmentation/)")
    parser.add_argument("--compare-library", type=Path, help="a second library folder (e.g. with proposed "
                        "changes applied): its pipeline scenarios are run too and shown side by side")
    args = parser.parse_args(argv)
    global LIBRARY
    if args.library:
        LIBRARY = args.library.resolve()

    import arithmetic

    def log(message: str) -> None:
        print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)

    model = args.model or (default_model_folder() if (default_model_folder() / "manifest.json").is_file() else None)
    results = {"command": " ".join(["python", "Benchmarks/benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "model": str(model) if model else None, "sizes": args.sizes,
               "library": str(LIBRARY), "compare_library": str(args.compare_library or ""),
               "scenarios": [], "sweeps": {}}
    log(f"machine: {results['machine']}")
    results["matmul_gflops"] = [arithmetic.matmul_gflops()]
    log(f"float32 matmul: {results['matmul_gflops'][0]:.0f} GFLOP/s")
    log("fixtures (phantom scans, published-size model)")
    fixtures = run_child("fixtures", {"work": str(args.workdir), "sizes": args.sizes, "base": args.base,
                                      "grid": args.grid}, log)
    results["published_model"] = fixtures["published"]
    results["recipes"] = {size: scan["recipe"] for size, scan in fixtures["scans"].items()}
    out_root = args.workdir / "outputs"
    for size in args.sizes:
        scan = fixtures["scans"][str(size)]
        runs = []
        if model:
            runs.append(("trained", {"model": str(model)}))
        runs.append(("published", {"model": fixtures["published"], "oracle": True}))
        libraries = [("as is", None)] + ([("proposed", args.compare_library.resolve())] if args.compare_library else [])
        for name, extra in runs:
            for variant, library in libraries:
                log(f"pipeline {size}³, {name} model, library {variant}")
                job = {"scan": scan["scan"], "labels": scan["labels"], "recipe": scan["recipe"],
                       "out": str(out_root / (f"{size}-{name}" + ("-proposed" if library else ""))), **extra}
                answer = run_child("pipeline", job, log, library)
                results["scenarios"].append({"size": size, "kind": name, "model": extra["model"],
                                             "library": variant, **answer})
    published_256 = next((s for s in results["scenarios"] if s["kind"] == "published" and s["library"] == "as is"), None)
    if not args.no_sweeps and published_256:
        size = published_256["size"]
        scan = fixtures["scans"][str(size)]
        boxes = published_256["boxes"]
        variants = [{"name": "float32", "model": fixtures["published"], "batches": args.batches},
                    {"name": "float32", "model": fixtures["published"], "batches": [16], "threads": [1, 2],
                     "stages": ["stage1"]}]
        if not args.no_int8:
            log("int8 QDQ copy of the published-size model")
            target = Path(fixtures["published"] + "-int8")
            if not (target / "manifest.json").is_file():
                run_child("quantize_published", {"model": fixtures["published"], "scan": scan["scan"],
                                                 "recipe": scan["recipe"], "boxes": boxes,
                                                 "target": str(target)}, log)
            variants.append({"name": "int8", "model": str(target), "batches": [8, 16, 32]})
        log(f"network sweeps on the {size}³ boxes")
        results["sweeps"]["networks"] = run_child(
            "networks", {"boxes": boxes, "variants": variants, "float_model": fixtures["published"]}, log)
        results["sweeps"]["networks"]["size"] = size
        log("connected components: scipy vs cc3d")
        big = next((s for s in results["scenarios"] if s["size"] == max(args.sizes) and s["kind"] == "published"
                    and s["library"] == "as is"), None)
        results["sweeps"]["components"] = run_child("components", {
            "scan_256": scan["scan"], "recipe_256": scan["recipe"], "grid": args.grid,
            "labelmap": str(out_root / f"{big['size']}-published" / "scan.seg.nrrd") if big else None}, log)
        largest = max(args.sizes)
        if largest > 256:
            results["sweeps"]["resample"] = []
            import numpy as np

            for grid in sorted({args.grid, *[s["grid_size"] for s in results["scenarios"] if s["kind"] == "trained"]}):
                reference = None
                for shrink in ("library", "floor", "ceil-half"):
                    log(f"resample {largest}³ -> {grid}³, shrink {shrink}")
                    saved = args.workdir / f"resampled-{largest}-{grid}-{shrink}.npy"
                    answer = run_child("resample", {"scan": fixtures["scans"][str(largest)]["scan"], "grid": grid,
                                                    "shrink": shrink, "save": str(saved)}, log)
                    array = np.load(saved)
                    saved.unlink()
                    if reference is None:
                        reference = array
                    answer["rms_vs_library"] = float(np.sqrt(np.mean((array - reference) ** 2)) / reference.std())
                    results["sweeps"]["resample"].append({"grid": grid, "shrink": shrink, **answer})
    if model and not args.no_int8 and not args.no_sweeps:
        log(f"int8 accuracy of {model} on {args.eval_phantoms} held-out phantoms")
        results["sweeps"]["int8_accuracy"] = run_child("int8_accuracy", {
            "model": str(model), "target": str(args.workdir / "trained-int8"),
            "calibration_seeds": [1000, 1001, 1002, 1003],
            "eval_seeds": list(range(9000, 9000 + args.eval_phantoms))}, log)
    results["matmul_gflops"].append(arithmetic.matmul_gflops())
    results["machine"]["load_average_end"] = os.getloadavg()
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))
    text = report.render(results, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    log(f"wrote {args.out} (raw numbers: {args.workdir / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
