"""Where the shipped files are: the model weights (`models/`) and the migrations (`db/`).

Both folders sit at the top of the source tree, and the wheel carries them as the packages
``labeler.weights`` and ``labeler.migrations`` (a package-dir mapping in pyproject.toml), so an
editable install, a plain ``pip install .`` and a source checkout all find them here.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parent.parent


def _package_dir(package: str, fallback: str) -> Path:
    try:
        p = Path(str(resources.files(package)))
        if p.is_dir():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    return _SOURCE_TREE / fallback


def models_dir() -> Path:
    """``$LABELER_MODELS_DIR`` if set, else the shipped ``models/`` folder."""
    env = os.environ.get("LABELER_MODELS_DIR")
    return Path(env) if env else _package_dir("labeler.weights", "models")


def migrations_dir() -> Path:
    """The Alembic script folder (``db/``)."""
    return _package_dir("labeler.migrations", "db")
