"""The ``device`` fixture: a test that takes it runs once on 'cpu' and once on 'cuda'. The 'cuda' case
uses real CuPy on a real GPU where there is one (test id ``cuda``); elsewhere it runs on the CPU
simulation ``tests/_fake_cupy.py`` (test id ``cuda-fake``, marker ``fakecupy``), which catches every
place deepnum would call NumPy on device data, but not CUDA-specific faults (see docs/gpu.md)."""
from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests import _fake_cupy


def _real_gpu() -> bool:
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # no CuPy, no driver or no device
        return False


REAL_GPU = _real_gpu()
CUDA_PARAM = pytest.param("cuda", id="cuda") if REAL_GPU else pytest.param(
    "cuda", id="cuda-fake", marks=pytest.mark.fakecupy)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fakecupy: a 'cuda' case run on the CPU simulation of CuPy (no GPU here)")


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install the CPU simulation as ``cupy`` (and ``cupyx``) for one test; deepnum.cuda sees one device."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy)
    monkeypatch.setitem(sys.modules, "cupyx", _fake_cupy.cupyx)
    yield _fake_cupy


@pytest.fixture(params=["cpu", CUDA_PARAM])
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """'cpu' or 'cuda' (real CuPy with a GPU, else the simulation installed for this test)."""
    if request.param == "cuda" and not REAL_GPU:
        monkeypatch.setitem(sys.modules, "cupy", _fake_cupy)
        monkeypatch.setitem(sys.modules, "cupyx", _fake_cupy.cupyx)
    return request.param


@pytest.fixture(params=[CUDA_PARAM])
def cuda(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """'cuda' only (real, else simulated): for tests that compare a GPU run with a CPU run."""
    if not REAL_GPU:
        monkeypatch.setitem(sys.modules, "cupy", _fake_cupy)
        monkeypatch.setitem(sys.modules, "cupyx", _fake_cupy.cupyx)
    return request.param
