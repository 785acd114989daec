"""The Extensions Index's description checks that can run without a network, in our own words,
and the three descriptions of the extension (CMake, .s4ext, catalog .json) kept in step."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "InnerEarSegmentation"
# The Index's accepted categories include these two for an inner-ear tool.
ACCEPTED_CATEGORIES = {"Segmentation", "Otolaryngology"}
CATALOG_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                "dicom_support_rule", "build_subdirectory", "enabled", "tier"}


def catalog() -> dict:
    return json.loads((ROOT / f"{NAME}.json").read_text(encoding="utf-8"))


def s4ext() -> dict:
    lines = (ROOT / f"{NAME}.s4ext").read_text(encoding="utf-8").splitlines()
    return dict(line.split(" ", 1) for line in lines if line and not line.startswith("#") and " " in line)


def cmake() -> str:
    return (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")


def cmake_value(key: str) -> str:
    return re.search(rf'set\s*\(EXTENSION_{key}\s+"([^"]*)"\s*\)', cmake()).group(1)


def test_catalog_entry_is_lf_json_with_the_schemas_keys():
    raw = (ROOT / f"{NAME}.json").read_bytes()
    assert b"\r" not in raw
    entry = catalog()
    assert set(entry) <= CATALOG_KEYS and {"$schema", "category", "scm_url", "scm_revision"} <= set(entry)
    assert not NAME.lower().startswith("slicer")  # the Index refuses a "Slicer" prefix on the name


def test_repository_url_category_and_cmake_project():
    entry = catalog()
    url = urllib.parse.urlsplit(entry["scm_url"])
    assert url.scheme in ("https", "git") and url.netloc
    assert "slicer" in url.path.rstrip("/").split("/")[-1].lower()  # repository named Slicer<Name>
    assert entry["category"] in ACCEPTED_CATEGORIES
    assert re.search(r"project\s*\(\s*([^\s)]+)", cmake()).group(1) == NAME
    assert cmake_value("ICONURL").startswith("http")
    assert cmake_value("SCREENSHOTURLS") and all(u.startswith("http") for u in cmake_value("SCREENSHOTURLS").split())


def test_a_licence_file_at_the_root():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0" in text


def test_s4ext_catalog_and_cmake_say_the_same():
    entry, old, name = catalog(), s4ext(), NAME
    assert old["scmurl"] == entry["scm_url"] and old["scmrevision"] == entry["scm_revision"]
    assert old["category"] == entry["category"] == cmake_value("CATEGORY")
    assert old.get("build_subdirectory", ".") == entry.get("build_subdirectory", ".")
    assert str(old.get("tier", "")) == str(entry.get("tier", ""))
    assert (old["depends"] == "NA") == (not entry.get("build_dependencies")) == (cmake_value("DEPENDS") == "NA")
    for key, variable in (("homepage", "HOMEPAGE"), ("contributors", "CONTRIBUTORS"),
                          ("description", "DESCRIPTION"), ("iconurl", "ICONURL"),
                          ("screenshoturls", "SCREENSHOTURLS")):
        assert old[key] == cmake_value(variable), f"{name}.s4ext {key} differs from CMakeLists.txt"
