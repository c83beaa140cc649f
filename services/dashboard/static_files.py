"""The dashboard's own files (style sheet, script, the vendored htmx and ECharts), served by
the service itself: the page needs nothing from the network but this service. Files are read
once and kept in memory with a gzip copy (ECharts is 1.1 MB, 370 kB gzipped); vendored files
have their version in their name and are cached by browsers for good, ours for an hour."""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
from pathlib import Path

from werkzeug.security import safe_join
from werkzeug.wrappers import Request, Response

from orglife.common.errors import NotFound

from .rendering import STATIC

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon",
         ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8",
         ".md": "text/plain; charset=utf-8"}
SERVED = (".js", ".css", ".png", ".svg", ".ico", ".woff2")


class StaticFiles:
    def __init__(self, root: Path = STATIC):
        self.root = root
        self.cache: dict[str, tuple[bytes, bytes | None, str, str]] = {}

    def load(self, path: str) -> tuple[bytes, bytes | None, str, str]:
        if path in self.cache:
            return self.cache[path]
        full = safe_join(str(self.root), path)
        if full is None or not Path(full).is_file() or Path(full).suffix not in SERVED:
            raise NotFound(f"file {path!r} not found")
        body = Path(full).read_bytes()
        suffix = Path(full).suffix
        kind = TYPES.get(suffix) or mimetypes.guess_type(full)[0] or "application/octet-stream"
        packed = gzip.compress(body, 6) if suffix in (".js", ".css", ".svg") and \
            len(body) > 1024 else None
        etag = hashlib.sha256(body).hexdigest()[:32]
        self.cache[path] = (body, packed, kind, etag)
        return self.cache[path]

    def response(self, request: Request, path: str) -> Response:
        body, packed, kind, etag = self.load(path)
        immutable = path.startswith("vendor/")
        headers = {"ETag": f'"{etag}"', "Vary": "Accept-Encoding",
                   "Cache-Control": "public, max-age=31536000, immutable" if immutable
                   else "public, max-age=3600"}
        if request.headers.get("If-None-Match") == f'"{etag}"':
            return Response(status=304, headers=headers)
        if packed is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = packed
        return Response(body, content_type=kind, headers=headers)
