"""Running the per-image work (labeler.work) beyond one machine. Optional: ``pip install 'labeler[ray]'``."""
