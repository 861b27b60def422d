"""A loopback HTTP server that speaks the Custom Vision prediction API (v3.1 classify routes) and
the few training API routes the upload command uses (v3.4-preview tags and images/files), so the
real SDK's request path (URL, headers, body, error mapping) runs in tests."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TRAINING = re.compile(r"^/customvision/v3\.4-preview/training/projects/(?P<project>[^/?]+)/(?P<what>tags|images/files)")
ROUTE = re.compile(
    r"^/customvision/v3\.1/prediction/(?P<project>[^/]+)/classify/iterations/(?P<name>[^/]+)/image(?P<nostore>/nostore)?$"
)


@dataclass
class Recorded:
    path: str
    key: str | None
    content_type: str
    body: bytes


class FakeCustomVision:
    def __init__(self, deepfake_probability: float = 0.9, port: int = 0):
        self.key = "test-key"
        self.project_id = "00000000-0000-0000-0000-000000000000"
        self.published_name = "Iteration1"
        self.deepfake_probability = deepfake_probability
        self.delay_s = 0.0  # how long each prediction takes to answer
        self.failures: deque[tuple[int, dict[str, str]]] = deque()  # answered before any success
        self.requests: list[Recorded] = []
        self.training_key = "training-key"
        self.tags: dict[str, str] = {}  # name -> id
        self.uploaded: list[dict] = []  # the entries of every images/files batch
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        for _ in range(times):
            self.failures.append((status, headers or {}))

    def __enter__(self) -> FakeCustomVision:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._training(b"")

            def _training(self, body: bytes):
                match = TRAINING.match(self.path)
                if not match or match["project"] != fake.project_id:
                    return self._json(404, {"code": "NotFound", "message": "Project not found"})
                if self.headers.get("Training-Key") != fake.training_key:
                    return self._json(401, {"code": "401", "message": "Access denied due to invalid training key."})
                with fake._lock:
                    failure = fake.failures.popleft() if fake.failures else None
                if failure:
                    status, headers = failure
                    return self._json(status, {"code": str(status), "message": "injected failure"}, headers)
                if match["what"] == "tags" and self.command == "GET":
                    return self._json(200, [{"id": tag_id, "name": name} for name, tag_id in fake.tags.items()])
                if match["what"] == "tags":
                    name = parse_qs(urlparse(self.path).query)["name"][0]
                    fake.tags[name] = str(uuid.uuid4())
                    return self._json(200, {"id": fake.tags[name], "name": name})
                entries = json.loads(body)["images"]
                fake.uploaded += entries
                results = [{"sourceUrl": entry["name"], "status": "OK"} for entry in entries]
                return self._json(200, {"isBatchSuccessful": True, "images": results})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/customvision/v3.4-preview/training/"):
                    return self._training(body)
                with fake._lock:
                    fake.requests.append(
                        Recorded(
                            self.path, self.headers.get("Prediction-Key"), self.headers.get("Content-Type", ""), body
                        )
                    )
                    failure = fake.failures.popleft() if fake.failures else None
                match = ROUTE.match(self.path.split("?")[0])
                if self.headers.get("Prediction-Key") != fake.key:
                    return self._json(
                        401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}
                    )
                if not match or match["project"] != fake.project_id or match["name"] != fake.published_name:
                    return self._json(404, {"code": "NotFound", "message": "Not found"})
                if failure:
                    status, headers = failure
                    return self._json(status, {"code": str(status), "message": "injected failure"}, headers)
                time.sleep(fake.delay_s)
                p = fake.deepfake_probability
                return self._json(
                    200,
                    {
                        "id": str(uuid.uuid4()),
                        "project": fake.project_id,
                        "iteration": str(uuid.uuid4()),
                        "created": "2026-11-25T00:00:00Z",
                        "predictions": [
                            {"probability": p, "tagId": str(uuid.uuid4()), "tagName": "DeepFake"},
                            {"probability": 1 - p, "tagId": str(uuid.uuid4()), "tagName": "Not DeepFake"},
                        ],
                    },
                )

            def _json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def main() -> None:
    """Serve the fake on a loopback port, to try the app's Azure path without an Azure account:

    python -m tests.fake_custom_vision --port 8099   (prints the settings to export)
    """
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--deepfake-probability", type=float, default=0.9)
    args = parser.parse_args()
    server = FakeCustomVision(args.deepfake_probability, port=args.port)
    with server:
        print(f"VISION_PREDICTION_ENDPOINT={server.endpoint}")
        print(f"VISION_PREDICTION_KEY={server.key}")
        print(f"VISION_PROJECT_ID={server.project_id}")
        print(f"VISION_PUBLISHED_NAME={server.published_name}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
