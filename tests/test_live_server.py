"""The tests' live server closes every response, even when the client hangs up (see
conftest.ClosingRequestHandler)."""

from __future__ import annotations

import socket
import struct
import time

from flask import Flask, send_file


def test_a_file_sent_to_a_client_that_hangs_up_is_closed(live_server, tmp_path):
    image = tmp_path / "crop.jpg"
    image.write_bytes(bytes(range(256)) * 16)
    opened = []
    app = Flask(__name__)

    @app.get("/crop.jpg")
    def crop():
        opened.append(image.open("rb"))
        return send_file(opened[-1], mimetype="image/jpeg")

    port = int(live_server(app).rsplit(":", 1)[1])
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /crop.jpg HTTP/1.1\r\nHost: test\r\n\r\n")
            client.recv(65536)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # hang up: RST
    deadline = time.monotonic() + 10
    while not all(file.closed for file in opened) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(opened) == 20
    assert all(file.closed for file in opened), f"{sum(not file.closed for file in opened)} of 20 files left open"
