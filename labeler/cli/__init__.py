"""The `labeler` command line: the one place that defines every command. Thin: parses arguments,
calls the library, prints results; user errors (:class:`labeler.errors.LabelerError`) become one line
on stderr and exit status 2. Nothing outside this package imports it (``labeler.__main__`` and the
``labeler`` console script call :func:`main`).

One module per stage of the work, each defining its commands (parser and handler together):
``start`` (autolabel, ingest, rules), ``auto`` (status, audit, route, clean), ``review`` (ui, issues,
report, eval), ``deliver`` (export, import), ``improve`` (train, models, calibrate); ``app`` puts them
in the order of the work and runs one; ``common`` holds the shared options and helpers."""

from labeler.cli.app import build_parser, main  # noqa: F401
