"""A tiny Hugging Face hub on 127.0.0.1 for download tests: the few HTTP routes huggingface_hub uses.

Serves repositories held in memory (``{repo_id: {path: bytes}}``) through the hub's documented endpoints:
repository info (``/api/models/{id}/revision/{rev}``, with each file's size and blob id when asked with
``blobs=True``, as ``HfApi.model_info(files_metadata=True)`` asks, and the card's licence and gating), the file tree (``/api/models/{id}/tree/{rev}``) and file
downloads (``/{id}/resolve/{rev}/{path}``, HEAD and GET, with the commit and ETag headers). Point the hub
library at it with ``HF_ENDPOINT``. Loopback only; it records every file that was downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repositories: dict[str, dict[str, bytes]], metadata: dict[str, dict] | None = None) -> None:
        """`metadata`: per repository, extra model-info fields (``{"gated": "manual", "cardData": {...}}``); a gated
        one refuses downloads as the hub does for a user who has not accepted its terms (403, ``GatedRepo``)."""
        self.repositories = repositories
        self.metadata = metadata or {}
        self.downloaded: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, data) -> None:
                self._send(
                    200, json.dumps(data).encode(), {"Content-Type": "application/json", "X-Repo-Commit": COMMIT}
                )

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) in (4, 6, 7):  # info (with or without revision), tree
                    repo = "/".join(parts[2:4])
                    files = hub.repositories.get(repo)
                    if files is None:
                        return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                    if len(parts) == 4 or parts[4] == "revision":
                        blobs = "blobs=true" in urlparse(self.path).query.lower()
                        return self._json(
                            {
                                "id": repo,
                                "modelId": repo,
                                "sha": COMMIT,
                                "gated": False,
                                **hub.metadata.get(repo, {}),
                                "siblings": [
                                    {"rfilename": name}
                                    | ({"size": len(data), "blobId": hashlib.sha1(data).hexdigest()} if blobs else {})
                                    for name, data in sorted(files.items())
                                ],
                            }
                        )
                    if parts[4] == "tree":
                        return self._json(
                            [
                                {
                                    "type": "file",
                                    "path": name,
                                    "size": len(data),
                                    "oid": hashlib.sha1(data).hexdigest(),
                                }
                                for name, data in sorted(files.items())
                            ]
                        )
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                    if hub.metadata.get(repo, {}).get("gated"):
                        message = f"Access to model {repo} is restricted. You must have access to it."
                        return self._send(403, b"", {"X-Error-Code": "GatedRepo", "X-Error-Message": message}, head)
                    data = hub.repositories.get(repo, {}).get(filename)
                    if data is None:
                        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                    if not head:
                        hub.downloaded.append((repo, filename))
                    etag = f'"{hashlib.sha256(data).hexdigest()}"'
                    return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": etag}, head)
                return self._send(404, b"")

            def do_HEAD(self) -> None:  # noqa: N802 - http.server API
                self._route(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._route(head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def run_cli(args, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m rerender.cli ARGS`` in a child process with `env` (a `hub_env`), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "rerender.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def hub_env(hub: FakeHub, home: Path) -> dict[str, str]:
    """The environment of a child process that sees `hub` as the Hugging Face hub and `home` as its cache."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(home),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
