"""The fast subset of ``benchmarks/faults.py``: every fault class once, against the real CLI.

Each case counts what it tried and what was handled; a case passes only if everything was
handled and nothing already checkpointed was lost.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import faults  # noqa: E402


def assert_all_handled(case):
    assert case.tried > 0
    assert case.handled == case.tried and case.lost == 0, case.notes


def test_kill9_and_resume_matches_uninterrupted_run(tmp_path):
    # 400 steps: on an idle machine a 120-step run can finish between two kills (the case then stops early)
    case = faults.kill_and_resume(tmp_path, kills=4, steps=400)
    assert_all_handled(case)
    assert case.tried == 5  # 4 kills + the final comparison


@pytest.mark.parametrize("fn", [faults.nonfinite, faults.full_disk, faults.unwritable, faults.untrusted_files,
                                faults.concurrent_writers, faults.bad_input], ids=lambda f: f.__name__)
def test_fault_class(fn, tmp_path):
    assert_all_handled(fn(tmp_path))
