"""Shaped links (``shapedlink.py``): skipped with a reason on a machine without them, failed in CI."""

from __future__ import annotations

import os

import pytest

import shapedlink


@pytest.fixture(scope="session")
def netns() -> None:
    """Root, iproute2 and network namespaces; their absence skips locally and fails in CI."""
    reason = shapedlink.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the shaped-link tests: {reason}")
        pytest.skip(reason)
