"""Bring a published weight file onto this machine: from a Hugging Face hub (or a mirror) or a
plain URL, resumable, verified, never leaving a partial file where a complete one is expected.

* Hub files go through ``huggingface_hub.hf_hub_download`` into ``<PPNETS_HOME>/hub``. The
  endpoint is read from ``HF_ENDPOINT`` at call time (mirrors are how many users reach the hub)
  and ``HF_HUB_OFFLINE=1`` (or ``PPNETS_OFFLINE=1``) serves only what is cached. An endpoint
  that does not answer, or refuses, fails at once with what to do (no retries).
* URLs are downloaded to ``<file>.part`` with HTTP range requests, so an interrupted download
  resumes; the file is hashed (full SHA-256, or the hash prefix torchvision puts in its file
  names) and only then renamed into place. A mismatch deletes the partial file and raises.
* ``PPNETS_DOWNLOAD_MIRROR=https://mirror.example`` fetches plain URLs from a mirror (the URL's
  path under the mirror's base), as ``HF_ENDPOINT`` does for the hub.
* A file put by hand into ``<PPNETS_HOME>/manual/`` under the name :func:`manual_path` gives is
  used when the network is not (the offline error message says where to put it).

Callers hold the lock of the weight while they fetch it (:mod:`ppnets.weights.pretrained`): one
process downloads, and the fixed ``.part`` name is never written by two.
"""
from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
from typing import Optional

import huggingface_hub
from huggingface_hub.errors import LocalEntryNotFoundError

from ppnets.utils import file_sha256

__all__ = ["ppnets_home", "offline", "manual_path", "mirrored", "hub_url", "fetch_hub",
           "fetch_url", "WeightsUnavailableError", "WeightsIntegrityError"]

CHUNK = 1 << 20
# huggingface_hub's HTTP client logs every request at INFO; Paddle's logging setup would print
# them all to the user
for _client in ("httpx", "httpx2", "httpcore", "httpcore2"):
    logging.getLogger(_client).setLevel(logging.WARNING)
# huggingface_hub prints its messages with a handler of its own, and importing Paddle gives the
# root logger one too (paddle.distributed.utils.log_utils.get_logger names its logger "root"):
# every message would appear twice
logging.getLogger("huggingface_hub").propagate = False


class WeightsUnavailableError(RuntimeError):
    """The weights are neither cached nor reachable (offline, or the server refused)."""


class WeightsIntegrityError(RuntimeError):
    """A downloaded file does not have the published hash."""


