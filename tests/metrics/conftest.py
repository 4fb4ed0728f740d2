"""Fixtures of the metrics tests: the reference implementations that are not segdata's dependencies."""

from __future__ import annotations

import os

import pytest

PANOPTICAPI_INSTALL = "pip install --no-deps panopticapi-lite"


@pytest.fixture(scope="session")
def panopticapi_evaluation():
    """``panopticapi.evaluation`` from PyPI's panopticapi-lite: required on CI, skipped with a reason elsewhere.

    panopticapi-lite pins numpy<2, but its evaluation code runs unchanged on
    NumPy 2, so it is installed without its dependencies (``PANOPTICAPI_INSTALL``).
    """
    try:
        from panopticapi import evaluation
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the PQ reference is missing on CI: {PANOPTICAPI_INSTALL}")
        pytest.skip(f"panopticapi is not installed ({PANOPTICAPI_INSTALL})")
    return evaluation
