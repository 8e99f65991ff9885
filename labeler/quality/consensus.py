"""Consensus labels from several annotators: the Dawid-Skene crowd model (Dawid and Skene 1979,
through ``crowd-kit``), with a posterior per face and an estimated accuracy per annotator.

Dawid-Skene learns one confusion matrix per annotator and the class priors by EM, starting from
the majority vote; a face's consensus is its most probable class and its posterior that class's
probability. It needs a face rated twice by two annotators to learn anything: without one, the
consensus is each face's one rating (``method`` "majority", no posterior). Only the seven classes are modelled: an
``unusable`` answer is not a rating (it stays in the human majority, ``labeler.store.vote``).
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

from labeler.quality.records import AnnotatorSkill, FaceConsensus, Rating

DAWID_SKENE = "dawid-skene"
MAJORITY = "majority"


def _frame(ratings: Sequence[Rating]):
    import pandas as pd

    return pd.DataFrame({"task": [r.face_id for r in ratings], "worker": [r.annotator for r in ratings],
                         "label": [r.label for r in ratings]})


def consensus(ratings: Iterable[Rating], classes: Sequence[str], n_iter: int = 100
              ) -> tuple[dict[int, FaceConsensus], list[AnnotatorSkill]]:
    """(face -> consensus, per-annotator skill) from the ratings of ``classes``."""
    rs = [r for r in ratings if r.label in classes]
    per_face: dict[int, int] = {}
    faces_of: dict[str, set[int]] = {}
    for r in rs:
        per_face[r.face_id] = per_face.get(r.face_id, 0) + 1
        faces_of.setdefault(r.annotator, set()).add(r.face_id)
    if not rs or max(per_face.values()) < 2 or len(faces_of) < 2:
        # every face has one rating (an annotator has one current answer per face): it is the consensus
        return ({r.face_id: FaceConsensus(r.face_id, r.label, None, 1, MAJORITY) for r in rs},
                [AnnotatorSkill(a, None, len(fs)) for a, fs in sorted(faces_of.items())])
    from crowdkit.aggregation import DawidSkene

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = DawidSkene(n_iter=n_iter).fit(_frame(rs))
    probas = ds.probas_
    cols = list(probas.columns)
    out = {}
    for f, row in zip(probas.index, probas.to_numpy()):
        k = int(row.argmax())
        out[int(f)] = FaceConsensus(int(f), str(cols[k]), float(row[k]), per_face[int(f)], DAWID_SKENE)
    return out, _skills(ds, faces_of)


def _skills(ds, faces_of: dict[str, set[int]]) -> list[AnnotatorSkill]:
    """Each annotator's probability of giving the true class, weighted by the class priors."""
    errors, priors = ds.errors_, ds.priors_
    out = []
    for a, fs in sorted(faces_of.items()):
        acc = 0.0
        for c, p in priors.items():
            key = (a, c)
            if key in errors.index and c in errors.columns:
                acc += float(p) * float(errors.loc[key, c])
        out.append(AnnotatorSkill(a, acc, len(fs)))
    return out
