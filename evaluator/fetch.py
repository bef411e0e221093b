"""Download model files: https only, streamed to <dest>.part with resume, sha256-verified, renamed into place.

The expected sha256 comes from the caller (the catalogue) or, failing that, from a lock file
(JSON {"<file name>": "<sha256>"}); when neither knows it, the first complete download records its hash there and every
later download is checked against it (trust on first use). An existing file is kept only when a known hash
verifies it; with no hash known anywhere it is downloaded again, so the recorded hash always comes from the server.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from evaluator import __version__
from evaluator.errors import FetchError
from evaluator.fileio import file_lock, fsync_directory, read_json, write_json_atomic
from evaluator.model_hash import sha256_of

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
FETCH_LOCK_FILE = "models.lock.json"  # in the models directory: the hash each file had when first fetched
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise FetchError(f"refusing to download {url}: only https URLs are allowed (plain http only on this machine)")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that passes the same https-only rule."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, headers: dict, timeout: float):
    handlers = [_CheckedRedirects()]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # a loopback URL must never go through a proxy
    opener = urllib.request.build_opener(*handlers)
    return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)


def _normalized_sha256(value, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value.strip().lower()):
        raise FetchError(f"{where}: {value!r} is not a sha256 (64 hex digits)")
    return value.strip().lower()


def _read_lock(lock_file: Path) -> dict:
    if not lock_file.exists():
        return {}
    recorded = read_json(lock_file)
    if not isinstance(recorded, dict):
        raise FetchError(f"{lock_file}: expected a JSON object {{file name: sha256}}, found {type(recorded).__name__}")
    return recorded


def recorded_sha256(lock_file: Path, name: str) -> str | None:
    """The sha256 the first fetch of `name` recorded in the lock file, or None."""
    value = _read_lock(lock_file).get(name)
    return None if value is None else _normalized_sha256(value, f"{lock_file}: key {name!r}")


class _Download:
    """Streams a URL into the .part file, hashing as it goes; resumes an existing .part when the server allows."""

    def __init__(self, url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None):
        self.url, self.part, self.timeout, self.progress = url, part, timeout, progress
        self.hasher = hashlib.sha256()
        self.received = 0
        self.total: int | None = None

    def run(self) -> None:
        """Download (resuming an existing .part when the server allows it); raise FetchError when it stops early."""
        for attempt in range(2):
            offset = self.part.stat().st_size if self.part.exists() else 0
            if self._transfer(offset, last_attempt=attempt == 1):
                return
            log.info("restarting download of %s from the beginning", self.url)
            self.part.unlink(missing_ok=True)

    def _transfer(self, offset: int, last_attempt: bool) -> bool:
        headers = {"User-Agent": f"imagenet-evaluator/{__version__}"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = _open(self.url, headers, self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset and not last_attempt:
                return False
            raise FetchError(f"download of {self.url} failed: HTTP {exc.code} {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"cannot download {self.url}: {reason}") from None
        with response:
            resumed = bool(offset) and response.status == 206 and _range_start(response) == offset
            if response.status not in (200, 206) or (response.status == 206 and not resumed):
                if last_attempt:
                    raise FetchError(f"download of {self.url} failed: unexpected HTTP {response.status}")
                return False
            if resumed:
                self.hasher = sha256_of(self.part)
                self.received = offset
                log.info("resuming download of %s at byte %d", self.url, offset)
            else:
                self.hasher, self.received = hashlib.sha256(), 0
            length = response.headers.get("Content-Length")
            self.total = self.received + int(length) if length and length.isdigit() else None
            self._stream(response, "ab" if resumed else "wb")
        return True

    def _stream(self, response, mode: str) -> None:
        stopped_by = None
        with open(self.part, mode) as out:
            try:
                while self.total is None or self.received < self.total:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    self.hasher.update(chunk)
                    self.received += len(chunk)
                    if self.progress is not None:
                        self.progress(self.received, self.total)
            except (OSError, http.client.HTTPException) as exc:
                stopped_by = exc
            out.flush()
            os.fsync(out.fileno())
        if stopped_by is not None or (self.total is not None and self.received != self.total):
            of_total = f"{self.total:,}" if self.total is not None else "an unknown number of"
            why = f" ({stopped_by})" if stopped_by is not None else ""
            raise FetchError(f"download of {self.url} stopped at {self.received:,} of {of_total} bytes{why}; "
                             "run the fetch again to resume")


def _range_start(response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _record_sha256(lock_file: Path, name: str, sha256: str, url: str) -> str:
    """Record `sha256` for `name` unless another process did first; return the hash now on record."""
    with file_lock(lock_file):
        recorded = _read_lock(lock_file)
        if name in recorded:
            return _normalized_sha256(recorded[name], f"{lock_file}: key {name!r}")
        recorded[name] = sha256
        write_json_atomic(lock_file, recorded)
    log.warning("recorded sha256 %s for %s (from %s) in %s; later downloads are checked against it",
                sha256, name, url, lock_file)
    return sha256


def fetch_model(url: str, dest: Path, sha256: str | None, *, lock_file: Path, timeout: float = 60,
                progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download `url` to `dest` unless a verified copy is there; FetchError on refusal, transfer failure or bad hash.

    Args:
        sha256: expected hash; None -> the one recorded for dest.name in `lock_file`, or record it on first download.
        progress: called as progress(bytes_so_far, total_or_None) after every chunk.
    """
    _check_url(url)
    dest, lock_file = Path(dest), Path(lock_file)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One download per models directory at a time, across processes (pytest-xdist workers, parallel runs), through
    # one hidden lock file: a lock file per model would leave an empty file beside every download that failed.
    with file_lock(dest.parent / ".fetch"):
        expected = (_normalized_sha256(sha256, f"sha256 for {url}") if sha256 is not None
                    else recorded_sha256(lock_file, dest.name))
        if dest.is_file() and expected is not None:
            if sha256_of(dest).hexdigest() == expected:
                return dest
            log.warning("%s does not match its sha256 %s; downloading it again", dest, expected)

        part = dest.with_suffix(dest.suffix + ".part")
        download = _Download(url, part, timeout, progress)
        download.run()
        got = download.hasher.hexdigest()
        if expected is None:
            expected = _record_sha256(lock_file, dest.name, got, url)
        if got != expected:
            part.unlink(missing_ok=True)
            raise FetchError(f"download of {url} has sha256 {got}, expected {expected}; the partial file was deleted")
        try:
            os.replace(part, dest)
            fsync_directory(dest.parent)
        except OSError as exc:
            raise FetchError(f"cannot move {part} to {dest}: {exc.strerror or exc}") from exc
    log.info("downloaded %s to %s (%d bytes, sha256 verified)", url, dest, download.received)
    return dest
