"""Multipart upload handling that enforces the artifact size limit while bytes arrive."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import TemporaryFileUploadHandler

from registry.services.artifacts import max_upload_size, upload_too_large


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Spools every file to disk (never memory) and stops at the configured limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = max_upload_size()
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()
            raise upload_too_large(self.limit)
        return super().receive_data_chunk(raw_data, start)
