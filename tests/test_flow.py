"""The review flow priced in human seconds (labeler.flow): which faces go to grids, the order of the
steps and what they will cost."""

from __future__ import annotations

import pytest

from labeler.flow import TimeModel, Waiting, plan, say, split_waiting


def test_a_grid_pays_where_a_glance_and_the_occasional_mark_cost_less_than_a_card():
    tm = TimeModel()
    t = tm.grid_threshold()
    assert 0.6 < t < 0.75
    assert tm.grid_pays(t + 0.01) and not tm.grid_pays(t - 0.01)
    # a right face costs a glance on a grid, an Enter on a card
    assert tm.grid_seconds(1.0) == pytest.approx(0.4 + 1 / 48) and tm.card_seconds(1.0) == pytest.approx(1.2)
    # cheaper marks move the threshold down; a slow glance can make grids never pay
    assert TimeModel(grid_mark=0.5).grid_threshold() < t
    assert TimeModel(grid_seen=2.0).grid_threshold() == float("inf")


def test_the_plan_orders_audits_then_grids_by_class_size_then_cards():
    waiting = ([Waiting(i, "happy", 0.9) for i in range(100)] + [Waiting(100 + i, "sad", 0.8) for i in range(10)]
               + [Waiting(200 + i, "fear", 0.3) for i in range(7)] + [Waiting(300, None, 0.0)])
    steps = plan(12, waiting)
    assert [(s.kind, s.label, s.faces, s.pages) for s in steps] == [
        ("audit", None, 12, 0), ("grid", "happy", 100, 3), ("grid", "sad", 10, 1), ("cards", None, 8, 0)]
    tm = TimeModel()
    assert steps[0].seconds == pytest.approx(12 * 2.5)
    assert steps[-1].seconds == pytest.approx(7 * tm.card_seconds(0.3) + tm.card_seconds(0.0))
    text = say(steps)
    assert text.startswith("next: 12 audit cards, then 3 grid pages of happy, then 1 grid page of sad, then 8 cards (about ")
    grids, cards = split_waiting(waiting)
    assert [w.p_right for w in grids["happy"]] == sorted((w.p_right for w in grids["happy"]), reverse=True)
    assert {w.face_id for w in cards} == {200, 201, 202, 203, 204, 205, 206, 300}
    assert say([]) == "nothing left to review"


def test_decision_times_are_capped_and_a_grid_page_shares_its_time(sample_db):
    from labeler.flow import IDLE_CAP_S, capped
    from labeler.store import Store, add_annotation, add_audit, effort_rows, iter_face_records
    from labeler.store.grid import settle_grid

    assert capped(None) is None and capped(-3) == 0.0 and capped(2.5) == 2.5 and capped(3600) == IDLE_CAP_S
    assert capped(float("nan")) is None
    store = Store(sample_db)
    fids = sorted(r.face_id for r in iter_face_records(store) if r.face_id is not None)
    add_annotation(store, fids[0], "ann", "label", ["happy"], seconds=1.1, effort="card_accept")
    add_annotation(store, fids[1], "ann", "label", ["sad"], seconds=900.0, effort="card")  # went for coffee
    add_audit(store, fids[2], "ann", "label", ["fear"], seconds=3.0)
    settle_grid(store, "ann", "happy", fids[3:7], [fids[4]], seconds=6.0)
    add_annotation(store, fids[7], "other", "label", ["happy"])  # not timed: not counted
    rows = {(r.annotator, r.effort): r for r in effort_rows(store)}
    assert set(rows) == {("ann", "card_accept"), ("ann", "card"), ("ann", "audit"), ("ann", "grid_face"), ("ann", "grid_mark")}
    assert rows[("ann", "card")].seconds == IDLE_CAP_S and rows[("ann", "audit")].median == 3.0
    assert rows[("ann", "grid_face")].decisions == 3 and rows[("ann", "grid_face")].seconds == pytest.approx(4.5)
    settle_grid(store, "ann", "sad", fids[8:10], [], seconds=600.0)  # a page left open: capped as a whole
    assert {r.effort: r for r in effort_rows(store) if r.effort == "grid_face"}["grid_face"].seconds == pytest.approx(4.5 + IDLE_CAP_S)
    assert rows[("ann", "grid_mark")].decisions == 1 and rows[("ann", "grid_mark")].median == pytest.approx(1.5)
    from labeler.store.review import AnnotationError

    with pytest.raises(AnnotationError, match="effort: expected one of card"):
        add_annotation(store, fids[10], "ann", "label", ["happy"], effort="coffee")
