"""Shared fixtures: both SectionTable implementations, both eras, the shared data folder."""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

import sparsemem
from sparsemem import reference

REPO = pathlib.Path(__file__).resolve().parent.parent

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

KERNELS = ("5.2", "5.3")
IMPLS = {"compiled": (sparsemem.SectionTable, sparsemem.VmemAltmap),
         "reference": (reference.SectionTable, reference.VmemAltmap)}


def shared_dir() -> pathlib.Path | None:
    """../shared beside the checkout (or $SPARSEMEM_SHARED), if present."""
    env = os.environ.get("SPARSEMEM_SHARED")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if (c / "spec").is_dir() or (c / "data").is_dir():
            return c
    return None


@pytest.fixture(params=KERNELS)
def kernel(request):
    return request.param


@pytest.fixture(params=list(IMPLS))
def impl(request):
    """(SectionTable class, VmemAltmap class) of the compiled core and of the reference."""
    return IMPLS[request.param]
