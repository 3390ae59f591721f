"""Bring a published weight file onto this machine: from a Hugging Face hub (or a mirror) or a
plain URL, resumable, verified, never leaving a partial file where a complete one is expected.

* Hub files go through ``huggingface_hub.hf_hub_download`` into ``<PPNETS_HOME>/hub``. The
  endpoint is read from ``HF_ENDPOINT`` at call time (mirrors are how many users reach the hub)
  and ``HF_HUB_OFFLINE=1`` (or ``PPNETS_OFFLINE=1``) serves only what is cached.
* URLs are downloaded to ``<file>.part`` with HTTP range requests, so an interrupted download
  resumes; the file is hashed (full SHA-256, or the hash prefix torchvision puts in its file
  names) and only then renamed into place. A mismatch deletes the partial file and raises.
* ``PPNETS_DOWNLOAD_MIRROR=https://mirror.example`` fetches plain URLs from a mirror (the URL's
  path under the mirror's base), as ``HF_ENDPOINT`` does for the hub.
* A file put by hand into ``<PPNETS_HOME>/manual/`` under the name :func:`manual_path` gives is
  used when the network is not (the offline error message says where to put it).
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


def fetch_hub(repo_id: str, filename: str, revision: str, key: str) -> str:
    """Local path of ``filename`` of hub repo ``repo_id`` at ``revision`` (downloaded if needed,
    from ``HF_ENDPOINT``); offline, the hub cache or the manual folder."""
    manual = manual_path(key, filename)
    cache_dir = os.path.join(ppnets_home(), "hub")
    try:
        return huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir, endpoint=_endpoint(),
            local_files_only=offline())
    except LocalEntryNotFoundError as exc:
        if os.path.isfile(manual):
            return manual
        reason = "offline (HF_HUB_OFFLINE/PPNETS_OFFLINE)" if offline() else \
            f"{_endpoint()} did not answer: {exc}"
        raise _unavailable(f"{repo_id}/{filename}", hub_url(repo_id, filename, revision),
                           manual, reason) from exc
    except Exception as exc:  # noqa: BLE001 - HTTP errors of every kind: say what to do
        if os.path.isfile(manual):
            return manual
        raise _unavailable(f"{repo_id}/{filename}", hub_url(repo_id, filename, revision),
                           manual, f"{type(exc).__name__}: {str(exc)[:200]}") from exc


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
        raise _unavailable(url, mirrored(url), manual, f"{type(exc).__name__}: {exc}") from exc
    if not _matches(part, sha256, sha256_prefix):
        os.remove(part)  # never keep a file that could pass for the release
        raise WeightsIntegrityError(
            f"the file downloaded from {url} does not have the published SHA-256 "
            f"({sha256 or sha256_prefix}...); it was deleted. The server sent another file or "
            "the transfer was corrupted: try again, or check the URL")
    os.replace(part, path)
    return path
