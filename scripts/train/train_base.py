"""Train the default-candidate FER model from scratch on FER2013 + FER+ votes; export ONNX + sidecar.

Needs a venv with torch (not the runtime venv)::

    python3 -m venv /work/venv-train && /work/venv-train/bin/pip install torch==2.13.0 onnx onnxruntime numpy \
        opencv-python-headless Pillow && /work/venv-train/bin/pip install -e .
    nohup /work/venv-train/bin/python scripts/train/train_base.py --time-budget-min 84 --epochs 120 > /tmp/train_base.log 2>&1 &

Writes models/fer_ferplus_cnn.onnx and models/fer_ferplus_cnn.json (see labeler/training/base_train.py
for the data rules, the augmentation and the schedule; ``--help`` for the options).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labeler.training.base_train import main  # noqa: E402

if __name__ == "__main__":
    main()
    raise SystemExit(0)
