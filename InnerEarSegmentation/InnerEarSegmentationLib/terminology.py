"""Standard codes for the segments, read from the Slicer terminology context we ship.

Slicer's own lists only know "Inner ear", so ``InnerEarSegmentation.term.json`` (a
SegmentationCategoryTypeModifier context) adds cochlea, vestibule and semicircular canal with
their SNOMED CT codes from DICOM CID 4028. The strings built here are what Slicer stores in a
segment's "TerminologyEntry" tag, so a .seg.nrrd written without Slicer carries the same codes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from .errors import InnerEarError
from .labels import Label

TERM_FILE_NAME = "InnerEarSegmentation.term.json"
TAG_NAME = "TerminologyEntry"
# Other names users or manifests give the same structures.
ALIASES = {
    "labyrinth": "inner ear",
    "inner ear (labyrinth)": "inner ear",
    "vestibule of labyrinth": "vestibule",
    "semicircular canals": "semicircular canal",
}


def context_path() -> Path:
    """The .term.json ships inside the package, so pip wheels and Slicer builds both carry it."""
    path = Path(__file__).resolve().parent / TERM_FILE_NAME
    if not path.is_file():
        raise InnerEarError(f"The terminology file {path} is missing; re-install InnerEarSegmentation.")
    return path


@lru_cache(maxsize=None)
def _context() -> dict[str, Any]:
    return json.loads(context_path().read_text(encoding="utf-8"))


def context_name() -> str:
    """The name Slicer lists the context under once it is loaded."""
    return str(_context()["SegmentationCategoryTypeContextName"])


def _code(item: Optional[dict[str, Any]]) -> str:
    if not item:
        return "^^"
    return f"{item['CodingSchemeDesignator']}^{item['CodeValue']}^{item['CodeMeaning']}"


def _find(label_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(category, type) whose meaning or Slicer label matches the name, ignoring case."""
    wanted = label_name.strip().lower()
    wanted = ALIASES.get(wanted, wanted)
    for category in _context()["SegmentationCodes"]["Category"]:
        for item in category["Type"]:
            names = {item["CodeMeaning"].lower(), item.get("3dSlicerLabel", "").lower()}
            if wanted in names:
                return category, item
    raise KeyError(f"{label_name!r} is not in the terminology context {context_name()!r}")


def _modifier(item: dict[str, Any], laterality: Optional[str]) -> Optional[dict[str, Any]]:
    if not laterality:
        return None
    for modifier in item.get("Modifier", []):
        if modifier["CodeMeaning"].lower() == laterality.lower():
            return modifier
    raise KeyError(f"{item['CodeMeaning']} has no laterality {laterality!r}; use 'left' or 'right'")


def terminology_entry(label_name: str, laterality: Optional[str] = None) -> str:
    """Slicer's serialised entry: context~category~type~modifier~anatomicContext~region~regionModifier.

    Matches what vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry gives for the same
    item; these structures take no anatomic region, so the last three fields are empty.
    """
    category, item = _find(label_name)
    fields = [context_name(), _code(category), _code(item), _code(_modifier(item, laterality)),
              "", _code(None), _code(None)]
    return "~".join(fields)


def label_color(label_name: str) -> tuple[float, float, float]:
    """The recommended display colour, RGB in 0..1 as Slicer's segments take it."""
    _, item = _find(label_name)
    red, green, blue = item["recommendedDisplayRGBValue"]
    return (red / 255.0, green / 255.0, blue / 255.0)


def has_entry(label_name: str) -> bool:
    try:
        _find(label_name)
    except KeyError:
        return False
    return True


def with_terminology(label: Label) -> Label:
    """The label with our codes filled in where the model's manifest left the terminology empty."""
    if label.terminology or not has_entry(label.name):
        return label
    return Label(label.value, label.name, label.color, terminology_entry(label.name), label.description)



def load_into_slicer(terminologies_logic, path: Optional[Path] = None) -> str:
    """Registers the context with Slicer's terminology logic; returns its name.

    ``LoadTerminologyFromFile`` returns "" when it fails instead of raising, so the failure is
    turned into an error here rather than leaving the selector silently without our codes."""
    path = Path(path or context_path())
    name = terminologies_logic.LoadTerminologyFromFile(str(path))
    if not name:
        raise InnerEarError(f"Slicer could not load the terminology {path}; the segments keep their "
                            "codes, but the terminology selector will not list cochlea, vestibule and "
                            "semicircular canal. Re-install InnerEarSegmentation.")
    return name
