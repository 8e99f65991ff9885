"""`autolabel --ray`: a partitioned run (labeler.fanout) as Ray tasks on a local Ray instance
started here (``ray.init(num_cpus=2)``): the tasks read their own files, the driver sends paths
and writes the results: the same faces and labels as the local path. Skipped where Ray is not
installed (pip install 'labeler[ray]'); a failure where LABELER_REQUIRE_RAY is set (scripts/test.sh)."""

from __future__ import annotations

import pytest

from labeler.config import Config
from labeler.ingest.rules import load_rules
from labeler.pipeline import Autolabeler
from labeler.store import Store

from .conftest import SAMPLE, need_module
from .test_workers import _counts, faces_by_content

ray = need_module("ray", "ray", "pip install 'labeler[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow  # about 50 s on 2 busy cores (Ray start-up, two runs)
def test_ray_labels_sample_data_as_the_local_path(local_ray, tmp_path, sample_db_path):
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    rep = Autolabeler(Store(url), Config(), load_rules(), ray="auto", partition=4).run(SAMPLE, progress=False)
    assert rep.faces > 5
    # the tasks got paths, not pixels: a few bytes per file besides its path (a decoded photo is megabytes)
    assert rep.fanout.files >= 15 and rep.fanout.tasks == -(-rep.fanout.files // 4)
    assert 0 < rep.sent_bytes - rep.fanout.path_bytes < 1024 * rep.fanout.files
    assert ray.is_initialized()  # the runner used the caller's Ray and left it running
    local = f"sqlite:///{sample_db_path}"
    assert faces_by_content(url) == faces_by_content(local)
    assert _counts(url) == _counts(local)
    # a rerun through Ray adds nothing
    Autolabeler(Store(url), Config(), load_rules(), ray="auto").run(SAMPLE, progress=False)
    assert _counts(url) == _counts(local)
