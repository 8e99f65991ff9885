"""The active-learning order of the review queue (labeler.active) and its use by store.review."""

from __future__ import annotations

import numpy as np

import labeler.store as st
from labeler.active import Coverage, QueueFace, face_value, queue_order, reading_order


def _f(fid, iid, x, y, top=0.5, label="happy", folder="/a", size=10.0, pri=2.0):
    return QueueFace(fid, iid, (x, y, x + size, y + size), pri, top, label, folder)


def test_reading_order_rows_then_left_to_right():
    rng = np.random.default_rng(0)
    grid = [(r, c) for r in range(3) for c in range(4)]
    faces = [_f(100 + i, 1, 30.0 * c + rng.uniform(-2, 2), 40.0 * r + rng.uniform(-2, 2)) for i, (r, c) in enumerate(grid)]
    shuffled = [faces[i] for i in rng.permutation(len(faces))]
    assert reading_order([(f.face_id, *f.box) for f in shuffled]) == [f.face_id for f in faces]
    boxes = [(1, 300, 12, 340, 52), (2, 10, 100, 50, 140), (3, 10, 10, 50, 50), (4, 150, 0, 190, 40), (5, 200, 105, 240, 145)]
    assert reading_order(boxes) == [3, 4, 1, 2, 5] and reading_order([]) == []


def test_reading_order_of_a_crowd_with_faces_of_different_sizes():
    """Within a row faces go by their centres (a big face whose left edge is further left but whose
    centre is right of a small one's comes second); a row takes faces within half the median face
    height of its first face's centre, so a slightly lower face of the same row stays in it, and a
    degenerate box (no height) does not merge rows."""
    big, small = (1, 0, 0, 200, 100), (2, 60, 30, 90, 60)  # centres x 100 and 75
    assert reading_order([big, small]) == [2, 1]
    row = [(10, 0, 0, 40, 40), (11, 50, 15, 90, 55), (12, 100, 5, 140, 45)]  # centres y 20, 35, 25: one row
    below = [(13, 0, 60, 40, 100)]  # centre 80: the next row
    assert reading_order(row + below) == [10, 11, 12, 13]
    assert reading_order([(7, 0, 5, 10, 5), (8, 0, 6, 10, 6)]) == [7, 8]
    assert queue_order([QueueFace(f, 1, b) for f, *b in row + below]) == [10, 11, 12, 13]  # the queue: the same rule


def test_photos_stay_together_most_useful_first():
    faces = [
        _f(1, 10, 0, 0, top=0.9), _f(2, 10, 50, 0, top=0.95),  # photo 10: the model is sure
        _f(3, 20, 50, 0, top=0.3), _f(4, 20, 0, 0, top=0.9),  # photo 20: one unsure face
        _f(5, 30, 0, 0, top=0.8),
    ]
    order = queue_order(faces)
    assert order == [4, 3, 5, 1, 2]  # photo 20 first (its unsure face), in reading order (left face first)
    # a started photo (a face of it labeled) is finished first
    assert queue_order(faces, Coverage(started_images=frozenset({10})))[:2] == [1, 2]


def test_uncovered_classes_and_folders_come_first():
    a, b = _f(1, 1, 0, 0, label="happy"), _f(2, 2, 0, 0, label="disgust")
    cov = Coverage(per_class={"happy": 50})
    assert face_value(b, cov) > face_value(a, cov) and queue_order([a, b], cov) == [2, 1]
    c, d = _f(3, 3, 0, 0, folder="/web"), _f(4, 4, 0, 0, folder="/lab")
    cov = Coverage(per_folder={"/web": 80})
    assert queue_order([c, d], cov) == [4, 3]
    # with equal coverage, uncertainty decides
    e, f = _f(5, 5, 0, 0, top=0.99), _f(6, 6, 0, 0, top=0.4)
    assert queue_order([e, f]) == [6, 5]


def test_review_queue_serves_photos_whole_in_reading_order(sample_db):
    store = st.Store(sample_db)
    recs = {r.face_id: r for r in st.iter_face_records(store) if r.face_id is not None}
    q = st.review_queue(store, "tester", limit=10_000)
    assert q and set(q) <= set(recs)
    imgs = [recs[f].image_id for f in q]
    seen = []
    for i in imgs:  # each photo's faces are contiguous
        if not seen or seen[-1] != i:
            assert i not in seen
            seen.append(i)
    multi = [i for i in seen if imgs.count(i) > 1]
    assert multi  # the sample's group photo (happy_team_photo.jpg) has several faces in review
    for i in multi:
        faces = [recs[f] for f in q if recs[f].image_id == i]
        assert reading_order([(r.face_id, r.x1, r.y1, r.x2, r.y2) for r in faces]) == [r.face_id for r in faces]
    assert st.review_queue(store, "tester", limit=3) == q[:3]
    # answering the first face of a photo keeps the rest of that photo at the head of the queue
    first = next(f for f in q if recs[f].image_id == multi[0])
    st.add_annotation(store, first, "tester", "label", ["happy"])
    rest = [f for f in q if recs[f].image_id == multi[0] and f != first]
    assert st.review_queue(store, "tester", limit=len(rest)) == rest
