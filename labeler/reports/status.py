"""`labeler status`: the counts by state as lines of text (the command only prints them)."""

from __future__ import annotations

from labeler.store import Store, mask_url, status_counts

#: (key of ``labeler.store.status_counts``, what it counts), in the order printed
ROWS = (
    ("images", "distinct images"),
    ("paths", "paths"),
    ("ingested", "ingested (decodable)"),
    ("broken", "broken"),
    ("rule_labeled", "rule-labeled (one class)"),
    ("rule_ambiguous", "ambiguous name (two classes)"),
    ("rule_none", "no keyword"),
    ("detected_images", "face detection done"),
    ("faces", "faces (labeling units)"),
    ("route_auto", "auto-accepted"),
    ("route_review", "routed to review"),
    ("review_remaining", "  of which still unlabeled"),
    ("route_no_face", "no face"),
    ("route_broken", "broken (routed)"),
    ("human_labeled_faces", "faces with a human label"),
)


def status_lines(store: Store) -> list[str]:
    """The database, one line per count, what is left to detect and how to finish it, the videos."""
    from labeler.ingest.paths import shown
    from labeler.store import undetected
    from labeler.videolabel import status_lines as video_lines

    c = status_counts(store)
    left = [u.path for u in undetected(store) if not u.video]
    out = [f"database: {mask_url(store.url)}"]
    for key, text in ROWS:
        out.append(f"{text:32s} {c.get(key, 0):7d}")
        if key == "detected_images" and left:
            out.append(f"{'  not detected yet':32s} {len(left):7d}   (ingested only, a run stopped, or one at work: "
                       f"`labeler autolabel FOLDER` on their folder detects them; e.g. {shown(left[0], 120)})")
    return out + video_lines(store, c)
