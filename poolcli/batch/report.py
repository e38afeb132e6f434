"""The CSV report of a run: one row per file, names kept byte for byte, never inside the source folder."""

from __future__ import annotations

import csv
import io as _text_io
import json
from collections.abc import Mapping
from pathlib import Path

from ..app.settings import FileResult
from ..errors import OutputError, PoolError, param, render
from .options import REPORT_SUFFIXES, BatchSummary


class Report:
    """The per-file records of a run as JSON or CSV, written as they come, replaced atomically at the end.

    A failed write (a full disk) never stops the run: the report keeps the error in
    `error` and writes nothing more; `open_report` then refuses to put it in place.
    """

    COLUMNS = ("input", "output", "status", "error", "seconds", "input_shape", "output_shape", "dtype",
               "output_dtype", "output_bytes")

    def __init__(self, file, path: Path, header: dict, names: Mapping[str, str] | None = None):
        self._file, self._path, self._kind, self._first = file, path, path.suffix.lower(), True
        self._names = names  # how the report names parameters in messages (errors.param)
        self.error: OutputError | None = None
        if self._kind == ".csv":
            self._write_csv(self.COLUMNS)
        else:
            head = json.dumps(header, indent=1)[:-2]  # open: the files and the summary follow
            self._write(head + ',\n "files": [')

    def add(self, record: FileResult) -> None:
        row = record.to_json()
        row["error"] = None if record.error is None else render(record.error, self._names)
        if self._kind == ".csv":
            self._write_csv([_cell(row[column]) for column in self.COLUMNS])
        else:
            self._write(("\n  " if self._first else ",\n  ") + json.dumps(row))
        self._first = False

    def finish(self, summary: BatchSummary) -> None:
        if self._kind == ".json":
            tail = {"summary": summary.to_json()}
            self._write(f"\n ],\n \"summary\": {json.dumps(tail['summary'])}\n}}\n")

    def _write(self, text: str) -> None:
        if self.error is not None:
            return
        try:  # file names that were not UTF-8 keep their bytes (JSON escapes them instead)
            self._file.write(text.encode("utf-8", "surrogateescape"))
        except OSError as error:
            self.error = OutputError(
                f"{param('report')} {self._path}: cannot write it ({error.strerror or error});"
                f" the run went on without it"
            )

    def _write_csv(self, row) -> None:
        line = _text_io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(row)
        self._write(line.getvalue())


def _cell(value) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


def check_report_path(path: Path) -> None:
    """PoolError unless `path` is a .json or .csv file name in an existing folder."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise PoolError(f"{param('report')} {path}: use a .json or .csv file name")
    if path.is_dir():
        raise PoolError(f"{param('report')} {path} is a folder; give a file name such as {path / 'report.json'}")
    if not path.parent.is_dir():
        raise PoolError(f"{param('report')} {path}: folder {path.parent} does not exist; create it first")

