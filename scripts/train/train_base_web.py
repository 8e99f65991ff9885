"""Fine-tune the shipped FER CNN on FER2013 (FER+ votes) and web-photo faces (issue 38); export ONNX + sidecar.

Needs the train extra (torch). The recipe (fixed steps and seed; 400 steps took 6-10 minutes on one thread of a
shared 2-core machine)::

    labeler autolabel ../shared/data/web_pool/images --db sqlite:////tmp/pool.db -q
    python scripts/train/face_crops_npz.py --db /tmp/pool.db --labels ../shared/data/web_pool/labels.csv --out /tmp/pool.npz
    python scripts/train/train_base_web.py --web-faces ../shared/data/web_faces --web-extra web_pool=/tmp/pool.npz \
        --init models/fer_ferplus_cnn.onnx --out-dir DIR

See labeler/training/web_train.py for the data rules, the split, the label cleaning and the schedule.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labeler.training.web_train import main  # noqa: E402

if __name__ == "__main__":
    main()
    raise SystemExit(0)
