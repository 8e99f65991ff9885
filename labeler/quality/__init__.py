"""The quality of a project's labels: which labels are probably wrong, how much annotators agree,
and their consensus. Pure: typed inputs in, typed results out (``records``); the database reads
are ``labeler.store.quality``.

issues (label-issue scores: confident learning, cleanlab) · agreement (Krippendorff's alpha,
Cohen's kappa) · consensus (Dawid-Skene, crowd-kit) · assessment (all three from one input: ``assess``).

cleanlab, crowd-kit and scikit-learn are the ``quality`` extra (``pip install 'labeler[quality]'``),
imported only when a computation runs: importing this package costs nothing.
"""

from labeler.quality.assessment import INSTALL, assess, measure_agreement, missing, require  # noqa: F401
from labeler.quality.issues import DEFAULT_METHOD, METHODS  # noqa: F401
from labeler.quality.records import (  # noqa: F401
    LABEL_KINDS,
    Agreement,
    AlphaEstimate,
    AnnotatorSkill,
    Assessment,
    ClassKappa,
    FaceConsensus,
    FaceIssue,
    GivenLabel,
    PairKappa,
    QualityInputs,
    Rating,
)
