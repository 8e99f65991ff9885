"""labeler: semi-automatic labeling of facial-expression data sets."""

__version__ = "0.1.0"
