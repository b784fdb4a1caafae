#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (docs/gpu.md): check that CuPy sees the GPU, run the
# device tests on real CuPy (their 'cuda' cases then run on the GPU, not on tests/_fake_cupy.py), then
# the ResNet-20 training-step benchmark against PyTorch CUDA. Needs cupy-cuda12x (pip install
# 'deepnum[gpu]') and, for the comparison, a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import cupy; n = cupy.cuda.runtime.getDeviceCount(); print('CuPy', cupy.__version__, '-', n, 'CUDA device(s)'); assert n > 0"
"$PY" -m pytest -q tests/test_device.py tests/test_device_models.py -rA | tail -n 40
"$PY" -m bench.gpu --json bench/gpu_results.json
