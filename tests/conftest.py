from __future__ import annotations

import os
from pathlib import Path

# no network in tests: Hugging Face `datasets` (hf export test) must not try to reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def store(db_url):
    from labeler.store import Store

    return Store(db_url)


@pytest.fixture(scope="session")
def sample_db_path(tmp_path_factory) -> Path:
    """A database built by a real `autolabel` run over sample_data/ (shared: do not modify;
    use ``sample_db`` for a private copy)."""
    from labeler.config import Config
    from labeler.pipeline import Autolabeler
    from labeler.ingest.rules import load_rules
    from labeler.store import Store

    path = tmp_path_factory.mktemp("sampledb") / "sample.db"
    store = Store(f"sqlite:///{path}")
    Autolabeler(store, Config(), load_rules()).run(SAMPLE, progress=False)
    store.engine.dispose()
    return path


@pytest.fixture
def sample_db(sample_db_path, tmp_path) -> str:
    """URL of a private copy of the sample database (safe to modify)."""
    import shutil

    dst = tmp_path / "sample.db"
    shutil.copyfile(sample_db_path, dst)
    return f"sqlite:///{dst}"
