"""Markdown report of a benchmark run (results.json -> RESULTS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

GIB = 2 ** 30
PARTS = ["read", "resample", "stage_stage1", "components_stage1", "stage_stage2", "components_stage2",
         "stage_stage3", "components_stage3", "mirror_average", "resample_back", "report_and_checks", "write", "surface"]
PART_NAMES = {"report_and_checks": "report + checks (volumes, empty check)", "write": "write .seg.nrrd + report",
              "surface": "surface (STL)", "resample_back": "resample back",
              "mirror_average": "average with the mirror's reading"}
TARGET_SECONDS, TARGET_FLOOR, TARGET_MEMORY = 30.0, 1.3, 2.0
KEEP_MARKER = "<!-- hand-written analysis below is kept when the report is regenerated -->"


def _flops(scenario: dict, results: dict) -> tuple[float, list]:
    """FLOPs of the stages as run (box shapes after down-sampling, both passes of a mirror
    average) and a per-stage breakdown."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import arithmetic
    from InnerEarSegmentationLib.model import load_model
    from InnerEarSegmentationLib.slicing import view_axis

    model = load_model(scenario["model"], verify=False)
    total, rows = 0.0, []
    for stage in model.stages:
        boxes = [scenario["boxes"][key] for key in (stage.name, f"{stage.name}_mirrored") if key in scenario["boxes"]]
        if not boxes:
            continue
        factor = int(round(1 / stage.scale))
        shapes = [tuple((b - a) // factor for a, b in box) for box in boxes]
        flops = sum(arithmetic.stage_flops(model.stage_path(stage), shape, view_axis(stage.view)) for shape in shapes)
        network = scenario.get("network_calls", {}).get(stage.name, {}).get("network_s")
        rows.append({"stage": stage.name, "view": stage.view, "passes": len(shapes), "shape": shapes[0], "flops": flops,
                     "seconds": network if network is not None else scenario["timings"][f"stage_{stage.name}"]})
        total += flops
    return total, rows


def _rate(results: dict) -> float:
    return max(results["matmul_gflops"]) * 1e9


def scenario_section(scenario: dict, results: dict) -> tuple[list[str], dict]:
    size, kind = scenario["size"], scenario["kind"]
    timings, total = scenario["timings"], scenario["total_s"]
    scan_bytes = 2 * size ** 3
    title = {"trained": f"trained model `{Path(scenario['model']).name}` (grid {scenario['grid_size']})",
             "published": f"published-size untrained U-Net base 32, grid {scenario['grid_size']}, "
                          "networks timed on the true-labyrinth boxes (oracle masks)"}[kind]
    if scenario.get("library", "as is") != "as is":
        title += f", library **{scenario['library']}** (`--compare-library`)"
    lines = [f"### {size}³ int16 scan ({scan_bytes / GIB:.2f} GiB), {title}", "",
             "| part | seconds | % of total | peak RSS in part (GiB) |", "| --- | ---: | ---: | ---: |"]
    peaks = scenario.get("phase_peaks", {})
    phase_of = {"read": "read", "resample": "resample", "resample_back": "resample_back",
                "report_and_checks": "report", "write": "write", "surface": "surface"}
    for part in PARTS:
        if part not in timings:
            continue
        phase = phase_of.get(part, "cascade")
        peak = f"{peaks[phase] / GIB:.2f}" if phase in peaks and (phase != "cascade" or part == "stage_stage1") else ""
        if phase == "cascade" and part == "stage_stage1" and peak:
            peak += " (all stages)"
        lines.append(f"| {PART_NAMES.get(part, part)} | {timings[part]:.2f} | {100 * timings[part] / total:.1f} | {peak} |")
    lines.append(f"| **total** (model already loaded) | **{total:.2f}** | 100 | |")
    load = next((end - begin for name, begin, end in scenario.get("phases", []) if name == "load_model"), None)
    if load is not None:
        lines.append(f"| (load model + open sessions, once per run; not in total) | {load:.2f} | | "
                     f"{peaks.get('load_model', 0) / GIB:.2f} |")
    peak = scenario["peak_rss_bytes"]
    lines += ["", f"Peak RSS of the process: **{peak / GIB:.2f} GiB** = {peak / scan_bytes:.2f}x the scan's "
              f"{scan_bytes / GIB:.2f} GiB."]
    flops, stages = _flops(scenario, results)
    network = sum(row["seconds"] for row in stages)
    floor = flops / _rate(results)
    lines += ["", "| stage | view | slices x plane (after crop/scale) | GFLOP | network s | floor s | ratio |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    from InnerEarSegmentationLib.slicing import view_axis
    for row in stages:
        axis = view_axis(row["view"])
        plane = "x".join(str(n) for i, n in enumerate(row["shape"]) if i != axis)
        stage_floor = row["flops"] / _rate(results)
        passes = "" if row["passes"] == 1 else f" (x{row['passes']}: scan + mirror)"
        lines.append(f"| {row['stage']} | {row['view']} | {row['shape'][axis]} x {plane}{passes} | {row['flops'] / 1e9:.0f} | "
                     f"{row['seconds']:.2f} | {stage_floor:.2f} | {row['seconds'] / stage_floor:.2f} |")
    lines.append(f"| **all** | | | {flops / 1e9:.0f} | {network:.2f} | {floor:.2f} | **{network / floor:.2f}** |")
    lines.append("")
    lines.append("Cascade boxes [z, y, x] on the model grid: " + ", ".join(
        f"{name} {[f'{a}:{b}' for a, b in box]}" for name, box in scenario["boxes"].items()))
    if kind == "trained":
        lines[-1] += " (stage-1 network time includes stacking/down-sampling; the trained model is not oracle-timed)"
    if scenario.get("dice_vs_truth"):
        lines += ["", "Dice against the phantom's exact labels on the scan grid: " + ", ".join(
            f"{k} {v:.3f}" for k, v in scenario["dice_vs_truth"].items())]
    verdict = {"size": size, "kind": kind, "library": scenario.get("library", "as is"), "total": total,
               "ratio": network / floor, "peak": peak, "peak_ratio": peak / scan_bytes}
    return lines + [""], verdict


def reproduce(results: dict) -> list[str]:
    steps = ["", "## How to reproduce", "", "```bash", "# from the repository root; needs the test and train extras "
             "(onnx, onnxruntime, torch) of pyproject.toml",
             "export PYTHONPATH=InnerEarSegmentation:Training",
             "pip install --target /tmp/cc3d connected-components-3d  # optional: the cc3d comparison",
             "export BENCHMARK_EXTRA_PATH=/tmp/cc3d"]
    if results.get("compare_library"):
        steps += ["# --compare-library: a second folder holding an InnerEarSegmentationLib (e.g. a patched copy)"]
    steps += [results["command"], "```",
              "", "Scans, the published-size model and int8 copies are cached in the work folder "
              "(default /tmp/innerear-benchmark; the 900³ scan takes 1.4 GB of disk); a run takes about "
              "15-25 minutes on 2 cores.", ""]
    return steps


def comparison(scenarios: list[dict]) -> list[str]:
    """Side by side: the library as it is and with the proposed changes (--compare-library)."""
    pairs = {}
    for scenario in scenarios:
        pairs.setdefault((scenario["size"], scenario["kind"]), {})[scenario.get("library", "as is")] = scenario
    lines = []
    for (size, kind), by in pairs.items():
        if len(by) < 2:
            continue
        old, new = by["as is"], next(v for k, v in by.items() if k != "as is")
        if not lines:
            lines += ["", "## Library as it is vs with the proposed changes", ""]
        lines += [f"{size}³, {kind} model:", "", "| part | s as is | s proposed | peak GiB as is | peak GiB proposed |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        phase_of = {"read": "read", "resample": "resample", "resample_back": "resample_back", "write": "write",
                    "surface": "surface"}
        for part in PARTS:
            if part in old["timings"]:
                phase = phase_of.get(part, "cascade" if part == "stage_stage1" else None)
                peaks = [f"{s.get('phase_peaks', {}).get(phase, 0) / GIB:.2f}" if phase else "" for s in (old, new)]
                lines.append(f"| {PART_NAMES.get(part, part)} | {old['timings'][part]:.2f} | "
                             f"{new['timings'].get(part, float('nan')):.2f} | {peaks[0]} | {peaks[1]} |")
        lines += [f"| **total / process peak** | **{old['total_s']:.2f}** | **{new['total_s']:.2f}** | "
                  f"**{old['peak_rss_bytes'] / GIB:.2f}** | **{new['peak_rss_bytes'] / GIB:.2f}** |", ""]
    return lines


def sweeps_section(results: dict) -> list[str]:
    lines = []
    networks = results["sweeps"].get("networks")
    if networks:
        rate = _rate(results)
        lines += [f"## Network sweeps (published-size model, input shapes of the {networks.get('size', 256)}³ "
                  "scan's cascade boxes)", "",
                  "`threads` 0 = onnxruntime's default (one per core). Random input of the real shape; "
                  "the floor is the float32 matmul rate, so int8 may go below 1.", "",
                  "| variant | stage | slices x plane | threads | batch | seconds | GFLOP/s | ratio to floor |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for row in networks["rows"]:
            axis = {"axial": 0, "coronal": 1, "sagittal": 2}[row["view"]]
            plane = "x".join(str(n) for i, n in enumerate(row["shape"][1:]) if i != axis)
            floor = row["flops"] / rate
            lines.append(f"| {row['variant']} | {row['stage']} | {row['slices']} x {plane} | {row['threads']} | "
                         f"{row['batch']} | {row['seconds']:.2f} | {row['flops'] / row['seconds'] / 1e9:.0f} | "
                         f"{row['seconds'] / floor:.2f} |")
        by = {}
        for row in networks["rows"]:
            if row["threads"] == 0:
                by.setdefault((row["variant"], row["batch"]), []).append(row)
        lines += ["", "Sum over the three stages (threads default):", "", "| variant | batch | seconds | ratio to floor |",
                  "| --- | ---: | ---: | ---: |"]
        for (variant, batch), rows in sorted(by.items()):
            if len(rows) == 3:
                seconds = sum(r["seconds"] for r in rows)
                floor = sum(r["flops"] for r in rows) / rate
                lines.append(f"| {variant} | {batch} | {seconds:.2f} | {seconds / floor:.2f} |")
        lines.append("")
    components = results["sweeps"].get("components")
    if components:
        lines += ["## Largest connected component: scipy.ndimage.label (library) vs cc3d "
                  f"({components.get('cc3d') or 'not installed'})", "",
                  "| mask | method | seconds | numpy peak (MiB) | voxels kept |", "| --- | --- | ---: | ---: | ---: |"]
        for row in components["rows"]:
            lines.append(f"| {row['mask']} | {row['method']} | {row['seconds']:.3f} | "
                         f"{row['peak_numpy_bytes'] / 2**20:.0f} | {row['kept']} |")
        lines.append("")
    resample = results["sweeps"].get("resample")
    if resample:
        lines += ["## Resampling a large scan onto the model grid (preprocess.resample_to_grid alone)", "",
                  "`library`: preprocess._shrink_for of the library timed (block factor int(ratio / 2), ratio = "
                  "grid spacing / scan spacing, or int(ratio) where the shrunk scan would still hold more than "
                  "preprocess.BSPLINE_SOURCE_VOXELS); `floor`: always int(ratio); `ceil-half`: "
                  "ceil(ratio / 2); each followed by the library's B-spline. `rms` is the "
                  "RMS difference from the library's result in units of its standard deviation (this scan is "
                  "itself upsampled x3, so it has little detail to lose: a real micro-CT differs more).", "",
                  "| scan | grid | shrink | seconds | peak RSS (GiB) | rms vs library |",
                  "| --- | ---: | --- | ---: | ---: | ---: |"]
        for row in resample:
            lines.append(f"| {max(results['sizes'])}³ | {row['grid']} | {row['shrink']} | {row['seconds']:.1f} | "
                         f"{row['peak_rss_bytes'] / GIB:.2f} | {row.get('rms_vs_library', 0):.4f} |")
        lines.append("")
    accuracy = results["sweeps"].get("int8_accuracy")
    if accuracy:
        lines += [f"## int8 (static QDQ, {accuracy['method']} calibration) vs float32, trained model, held-out phantoms",
                  "", "Labels compared on the model grid (cascade output: largest component, structure = argmax).", "",
                  "| seed | modality | scan | Dice int8 vs f32 (labyrinth) | per structure 1/2/3 | "
                  "Dice f32 vs truth | Dice int8 vs truth | network s f32 | network s int8 |",
                  "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
        for row in accuracy["rows"]:
            d = row["dice_int8_vs_float32"]
            per = "/".join(f"{d.get(str(k), float('nan')):.3f}" for k in (1, 2, 3))
            lines.append(f"| {row['seed']} | {row['modality']} | {'x'.join(map(str, row['scan_size']))} | "
                         f"{d['labyrinth']:.4f} | {per} | {row['dice_float32_vs_truth']['labyrinth']:.3f} | "
                         f"{row['dice_int8_vs_truth']['labyrinth']:.3f} | {row['network_s_float32']:.2f} | "
                         f"{row['network_s_int8']:.2f} |")
        rows = accuracy["rows"]
        worst = min(r["dice_int8_vs_float32"]["labyrinth"] for r in rows)
        speed = sum(r["network_s_float32"] for r in rows) / sum(r["network_s_int8"] for r in rows)
        lines += ["", f"Worst labyrinth Dice int8 vs float32: **{worst:.4f}** (acceptance: >= 0.99); "
                  f"int8 network speed-up on this model: **{speed:.2f}x**.", ""]
    return lines


def _recipe_text(size: int, recipe: dict) -> str:
    made = ("rendered directly" if recipe["factor"] == 1 else
            f"rendered at {recipe['max_size']}³ and trilinearly upsampled x{recipe['factor']} slab by slab")
    return (f"{size}³: seed {recipe['seed']}, {recipe['modality']}, {recipe['fov_mm']:g} mm cube "
            f"({recipe['fov_mm'] / size * 1000:.0f} µm voxels), {made}")


def render(results: dict, previous: Path | None = None) -> str:
    m = results["machine"]
    lines = ["# Benchmark results", "",
             f"Run {results['started']} - {results['finished']}; command: `{results['command']}` "
             "(with `PYTHONPATH=InnerEarSegmentation:Training`, from the repository root).", "",
             f"Machine: {m['nproc']} CPU(s), {m['cpu']}, AVX-512 VNNI {'yes' if m['vnni'] else 'no'}, "
             f"{m['memory_bytes'] / GIB:.0f} GiB RAM; Python {m['python']}, onnxruntime {m['onnxruntime']}, "
             f"numpy {m['numpy']}. Load average (1/5/15 min) at start {tuple(round(v, 2) for v in m['load_average'])}, "
             f"at end {tuple(round(v, 2) for v in m['load_average_end'])}.", "",
             "float32 matmul rate (numpy 4096² GEMM, best of 5, all cores): " +
             ", ".join(f"{g:.0f}" for g in results["matmul_gflops"]) + " GFLOP/s (start, end); the floor uses the "
             "higher.", "",
             "FLOPs are counted from each stage's ONNX graph (onnx shape inference at the real slice size): "
             "2·kh·kw·Cin·Cout·Hout·Wout per Conv, 2·kh·kw·Cin·Cout·Hin·Win per ConvTranspose, times the "
             "slices actually run (the cascade boxes, after a stage's down-sampling). Floor = FLOPs / matmul rate.", "",
             "**How the published-size figures are made.** The published-size cascade (U-Net base 32, 256³ grid, "
             "stage 1 at scale 0.5 on 128³, stages 2-3 at 256³ on the cropped box) is exported with the training "
             "code but has UNTRAINED (random) weights, so its masks are meaningless. Its masks are therefore NOT "
             "allowed to decide the crop: each stage's real network runs (inference.predict_volume, real "
             "onnxruntime session) on the real, cropped, down-sampled input of the phantom, and is timed; its "
             "output is then replaced by the phantom's exact labels on that region (an oracle), so the boxes "
             "are the phantom's true labyrinth bounding box plus cascade.py's margin, and components, mapping "
             "back, surface and writers work on realistic masks. Everything other than the networks (read, "
             "resample, components, resample back, surface, write) is the real pipeline code on the real "
             "phantom file. The oracle's own bookkeeping is measured and subtracted.", "",
             "Scans: int16 phantoms (InnerEarSegmentationLib.phantom) written as uncompressed .mha: " +
             "; ".join(_recipe_text(int(size), recipe) for size, recipe in results.get("recipes", {}).items()) +
             ". Peak RSS is the child process's ru_maxrss (os.wait4); the per-part column is the highest VmRSS "
             "sampled every 20 ms while that part ran (the cascade's stages and components share one).", ""]
    verdicts, body = [], []
    for scenario in results["scenarios"]:
        section, verdict = scenario_section(scenario, results)
        body += section
        verdicts.append(verdict)
    lines += ["## Targets", "", "| target | scenario | measured | met? |", "| --- | --- | --- | --- |"]
    for v in verdicts:
        name = f"{v['size']}³, {v['kind']}" + ("" if v["library"] == "as is" else f", library {v['library']}")
        if v["size"] == 256:
            lines.append(f"| whole pipeline <= {TARGET_SECONDS:.0f} s | {name} | {v['total']:.1f} s | "
                         f"{'yes' if v['total'] <= TARGET_SECONDS else 'NO'} |")
        if v["kind"] == "published" and v["size"] == 256:
            lines.append(f"| network <= {TARGET_FLOOR}x floor | {name} | {v['ratio']:.2f}x | "
                         f"{'yes' if v['ratio'] <= TARGET_FLOOR else 'NO'} |")
        if v["size"] >= 512:
            lines.append(f"| peak memory <= {TARGET_MEMORY:.0f}x scan | {name} | {v['peak'] / GIB:.2f} GiB = "
                         f"{v['peak_ratio']:.2f}x | {'yes' if v['peak_ratio'] <= TARGET_MEMORY else 'NO'} |")
    lines += reproduce(results)
    lines += comparison(results["scenarios"])
    lines += ["", "## Scenarios", ""] + body + sweeps_section(results)
    lines += ["", KEEP_MARKER, ""]
    if previous and previous.is_file() and KEEP_MARKER in previous.read_text():
        kept = previous.read_text().split(KEEP_MARKER, 1)[1].strip()
        if kept:
            lines += [kept, ""]
    return "\n".join(lines)


if __name__ == "__main__":  # re-render: python Benchmarks/report.py results.json RESULTS.md
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root / "Benchmarks"), str(root / "InnerEarSegmentation"), str(root / "Training")]
    data = json.loads(Path(sys.argv[1]).read_text())
    target = Path(sys.argv[2])
    target.write_text(render(data, target))
