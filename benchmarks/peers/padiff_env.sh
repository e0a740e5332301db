#!/usr/bin/env bash
# Builds the virtual environment PaDiff 0.2.0 (the peer tool, https://github.com/PaddlePaddle/PaDiff)
# runs in, for benchmarks/padiff.py (which finds it at /work/padiff-env, or through
# LENET_PADIFF_PYTHON=/path/to/venv/bin/python).
#
# Its own venv, never the project's: `import padiff` puts a finder first on sys.meta_path and
# wraps torch/paddle functions and Tensor methods (padiff/__init__.py), for every later import.
#
#   bash benchmarks/peers/padiff_env.sh [VENV_DIR]      (default /work/padiff-env)
set -euo pipefail
VENV=${1:-/work/padiff-env}
python3.11 -m venv "$VENV"
PIP="$VENV/bin/pip"

# torch pinned: on this machine pip.conf's find-links (/opt/wheels) holds the CPU wheel
# torch-2.13.0+cpu for exactly this pin; an unpinned torch from PyPI is the CUDA build (GBs).
# Elsewhere use: --index-url https://download.pytorch.org/whl/cpu
"$PIP" install torch==2.13.0
"$PIP" install paddlepaddle==3.3.1

# padiff 0.2.0's metadata requires only numpy (Requires-Dist: numpy), so it pulls neither torch
# nor paddle; --no-deps all the same, so nothing it names can replace the pins above.
"$PIP" install --no-deps padiff==0.2.0
# ... but padiff/file_loader.py does `import yaml` (configs/assign_weight.yaml) and its metadata
# forgets it: without PyYAML `import padiff` fails with ModuleNotFoundError: No module named 'yaml'.
# numpy came with torch/paddle already.
"$PIP" install pyyaml numpy

# No shim: padiff 0.2.0 imports and runs unmodified on torch 2.13.0 + paddlepaddle 3.3.1 (CPU).
"$VENV/bin/python" -c "import padiff, torch, paddle; print('padiff', padiff.__version__, 'torch', torch.__version__, 'paddle', paddle.__version__)"
