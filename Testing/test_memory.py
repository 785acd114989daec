"""The command line and the worker give freed arrays back to the system (glibc's mmap threshold)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from InnerEarSegmentationLib.subprocess_run import child_environment

# Frees two 8 MB arrays that lie below a third one still in use: from glibc's heap (after a
# 20 MB block has raised its threshold) they would stay in the process; mapped, they go back.
CHILD = """
import sys
import numpy as np
from InnerEarSegmentationLib.memory import return_large_blocks_promptly
rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
fixed = return_large_blocks_promptly() if sys.argv[1] == 'fixed' else False
big = np.ones(20 * 2**20 // 8); del big
a, b, c = (np.ones(8 * 2**20 // 8) for _ in range(3))
before = rss(); del a, b
print(fixed, (before - rss()) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_freed_arrays_go_back_to_the_system_once_the_threshold_is_fixed():
    fixed, returned = subprocess.run([sys.executable, "-c", CHILD, "fixed"], capture_output=True, text=True,
                                     check=True, env=child_environment()).stdout.split()
    assert fixed == "True" and float(returned) > 14.0  # both 8 MB arrays
