"""The package's metadata: pyproject.toml reads without setuptools deprecation warnings."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent

READ = (
    "from setuptools.config.pyprojecttoml import apply_configuration\n"
    "from setuptools.dist import Distribution\n"
    "dist = apply_configuration(Distribution(), 'pyproject.toml')\n"
    "print(dist.metadata.license_expression)\n"
)


def test_pyproject_reads_without_deprecation_warnings() -> None:
    # In a child process: setuptools patches distutils on import, which the test process does not want.
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", READ], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MIT"  # an SPDX expression, not the deprecated {text = ...} table


def test_the_build_asks_for_a_setuptools_that_reads_spdx_licenses() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    assert "setuptools>=77" in build["requires"]
