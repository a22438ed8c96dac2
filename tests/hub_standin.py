"""A real local HTTP server that answers the Hugging Face Hub's file endpoints (HEAD/GET resolve, Range)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    path: Path
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class StandinHub:
    """Serves files at /{owner}/{repo}/resolve/{rev}/{filename}; optional bearer token."""

    files: dict[str, HubFile] = field(default_factory=dict)
    token: str | None = None
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def add(self, repo_id: str, filename: str, path: Path) -> None:
        self.files[f"{repo_id}/{filename}"] = HubFile(path)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "StandinHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _lookup(self) -> HubFile | None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts and parts[0] in ("datasets", "spaces"):  # /datasets/OWNER/NAME/resolve/REV/FILE
                    parts = parts[1:]
                if len(parts) < 5 or parts[2] != "resolve":
                    return None
                return hub.files.get(f"{parts[0]}/{parts[1]}/{'/'.join(parts[4:])}")

            def _authorized(self) -> bool:
                return hub.token is None or self.headers.get("Authorization") == f"Bearer {hub.token}"

            def _serve(self, body: bool) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if not self._authorized():
                    self.send_response(401)
                    self.send_header("X-Error-Message", "Invalid credentials")
                    self.end_headers()
                    return
                entry = self._lookup()
                if entry is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                data = entry.path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{entry.sha256}"')
                self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
