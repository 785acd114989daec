"""Markdown tables of a leave-one-specimen-out run: per method, per protocol, tight crops,
paired tests and every scan."""

from __future__ import annotations

import numpy as np
from scipy import stats

SUMMARY = [("dice", "Labyrinth Dice"), ("dice_1", "Cochlea"), ("dice_2", "Vestibule"), ("dice_3", "Canals"),
           ("hd95_mm", "HD95 sub-voxel (mm)"), ("hd95_voxel_mm", "HD95 voxel-centre (mm)"),
           ("msd_mm", "Mean surface dist. (mm)")]


def mean_sd(values) -> str:
    values = np.asarray(list(values), dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "-" if values.size == 0 else f"({values.size} not finite)"
    text = f"{finite.mean():.3f} ± {finite.std(ddof=1):.3f}" if finite.size > 1 else f"{finite.mean():.3f}"
    return text + (f" ({values.size - finite.size} not finite)" if finite.size < values.size else "")


def wilcoxon(a, b) -> str:
    """Two-sided Wilcoxon signed-rank p; none where the pairs cannot differ (a saturated metric)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        return "n/a (n < 2)"
    if np.allclose(a, b):
        return "n/a (no difference)"
    if np.allclose(a, a[0]) and np.allclose(b, b[0]):
        return "n/a (saturated)"
    try:
        return f"{stats.wilcoxon(a, b).pvalue:.2g} (n = {a.size})"
    except ValueError:
        return "n/a"


def summary_table(rows: dict[str, list[dict]], keys=SUMMARY) -> list[str]:
    lines = ["| Method | n | " + " | ".join(t for _, t in keys) + " | Worst scan (Dice) |",
             "|---|---|" + "---|" * len(keys) + "---|"]
    for method, items in rows.items():
        if not items:
            continue
        worst = min(items, key=lambda r: r["dice"])
        lines.append(f"| {method} | {len(items)} | " + " | ".join(mean_sd(r[k] for r in items) for k, _ in keys)
                     + f" | {worst['scan']} ({worst['dice']:.3f}) |")
    return lines


def tests_table(rows: dict[str, list[dict]], keys=("dice", "hd95_mm")) -> list[str]:
    names = list(rows)
    if len(names) < 2:
        return []
    lines = [f"| {names[0]} vs | " + " | ".join(f"p ({k})" for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for other in names[1:]:
        lines.append(f"| {other} | " + " | ".join(
            wilcoxon([r[k] for r in rows[names[0]]], [r[k] for r in rows[other]]) for k in keys) + " |")
    return lines


def scan_table(cases: list[dict], rows: dict[str, list[dict]]) -> list[str]:
    names = list(rows)
    lines = ["| Scan | Protocol | FOV | Mirror | Size | Spacing (mm) | Render (s) | "
             + " | ".join(f"{n}: Dice (C/V/S), HD95" for n in names) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(names)]
    for index, case in enumerate(cases):
        cells = []
        for name in names:
            r = rows[name][index]
            cells.append(f"{r['dice']:.3f} ({r['dice_1']:.2f}/{r['dice_2']:.2f}/{r['dice_3']:.2f}), {r['hd95_mm']:.2f}")
        lines.append(f"| {case['scan']} | {case['protocol']} | {case['fov']} | {'yes' if case['mirrored'] else 'no'} | "
                     f"{'x'.join(map(str, case['size']))} | {'x'.join(f'{s:.3g}' for s in case['spacing_mm'])} | "
                     f"{case['render_s']:.1f} | " + " | ".join(cells) + " |")
    return lines
