"""Shared fixtures: both SectionTable implementations, both eras (sizes, data folders and small
layouts are in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import sparsemem
from helpers import REPO  # noqa: F401  (test_c_helpers and test_core_constants import it from here)
from sparsemem import reference

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

KERNELS = ("5.2", "5.3")
IMPLS = {"compiled": (sparsemem.SectionTable, sparsemem.VmemAltmap),
         "reference": (reference.SectionTable, reference.VmemAltmap)}


@pytest.fixture(params=KERNELS)
def kernel(request):
    return request.param


@pytest.fixture(params=list(IMPLS))
def impl(request):
    """(SectionTable class, VmemAltmap class) of the compiled core and of the reference."""
    return IMPLS[request.param]
