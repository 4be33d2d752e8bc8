"""pipeline.allocator: the Makefile's glibc settings applied in-process, never over the user's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline.allocator import SETTINGS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

_PROBE = "import json; from pipeline.allocator import tune_allocator; print(json.dumps(tune_allocator()))"


def _applied(extra_env: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_every_setting_is_applied_when_the_environment_has_none() -> None:
    assert _applied({}) == list(SETTINGS)


def test_a_variable_the_user_set_is_left_to_glibc() -> None:
    assert _applied({"MALLOC_TOP_PAD_": "0"}) == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
