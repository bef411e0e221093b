"""Tests for evaluator/fetch.py against a real HTTP server on 127.0.0.1 (no other network access)."""

import hashlib
import json
import os
import re
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evaluator.errors import FetchError
from evaluator.fetch import fetch_model

CONTENT = os.urandom(3 * 1024 * 1024 + 123)  # more than one 1 MiB chunk
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()


class ModelServer:
    """Files served by the test handler, and every request it received (path, Range header)."""

    def __init__(self):
        self.files = {"/good.onnx": CONTENT, "/truncated.onnx": CONTENT, "/ignores-range.onnx": CONTENT,
                      "/refuses-range.onnx": CONTENT, "/changing.onnx": CONTENT}
        self.requests: list[tuple[str, str | None]] = []
        self.base_url = ""

    def count(self, path):
        return sum(1 for requested, _ in self.requests if requested == path)


def make_handler(state: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep test output clean
            pass

        def do_GET(self):
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            if self.path == "/redirect-to-http":
                self.send_response(302)
                self.send_header("Location", "http://example.com/model.onnx")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            if range_header and self.path == "/refuses-range.onnx":
                self.send_error(416, "Range Not Satisfiable")
                return
            if range_header and self.path != "/ignores-range.onnx":
                start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.path == "/truncated.onnx":
                # Announce everything, send half, hang up: a connection cut mid-transfer.
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
            self.wfile.write(data)

    return Handler


@pytest.fixture
def server():
    """A ModelServer whose base_url points at a live ThreadingHTTPServer on 127.0.0.1."""
    state = ModelServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture
def no_remote_network(monkeypatch):
    """Fail any connection attempt to a host other than 127.0.0.1."""
    real_create_connection = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] != "127.0.0.1":
            raise AssertionError(f"test tried to reach {address}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


def test_download_verifies_and_second_call_does_not_download(server, tmp_path):
    dest = tmp_path / "models" / "good.onnx"
    progress = []
    result = fetch_model(f"{server.base_url}/good.onnx", dest, CONTENT_SHA256.upper(), lock_file=tmp_path / "lock.json",
                         progress=lambda done, total: progress.append((done, total)))
    assert result == dest
    assert dest.read_bytes() == CONTENT
    assert not dest.with_name("good.onnx.part").exists()
    assert progress[-1] == (len(CONTENT), len(CONTENT)) and len(progress) >= 4
    fetch_model(f"{server.base_url}/good.onnx", dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert server.count("/good.onnx") == 1


def test_wrong_hash_deletes_the_download(server, tmp_path):
    dest = tmp_path / "good.onnx"
    wrong = "0" * 64
    with pytest.raises(FetchError, match=f"good.onnx has sha256 {CONTENT_SHA256}, expected {wrong}"):
        fetch_model(f"{server.base_url}/good.onnx", dest, wrong, lock_file=tmp_path / "lock.json")
    assert not dest.exists()
    assert not dest.with_name("good.onnx.part").exists()


def test_damaged_existing_file_is_downloaded_again(server, tmp_path):
    dest = tmp_path / "good.onnx"
    dest.write_bytes(b"damaged copy")
    fetch_model(f"{server.base_url}/good.onnx", dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert dest.read_bytes() == CONTENT
    assert server.count("/good.onnx") == 1


def test_truncated_transfer_keeps_part_and_resumes_with_range(server, tmp_path):
    dest = tmp_path / "truncated.onnx"
    url = f"{server.base_url}/truncated.onnx"
    half = len(CONTENT) // 2
    with pytest.raises(FetchError, match=f"stopped at {half:,} of {len(CONTENT):,} bytes; run the fetch again"):
        fetch_model(url, dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    part = tmp_path / "truncated.onnx.part"
    assert part.read_bytes() == CONTENT[:half]
    assert not dest.exists()

    fetch_model(url, dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert server.requests == [("/truncated.onnx", None), ("/truncated.onnx", f"bytes={half}-")]
    assert dest.read_bytes() == CONTENT
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "ignores-range.onnx"
    (tmp_path / "ignores-range.onnx.part").write_bytes(b"stale bytes from another version")
    fetch_model(f"{server.base_url}/ignores-range.onnx", dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert dest.read_bytes() == CONTENT
    assert server.requests == [("/ignores-range.onnx", "bytes=32-")]


def test_range_not_satisfiable_discards_part_and_restarts_once(server, tmp_path):
    dest = tmp_path / "refuses-range.onnx"
    (tmp_path / "refuses-range.onnx.part").write_bytes(b"x" * 10)
    fetch_model(f"{server.base_url}/refuses-range.onnx", dest, CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert dest.read_bytes() == CONTENT
    assert server.requests == [("/refuses-range.onnx", "bytes=10-"), ("/refuses-range.onnx", None)]


def test_http_error_names_url_and_status(server, tmp_path):
    url = f"{server.base_url}/absent.onnx"
    with pytest.raises(FetchError, match=f"download of {re.escape(url)} failed: HTTP 404"):
        fetch_model(url, tmp_path / "absent.onnx", CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fetch.lock"]  # only the cross-process lock, hidden


def test_unknown_hash_is_recorded_then_enforced(server, tmp_path):
    dest = tmp_path / "changing.onnx"
    lock_file = tmp_path / "models.lock.json"
    url = f"{server.base_url}/changing.onnx"
    fetch_model(url, dest, None, lock_file=lock_file)
    assert json.loads(lock_file.read_text()) == {"changing.onnx": CONTENT_SHA256}

    fetch_model(url, dest, None, lock_file=lock_file)  # verified against the recorded hash, not downloaded
    assert server.count("/changing.onnx") == 1

    server.files["/changing.onnx"] = CONTENT[::-1]
    dest.unlink()
    with pytest.raises(FetchError, match=f"expected {CONTENT_SHA256}"):
        fetch_model(url, dest, None, lock_file=lock_file)
    assert not dest.exists()
    assert json.loads(lock_file.read_text()) == {"changing.onnx": CONTENT_SHA256}


def test_malformed_hash_in_lock_file_is_reported(server, tmp_path):
    lock_file = tmp_path / "lock.json"
    lock_file.write_text('{"good.onnx": "not-a-hash"}')
    with pytest.raises(FetchError, match=r"lock.json: key 'good.onnx': 'not-a-hash' is not a sha256"):
        fetch_model(f"{server.base_url}/good.onnx", tmp_path / "good.onnx", None, lock_file=lock_file)
    assert server.requests == []


@pytest.mark.parametrize("url", ["http://example.com/model.onnx", "ftp://example.com/model.onnx",
                                 "file:///etc/passwd", "https:///no-host"])
def test_non_https_remote_urls_are_refused_without_network(no_remote_network, monkeypatch, tmp_path, url):
    def no_urlopen(*args, **kwargs):
        raise AssertionError("fetch_model opened a URL it should have refused")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_urlopen)
    with pytest.raises(FetchError, match="only https URLs are allowed"):
        fetch_model(url, tmp_path / "model.onnx", CONTENT_SHA256, lock_file=tmp_path / "lock.json")
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_plain_http_is_refused(server, no_remote_network, tmp_path):
    with pytest.raises(FetchError, match="refusing to download http://example.com/model.onnx"):
        fetch_model(f"{server.base_url}/redirect-to-http", tmp_path / "model.onnx", CONTENT_SHA256,
                    lock_file=tmp_path / "lock.json")
    assert server.requests == [("/redirect-to-http", None)]


def test_fetch_command_names_every_failed_download_and_leaves_no_file(monkeypatch, tmp_path, capsys):
    from evaluator import cli, cli_models, progress

    def fake_fetch(url, dest, sha256, *, lock_file, progress=None, **kwargs):
        if url.endswith(".prototxt"):
            raise FetchError(f"cannot download {url}: [Errno -2] Name or service not known")
        for received in (1000, 2000):
            progress(received, 2000)
        return dest

    monkeypatch.setattr(cli_models, "fetch_model", fake_fetch)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # a line per chunk, as a long download gets every 30 s
    code = cli.main(["fetch", "-m", "resnet50_chainer", "--models-dir", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 2
    assert "1 of 2 downloads failed; the 1 that succeeded are in" in err
    assert "resnet50_chainer float resnet50.opt.onnx.prototxt: cannot download https://" in err
    assert "resnet50_chainer float resnet50.opt.onnx:  50%" in err  # progress of the good download: bytes, rate
    assert "resnet50_chainer float resnet50.opt.onnx: 100% 2.00k/2.00k" in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
