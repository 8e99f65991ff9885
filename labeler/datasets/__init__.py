"""Data sets out and labels in.

export (``export()``: checks, two passes, picks the writer) · writer (the Writer interface and the
export run) · select (which label a face gets; agreement) · splits (grouped stratified splits) ·
crops (reading/encoding crops) · rows (csv, jsonl) · imagefolder · hf · fer2013 · labelstudio
(export and import) · metadata (metadata.json, README) · common (ExportError, safe names, cells) ·
importer (CSV import, the import report).
"""
