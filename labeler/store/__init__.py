"""The database layer: the only package that imports SQLAlchemy. Everything outside imports from here.

schema (tables) · engine (URL, engine, migrations, Store) · images (ingest, rules, counts) ·
faces (autolabel writes) · records (face records, vote, the accepted label) · imports (`import`) ·
review (the UI) · models (model versions, embeddings) · stats (the overview).
"""

from labeler.store.schema import (  # noqa: F401
    Annotation,
    Base,
    DecisionRow,
    Embedding,
    Face,
    Image,
    ImagePath,
    ModelVersion,
    Proposal,
    Setting,
    utcnow,
)
from labeler.store.engine import (  # noqa: F401
    CHUNK,
    DEFAULT_DB,
    Store,
    StoreError,
    alembic_config,
    chunks,
    current_revision,
    head_revision,
    latest_ids,
    make_engine,
    mask_url,
    resolve_url,
    require_existing,
    upgrade,
)
from labeler.store.images import (  # noqa: F401
    PathRecord,
    Recorded,
    counts,
    decode_flags,
    decode_rule_words,
    dumps,
    encode_flags,
    encode_rule_words,
    known_paths,
    path_images,
    reapply_rules,
    record_path,
    record_paths,
    rule_rows,
)
from labeler.store.faces import (  # noqa: F401
    add_routed,
    faces_to_repropose,
    last_face_id,
    pending_rules,
    route_broken,
    save_detections,
    stored_faces,
    undetected_ids,
)
from labeler.store.records import (  # noqa: F401
    accepted_label,
    current_annotations,
    face_crops,
    human_labels_by_image,
    iter_face_records,
    vote,
)
from labeler.store.imports import (  # noqa: F401
    add_import_annotations,
    faces_by_key,
    image_faces,
    images_by_path,
    ingest_roots,
)
from labeler.store.review import (  # noqa: F401
    MAX_ANNOTATOR,
    REVIEW_KINDS,
    AnnotationError,
    accepted_labels,
    add_annotation,
    add_annotations,
    clean_annotator,
    face_card,
    gallery_faces,
    image_list,
    image_view,
    review_queue,
    review_queue_count,
    source_folders,
    undo_last,
)
from labeler.store.locks import exclusive  # noqa: F401
from labeler.store.leases import (  # noqa: F401
    active_leases,
    lease_minutes,
    lease_next,
    lease_order,
    release_leases,
    take_lease,
)
from labeler.store.cleaning import (  # noqa: F401
    CleanJob,
    DupGroups,
    clean_jobs,
    dup_groups,
    images_to_clean,
    regroup,
    save_clean,
)
from labeler.store.cleanview import FaceGroup, GalleryFace, face_groups, gallery_page  # noqa: F401
from labeler.store.stats import ActionCount, FaceStatus, OverviewData, overview_stats  # noqa: F401
from labeler.store.audit import (  # noqa: F401,E402
    AUDIT_SOURCE,
    AuditItem,
    BucketPlan,
    add_audit,
    audit_plan,
    auto_precision_estimate,
    awaiting_text,
    bucket_estimates,
    bucket_overview,
    face_names,
    is_blind,
    label_accuracy,
    next_audit_faces,
    pending_audits,
    reroute,
)
from labeler.store.models import (  # noqa: F401,E402
    DEFAULT_MODEL_KEY,
    ModelRegistry,
    delete_setting,
    human_labeled_faces,
    load_embeddings,
    model_registry,
    model_version_rows,
    record_model_version,
    save_embeddings,
    unlabeled_face_ids,
)
from labeler.store.video import (  # noqa: F401,E402
    FRAME_FORMAT,
    TRACK_ROUTE,
    NewFrame,
    NewTrack,
    NewVideo,
    TrackCard,
    TrackMember,
    TrackRecord,
    done_video_ids,
    face_crops_of,
    frame_groups,
    frame_image_ids,
    frame_names,
    label_track,
    mark_video_broken,
    pending_video_ids,
    save_video,
    track_card,
    track_ids,
    track_records,
    undo_track_label,
    video_counts,
    video_face_ids,
)
