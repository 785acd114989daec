#!/usr/bin/env bash
# Mutation testing (issue 15) of the library's core modules with mutmut 3, one module at a time.
#
# mutmut names modules by their path below its source folder, so each module gets a scratch
# workspace holding the library as src/InnerEarSegmentationLib (the tests find it there; conftest's
# own path insert points at a folder the workspace does not have). Only that module is mutated and
# only the fast test files that exercise it run, without the two shipped-model tests (minutes each).
# Lines that only build a user message (raise ...Error(...), progress text) are not mutated: their
# wording is checked by the tests that match messages, not mutant by mutant.
#
#   Testing/mutation.sh [WORKSPACE] [DEADLINE]   (defaults /tmp/innerear-mutmut, now + 90 min)
#   Modules run in the order below (or MODULES="model scanio" ...) until DEADLINE (any `date -d`
#   string, e.g. 03:40); the survivors of each are in WORKSPACE/<module>/results.txt.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORKSPACE="${1:-/tmp/innerear-mutmut}"
DEADLINE="$(date -d "${2:-now + 90 min}" +%s)"
PYTHON_BIN="$(dirname "$(command -v python)")"
declare -A TESTS=(  # the smallest set of fast files that exercises each module
  [cascade]="test_cascade.py"
  [postprocess]="test_postprocess.py test_structures.py"
  [pipeline]="test_pipeline.py test_structures.py test_locate.py"
  [mrml_output]="test_mrml_output.py"
  [model]="test_model.py"
  [scanio]="test_bad_input.py"
)
ORDER=(${MODULES:-cascade postprocess pipeline model mrml_output scanio})
unset PYTHONPATH
for module in "${ORDER[@]}"; do
  left=$(( DEADLINE - $(date +%s) ))
  if (( left < 120 )); then echo "$module: not run (deadline)"; continue; fi
  work="$WORKSPACE/$module"
  rm -rf "$work" && mkdir -p "$work/src"
  cp -r "$ROOT/InnerEarSegmentation/InnerEarSegmentationLib" "$work/src/"
  cp -r "$ROOT/Testing" "$ROOT/Training" "$work/"
  find "$work" -name __pycache__ -prune -exec rm -rf {} +
  selection=$(printf '"Testing/%s", ' ${TESTS[$module]})
  cat > "$work/pyproject.toml" <<TOML
[tool.pytest.ini_options]
testpaths = ["Testing"]
markers = ["slow: minutes-long tests"]

[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/InnerEarSegmentationLib/$module.py"]
do_not_mutate_patterns = ['raise (InputError|ModelError|OutputError)\\(', 'progress\\.report\\(']
also_copy = ["Testing/", "Training/"]
pytest_add_cli_args = ["-m", "not slow", "-p", "no:cacheprovider",
  "--deselect", "Testing/test_cascade.py::test_mirror_average_reads_a_mirrored_scan_as_the_mirror_of_its_reading",
  "--deselect", "Testing/test_mrml_segment.py::test_shipped_model_finds_the_labyrinth_in_a_phantom"]
pytest_add_cli_args_test_selection = [${selection%, }]
TOML
  echo "$module: mutating for at most ${left}s"
  (cd "$work" && timeout "$left" nice -n 19 "$PYTHON_BIN/mutmut" run --max-children 2 > run.log 2>&1)
  (cd "$work" && "$PYTHON_BIN/mutmut" results --all true > results-all.txt 2>&1;
   "$PYTHON_BIN/mutmut" results > results.txt 2>&1)
  echo "$module: $(grep -c ': killed' "$work/results-all.txt") killed, $(grep -c ': survived' "$work/results.txt") survived, $(grep -c ': not checked' "$work/results.txt") not checked"
done
