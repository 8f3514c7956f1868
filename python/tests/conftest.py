"""Shared by the Python tests: the package under test is the build tree's (PYTHONPATH, set by ctest)."""

import numpy
import pytest


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)
