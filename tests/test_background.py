"""Retraining while people label (labeler.training.background): due after N new human labels, one at a
time, in its own process, its result kept for the app."""

from __future__ import annotations

import pytest

from labeler.store import Store, add_annotation, iter_face_records
from labeler.training import background as B


def test_a_retraining_is_due_every_n_new_labels_and_runs_once_in_its_own_process(sample_db, monkeypatch):
    store = Store(sample_db)
    monkeypatch.setenv("LABELER_RETRAIN_EVERY", "3")
    assert B.every() == 3 and not B.due(store)
    recs = [r for r in iter_face_records(store) if r.face_id is not None and r.model_label]
    for r in recs[:3]:
        add_annotation(store, r.face_id, "ann", "label", [r.model_label])
    assert B.due(store)
    proc = B.start(store, sample_db)
    assert proc is not None and B.running(store) and B.start(store, sample_db) is None  # one at a time
    assert proc.wait(timeout=600) in (0, 1)
    st = B.state(store)
    assert st["state"] in ("done", "failed") and st["labeled"] == 3 and not B.running(store)
    # done: the gate's decision is kept; failed: why (three labels may be too few to train on)
    assert ("promoted" in st and st["reason"]) if st["state"] == "done" else st["why"]
    assert not B.due(store)  # nothing new since it started
    monkeypatch.setenv("LABELER_RETRAIN_EVERY", "0")
    add_annotation(store, recs[3].face_id, "ann", "label", [recs[3].model_label])
    assert not B.due(store)
    monkeypatch.setenv("LABELER_RETRAIN_EVERY", "lots")
    with pytest.raises(ValueError, match="LABELER_RETRAIN_EVERY"):
        B.every()
