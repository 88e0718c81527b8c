"""Refuse an oversized upload while it streams in, instead of after Django has spooled it to disk."""

from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class UploadSizeLimit(FileUploadHandler):
    """First in request.upload_handlers: counts file bytes and stops the upload past `limit_bytes`.

    The rest of the body is read and discarded (connection_reset=False) so the page can answer with a message;
    nothing past the limit is stored. `exceeded` tells the view what happened.
    """

    def __init__(self, request, *, limit_bytes: int) -> None:
        super().__init__(request)
        self.limit_bytes = limit_bytes
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) builds the UploadedFile
