"""Every upload is bounded. The file's size is the IMPORT_MAX_MB setting (settings.IMPORT_MAX_BYTES), enforced
here while the body streams in, instead of after Django has spooled it to disk; what a file may hold (columns,
bytes per line or record, JSON nesting) is bounded by the readers in synthstudio.importing (MAX_COLUMNS,
MAX_LINE_BYTES, MAX_JSON_DEPTH), which every upload path parses with.

Upload views: data import, pairwise judgments, downstream-benchmark test file, Label Studio import. Each is
wrapped in `limit_upload_size` and checks `upload_refused(request)` before it reads request.FILES.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect


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


def limit_upload_size(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Install UploadSizeLimit (IMPORT_MAX_BYTES) before anything parses the body, then check CSRF.

    CsrfViewMiddleware reads request.POST, which parses the whole multipart body with the default handlers,
    so the outer view is csrf_exempt and the CSRF check runs inside, once the limit is in place. Put it
    below @require_http_methods/@login_required, like @csrf_protect would go.
    """
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def bounded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        size_limit = UploadSizeLimit(request, limit_bytes=settings.IMPORT_MAX_BYTES)
        request.upload_handlers.insert(0, size_limit)
        request.upload_size_limit = size_limit  # type: ignore[attr-defined]
        return protected(request, *args, **kwargs)

    return bounded


def upload_refused(request: HttpRequest) -> str:
    """The message for an upload that limit_upload_size stopped, or "" when the upload is within the limit."""
    request.FILES  # noqa: B018 - parse the body (through the limit) if the view has not yet
    size_limit: UploadSizeLimit | None = getattr(request, "upload_size_limit", None)
    if size_limit is None or not size_limit.exceeded:
        return ""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    return upload_limit_message(declared or size_limit.received)


def upload_limit_message(size_bytes: int) -> str:
    return (
        f"The file is {_megabytes(size_bytes)} MB; the import limit is {_megabytes(settings.IMPORT_MAX_BYTES)} MB "
        "(IMPORT_MAX_MB). Split the file or ask an admin to raise the limit."
    )


def _megabytes(size_bytes: int) -> str:
    megabytes = size_bytes / (1024 * 1024)
    return f"{megabytes:.0f}" if megabytes >= 10 else f"{megabytes:.2g}"
