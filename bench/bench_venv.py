# The benchmark virtual environment (bench/.venv): created on first use, peers (Optuna, ...) installed from PyPI.
# Shared by bench/engine and bench/multifidelity run_bench.py, so each harness measures the same installed peer.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")


def ensure_optuna(requirement="optuna"):
    """Creates bench/.venv if needed, installs `requirement` unless optuna imports, returns optuna's version."""
    if not os.path.exists(VENV_PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    if subprocess.call([VENV_PY, "-c", "import optuna"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([VENV_PY, "-m", "pip", "install", "-q", requirement])
    return subprocess.check_output([VENV_PY, "-c", "import optuna; print(optuna.__version__)"], text=True).strip()
