"""The lines that say, per ear, which side it is and what was measured: printed by the command
line and written under the QC picture, so both say the same."""

from __future__ import annotations

from typing import Any

from .cochlea_metrics import cli_summary
from .laterality import side_summary


def ear_lines(ears: list[dict]) -> list[str]:
    """Each ear's side and measurement lines; with two ears each line says which ear it is about
    (the side line names its side itself)."""
    lines = []
    for number, ear in enumerate(ears, start=1):
        which = "" if len(ears) == 1 else f"{ear['side']} ear: " if ear["side"] else f"ear {number}: "
        if "laterality" in ear:
            lines.append(("" if ear["side"] else which) + side_summary(ear["laterality"]))
        if "measurements" in ear:
            lines.append(which + cli_summary(ear["measurements"]))
    return lines


def picture_lines(report: dict[str, Any]) -> list[str]:
    """The QC picture's footer: what made it, then each ear's side and measurements."""
    model = report.get("model", {})
    made = f"{model.get('id', 'unknown model')} {model.get('version', '')}".strip()
    return [f"Model {made}. Research use only: not for diagnosis."] + ear_lines(report.get("ears", []))
