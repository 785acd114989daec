"""K-fold cross-validation by scan (all slices of a scan in one fold), as in the paper.

    python -m innerear_training.cv --folds 4 --train-phantoms 24 --stage-minutes 5 --out CV.md

For each fold the cascade is trained on the other folds (a few of their scans held out for early
stopping) and scored on the fold's scans on the model grid: per-structure Dice of the single
U-Net (stage 1 + largest component) against the cascade (stage 3), per fold and overall, with a
Wilcoxon signed-rank test over all scans.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from . import data as datamod
from .report import emit
from .train import add_data_arguments, add_training_arguments, config_from, load_cases, log, split_validation, train_cascade


def folds_of(cases: list, folds: int) -> list[list]:
    return [cases[i::folds] for i in range(folds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.cv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/innerear-cv"))
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--out", type=Path, help="Markdown file for the table")
    add_data_arguments(parser)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    command = "python -m innerear_training.cv " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    config = config_from(args)
    normalisation = {"method": "volume-zscore"}
    cases, _ = load_cases(args, normalisation)
    datamod.strip_raw(cases)
    labels = datamod.labels_for(cases)
    names = ["labyrinth"] + ([str(label["value"]) for label in labels] if len(labels) > 1 else [])
    titles = {"labyrinth": "Labyrinth", **{str(l["value"]): l["name"] for l in labels}}
    last = f"stage{config.stages}"
    per_fold, all_single, all_cascade = [], [], []
    started = time.time()
    for fold, test in enumerate(folds_of(cases, args.folds)):
        rest = [c for c in cases if all(c is not t for t in test)]
        train, val = split_validation(rest, args.val_fraction, args.seed)
        log(f"fold {fold + 1}/{args.folds}: {len(train)} train, {len(val)} validation, {len(test)} test scans")
        result = train_cascade(train, val, config, args.workdir / f"fold{fold + 1}", 1 + len(labels),
                               evaluate_cases=test)
        single, cascade = result["eval_dice"]["stage1"], result["eval_dice"][last]
        per_fold.append((fold + 1, [c.name for c in test], single, cascade))
        all_single += single
        all_cascade += cascade

    lines = [f"# {args.folds}-fold cross-validation by scan", "", "Command:", "", "```",
             f"cd Training && PYTHONPATH=../InnerEarSegmentation {command}", "```", "",
             f"Dice on the model grid ({config.grid}³), single U-Net (stage 1 + largest component) vs "
             f"cascade ({last}); {len(cases)} scans; {(time.time() - started) / 60:.0f} min.", "",
             "| Fold | Scans | " + " | ".join(f"{titles[n]} single | {titles[n]} cascade" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for fold, test_names, single, cascade in per_fold:
        cells = []
        for n in names:
            cells += [f"{np.mean([s[n] for s in single]):.3f}", f"{np.mean([s[n] for s in cascade]):.3f}"]
        lines.append(f"| {fold} | {len(test_names)} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        a, b = [s[n] for s in all_single], [s[n] for s in all_cascade]
        cells += [f"{np.mean(a):.3f} ± {np.std(a, ddof=1):.3f}", f"{np.mean(b):.3f} ± {np.std(b, ddof=1):.3f}"]
    lines.append("| all | " + str(len(all_single)) + " | " + " | ".join(cells) + " |")
    lines.append("")
    for n in names:
        a, b = np.array([s[n] for s in all_single]), np.array([s[n] for s in all_cascade])
        try:
            p = stats.wilcoxon(b, a).pvalue if not np.allclose(a, b) else float("nan")
        except ValueError:
            p = float("nan")
        lines.append(f"- {titles[n]}: cascade − single = {np.mean(b - a):+.4f}, Wilcoxon p = {p:.2g}")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
