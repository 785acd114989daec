"""The shipped terminology context: correct codes, and entry strings exactly as Slicer builds them."""

from __future__ import annotations

import pytest

from InnerEarSegmentationLib import terminology

# SNOMED CT codes as listed in DICOM PS3.16 CID 4028 "Craniofacial Anatomic Region".
EXPECTED = {
    "Cochlea": ("80169004", "Cochlea"),
    "Vestibule": ("45006007", "Vestibule"),
    "Semicircular canals": ("279726004", "Semicircular canal"),
    "Inner ear": ("22945000", "Inner ear"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_carries_the_snomed_code(name):
    code, meaning = EXPECTED[name]
    fields = terminology.terminology_entry(name).split("~")
    assert len(fields) == 7
    assert fields[0] == terminology.context_name()
    assert fields[1] == "SCT^123037004^Anatomical Structure"
    assert fields[2] == f"SCT^{code}^{meaning}"
    assert fields[3] == "^^"


def test_aliases_and_laterality():
    assert terminology.terminology_entry("Labyrinth") == terminology.terminology_entry("Inner ear")
    assert terminology.terminology_entry("vestibule of labyrinth") == terminology.terminology_entry("Vestibule")
    assert terminology.terminology_entry("Cochlea", "left").split("~")[3] == "SCT^7771000^Left"
    with pytest.raises(KeyError):
        terminology.terminology_entry("Mastoid")
    assert not terminology.has_entry("Mastoid")


def test_colours_are_unit_rgb_and_distinct():
    colours = [terminology.label_color(name) for name in EXPECTED]
    assert all(0.0 <= c <= 1.0 for colour in colours for c in colour)
    assert len(set(colours)) == len(colours)


@pytest.mark.parametrize("name,laterality", [("Cochlea", None), ("Semicircular canals", None),
                                             ("Vestibule", "Right"), ("Inner ear", None)])
def test_slicer_loads_the_context_and_serialises_the_same_string(name, laterality):
    slicer = pytest.importorskip("slicer")
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert logic.LoadTerminologyFromFile(str(terminology.context_path())) == terminology.context_name()
    entry = slicer.vtkSlicerTerminologyEntry()
    slicer_label = (f"{laterality} " if laterality else "") + name
    assert logic.FindTypeInTerminologyBy3dSlicerLabel(terminology.context_name(), slicer_label.lower(), entry)
    assert logic.SerializeTerminologyEntry(entry) == terminology.terminology_entry(name, laterality)
    parsed = slicer.vtkSlicerTerminologyEntry()
    assert logic.DeserializeTerminologyEntry(terminology.terminology_entry(name, laterality), parsed)
    assert parsed.GetTypeObject().GetCodeValue() == EXPECTED[name][0]


def test_labels_without_codes_get_ours_and_explicit_codes_are_kept():
    from InnerEarSegmentationLib.labels import Label

    bare = Label(1, "Cochlea", (1.0, 0.0, 0.0))
    assert terminology.with_terminology(bare).terminology == terminology.terminology_entry("Cochlea")
    assert terminology.with_terminology(bare).color == (1.0, 0.0, 0.0)
    explicit = Label(1, "Cochlea", (1.0, 0.0, 0.0), "ctx~SCT^1^x~SCT^2^y~^^~~^^~^^")
    assert terminology.with_terminology(explicit) is explicit
    unknown = Label(4, "Mastoid air cells", (0.5, 0.5, 0.5))
    assert terminology.with_terminology(unknown) is unknown


def test_a_terminology_slicer_cannot_load_is_an_error_not_silence(tmp_path):
    """Real vtkSlicerTerminologiesModuleLogic: it returns "" for a broken file instead of raising."""
    slicer = pytest.importorskip("slicer")
    from InnerEarSegmentationLib.errors import InnerEarError

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert terminology.load_into_slicer(logic) == terminology.context_name()
    broken = tmp_path / "broken.term.json"
    broken.write_text("{ not json", encoding="utf-8")
    with pytest.raises(InnerEarError, match="could not load the terminology"):
        terminology.load_into_slicer(logic, broken)


def test_the_shipped_models_colours_are_the_recommended_ones():
    """A segment's colour must not change when the user re-picks its terminology in Slicer."""
    from InnerEarSegmentationLib.model import load_model

    for label in load_model(verify=False).labels:
        assert terminology.label_color(label.name) == pytest.approx(
            tuple(round(c * 255) / 255 for c in label.color)), label.name