def ppnets_home() -> str:
    """``PPNETS_HOME``, default ``~/.cache/ppnets`` (``XDG_CACHE_HOME`` respected)."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                           os.path.join(os.path.expanduser("~"), ".cache"), "ppnets")
    return os.path.abspath(os.environ.get("PPNETS_HOME") or default)


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``PPNETS_OFFLINE`` asks for no network access."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "PPNETS_OFFLINE"))


def manual_path(key: str, filename: str) -> str:
    """Where a user may put a weight file by hand (``key`` names the weight, e.g.
    ``fasternet_t0.in1k``)."""
    return os.path.join(ppnets_home(), "manual", key, os.path.basename(filename))


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def mirrored(url: str) -> str:
    """``url`` on ``PPNETS_DOWNLOAD_MIRROR`` when that is set."""
    mirror = os.environ.get("PPNETS_DOWNLOAD_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    return mirror + urllib.request.urlparse(url).path


def hub_url(repo_id: str, filename: str, revision: str = "main") -> str:
    return f"{_endpoint()}/{repo_id}/resolve/{revision}/{filename}"


def _unavailable(what: str, url: str, manual: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{what} is not in the ppnets cache and cannot be downloaded ({reason}). Either "
        f"download {url} on a machine with network and put the file at {manual} (then run "
        f"again), or run `ppnets weights fetch` with network and copy {ppnets_home()} here "
        "(PPNETS_HOME), or pass pretrained=<path to the file>.")


def _hub_download(repo_id: str, filename: str, revision: str, local_only: bool) -> str:
    return huggingface_hub.hf_hub_download(
        repo_id, filename, revision=revision, cache_dir=os.path.join(ppnets_home(), "hub"),
        endpoint=_endpoint(), local_files_only=local_only)


def _remove_abandoned_downloads(path: str) -> None:
    """Delete the temporaries of downloads of this blob that a killed process left behind.

    huggingface_hub >= 2 downloads into ``<blob>.<random>.incomplete`` (never resumed) and
    removes it on errors, but SIGKILL leaves it forever. The caller holds the lock of this
    weight (:func:`ppnets.weights.pretrained.converted_weights`) and no two weights share a hub
    file, so none of them is being written now."""
    blob = os.path.realpath(path)
    folder, name = os.path.split(blob)
    for leftover in os.listdir(folder):
        if leftover.startswith(name + ".") and leftover.endswith(".incomplete"):
            try:
                os.remove(os.path.join(folder, leftover))
            except FileNotFoundError:
                pass


def fetch_hub(repo_id: str, filename: str, revision: str, key: str) -> str:
    """Local path of ``filename`` of hub repo ``repo_id`` at ``revision`` (downloaded if needed,
    from ``HF_ENDPOINT``); offline or unreachable, the hub cache or the manual folder."""
    url = hub_url(repo_id, filename, revision)
    if offline():
        reason = "offline (HF_HUB_OFFLINE/PPNETS_OFFLINE)"
    else:
        try:
            # One request first: hf_hub_download retries an endpoint that does not answer (or
            # answers 5xx) five times with backoff, ~25 s of warnings, before it gives up
            huggingface_hub.get_hf_file_metadata(url)
        except Exception as exc:  # noqa: BLE001 - no connection, HTTP errors of every kind
            reason = f"{_endpoint()}: {_short_error(exc)}"
        else:
            try:
                path = _hub_download(repo_id, filename, revision, local_only=False)
            except Exception as exc:  # noqa: BLE001 - the transfer failed: say what to do
                reason = _short_error(exc)
            else:
                _remove_abandoned_downloads(path)
                return path
    try:
        return _hub_download(repo_id, filename, revision, local_only=True)  # downloaded before
    except LocalEntryNotFoundError:
        pass
    manual = manual_path(key, filename)
    if os.path.isfile(manual):
        return manual
    raise _unavailable(f"{repo_id}/{filename}", url, manual, reason)


def _short_error(exc: BaseException) -> str:
    """``Type: first line of the message`` (huggingface_hub's run to many lines)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _matches(path: str, sha256: Optional[str], sha256_prefix: Optional[str]) -> bool:
    digest = file_sha256(path)
    if sha256:
        return digest == sha256.lower()
    if sha256_prefix:
        return digest.startswith(sha256_prefix.lower())
    return True


def fetch_url(url: str, key: str, sha256: Optional[str] = None,
              sha256_prefix: Optional[str] = None, timeout: float = 60.0) -> str:
    """Local path of the file at ``url`` under ``<PPNETS_HOME>/downloads/<key>/``, downloaded
    with resume and checked against ``sha256`` (or its published prefix)."""
    filename = os.path.basename(urllib.request.urlparse(url).path) or "weights"
    folder = os.path.join(ppnets_home(), "downloads", key)
    path = os.path.join(folder, filename)
    if os.path.isfile(path) and _matches(path, sha256, sha256_prefix):
        return path
    manual = manual_path(key, filename)
    if os.path.isfile(manual):
        if not _matches(manual, sha256, sha256_prefix):
            raise WeightsIntegrityError(
                f"{manual} does not have the published SHA-256 ({sha256 or sha256_prefix}...): "
                "it is not the file of the release, or it is truncated; download it again")
        return manual
    if offline():
        raise _unavailable(url, url, manual, "offline (HF_HUB_OFFLINE/PPNETS_OFFLINE)")
    os.makedirs(folder, exist_ok=True)
    part = path + ".part"
    done = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(mirrored(url),
                                     headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = done and response.status == 206
            expected = response.headers.get("Content-Length")
            with open(part, "ab" if resumed else "wb") as f:
                start = f.tell()
                shutil.copyfileobj(response, f, CHUNK)
                received = f.tell() - start
        if expected is not None and received < int(expected):
            raise OSError(f"the connection closed after {received} of {expected} bytes")
    except (urllib.error.URLError, OSError) as exc:  # the partial file stays: the next call resumes
        raise _unavailable(url, mirrored(url), manual, _short_error(exc)) from None
    if not _matches(part, sha256, sha256_prefix):
        os.remove(part)  # never keep a file that could pass for the release
        raise WeightsIntegrityError(
            f"the file downloaded from {url} does not have the published SHA-256 "
            f"({sha256 or sha256_prefix}...); it was deleted. The server sent another file or "
            "the transfer was corrupted: try again, or check the URL")
    os.replace(part, path)
    return path
