"""Where an analysis lives on disk: ``<upload folder>/<id>/`` holds the upload (under a name the
server chooses), ``crops/`` and ``result.json``. No Flask in here.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path

import pipeline

RESULT_FILE = "result.json"
CROPS_DIR = "crops"
UPLOAD_STEM = "upload"
ANALYSIS_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class AnalysisFolders:
    """The folders of all analyses under one root."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self) -> Path:
        """A new folder with an unguessable name (128 random bits)."""
        folder = self.root / secrets.token_urlsafe(16)
        folder.mkdir()
        return folder

    def folder(self, analysis_id: str) -> Path | None:
        """The folder of an analysis; None when the id is malformed or unknown."""
        if not ANALYSIS_ID.match(analysis_id):
            return None
        folder = self.root / analysis_id
        return folder if folder.is_dir() else None

    def upload_path(self, analysis_id: str) -> Path | None:
        folder = self.folder(analysis_id)
        if folder is None:
            return None
        return next(iter(sorted(folder.glob(f"{UPLOAD_STEM}*"))), None)

    def new_upload_path(self, folder: Path, suffix: str) -> Path:
        return folder / f"{UPLOAD_STEM}{suffix}"

    def crops_dir(self, analysis_id: str) -> Path:
        return self.root / analysis_id / CROPS_DIR

    def write_result(self, analysis_id: str, result: pipeline.Result) -> None:
        path = self.root / analysis_id / RESULT_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(pipeline.result_to_dict(result)))
        temporary.replace(path)  # readers never see half a file

    def result_dict(self, analysis_id: str) -> dict | None:
        folder = self.folder(analysis_id)
        if folder is None or not (folder / RESULT_FILE).is_file():
            return None
        return json.loads((folder / RESULT_FILE).read_text())

    def result(self, analysis_id: str) -> pipeline.Result | None:
        data = self.result_dict(analysis_id)
        return None if data is None else pipeline.result_from_dict(data)

    def remove_upload(self, analysis_id: str) -> None:
        path = self.upload_path(analysis_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def delete(self, analysis_id: str) -> None:
        folder = self.folder(analysis_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def untouched_since(self, moment: float) -> list[str]:
        """Ids of the folders last changed before ``moment`` (for folders no job records)."""
        return [
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and ANALYSIS_ID.match(path.name) and path.stat().st_mtime < moment
        ]


def hours_ago(hours: float) -> float:
    return time.time() - hours * 3600
