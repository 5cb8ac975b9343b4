"""The web apps' static files (/widget/, /console/): content types, cache headers, ETags, and
nothing outside their folders."""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import dataclass
from pathlib import Path

# Bundlers name what they put under assets/ by content hash: such a file never changes.
IMMUTABLE = "public, max-age=31536000, immutable"
# index.html names the current assets: always revalidated (cheap, with the ETag).
REVALIDATE = "no-cache"
OTHER = "public, max-age=300"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _not_found(message: str = "not found") -> StaticFile:
    return StaticFile(404, [(b"content-type", b"text/plain; charset=utf-8")], message.encode())


class StaticApps:
    """Files of `root`/<app>/ for each app name, at /<app>/."""

    def __init__(self, root: Path, apps: tuple[str, ...] = ("widget", "console")) -> None:
        self.root = root.resolve()
        self.apps = apps

    def prefixes(self) -> tuple[str, ...]:
        return tuple(f"/{app}" for app in self.apps)

    def owns(self, path: str) -> bool:
        return any(path == f"/{app}" or path.startswith(f"/{app}/") for app in self.apps)

    async def get(self, path: str, if_none_match: str | None) -> StaticFile:
        """The response to GET `path` (one this class owns: /widget or /widget/...)."""
        app, _, rest = path.lstrip("/").partition("/")
        if "/" not in path.lstrip("/"):  # "/widget": relative URLs need the trailing slash
            return StaticFile(308, [(b"location", f"/{app}/".encode())], b"")
        folder = (self.root / app).resolve()
        if not folder.is_dir():
            return _not_found(
                f"the {app} app is not in {self.root}: build clients/web (npm run build) or "
                "point --web-root at the folder that holds it"
            )
        # Any "..", absolute part, NUL or backslash is refused before touching the file system.
        parts = rest.split("/")
        if any(p in ("..", ".") or "\\" in p or "\x00" in p for p in parts):
            return _not_found("no such file")
        target = (folder / rest).resolve() if rest else folder
        if not target.is_relative_to(folder):
            return _not_found("no such file")
        if target.is_dir():
            target = target / "index.html"
        return await asyncio.to_thread(self._read, target, folder, if_none_match)

    def _read(self, target: Path, folder: Path, if_none_match: str | None) -> StaticFile:
        try:
            stat = target.stat()
            if not target.is_file():
                return _not_found("no such file")
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            relative = target.relative_to(folder)
            cache = (
                IMMUTABLE
                if relative.parts[0] == "assets"
                else REVALIDATE
                if target.suffix == ".html"
                else OTHER
            )
            headers = [(b"etag", etag.encode()), (b"cache-control", cache.encode())]
            if if_none_match is not None and etag in if_none_match:
                return StaticFile(304, headers, b"")
            content_type = _TYPES.get(target.suffix) or (
                mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            )
            headers += [
                (b"content-type", content_type.encode()),
                (b"x-content-type-options", b"nosniff"),
            ]
            return StaticFile(200, headers, target.read_bytes())
        except OSError:
            return _not_found("no such file")
