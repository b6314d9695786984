"""Fetching catalog models from the Hugging Face Hub into livedub's cache: the only code in livedub that downloads.

Only `livedub models get` calls this module (realtime/cli/models.py). Calls, file jobs and the engines find
fetched models on disk through `catalog.py` and never download anything.

A fetch lists the repository at one commit (the Hub's file listing: sizes, the sha256 of large files, the git
blob id of small ones), then downloads each file into a hidden `.<name>.partial` folder beside the model's
folder. A partial file is named after the hash it must end with, so an interrupted fetch resumes where it
stopped (an HTTP Range request, in the same run after a dropped connection and in the next run after an
interruption; huggingface_hub writes in 10 MiB chunks, so at most that much comes again). Every finished file is checked against the Hub's hash (sha256, or the git blob sha1 of a small
file) before it is kept, the whole folder against the layout its engine needs, and only then is the folder
renamed into place: the cache holds a whole verified model or none. The transfer itself is huggingface_hub's
(`get_hf_file_metadata`, `http_get`: redirects, retries, progress bar); its one-call file download is not
used because it deletes its partial file when a run fails, which would make every interrupted fetch start again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from .catalog import MANIFEST, CatalogEntry, models_dir
from .errors import LivedubError
from .files import write_error

PART = ".part"
_VERIFIED = ".livedub-verified.json"  # files of this fetch already checked: path → hash
_LOCK = ".livedub-fetch.lock"
_SPARE_BYTES = 50_000_000  # free space kept beyond the download
_TRANSPORT_ERRORS = {"TransportError", "ConnectionError", "TimeoutException", "Timeout", "TimeoutError",
                     "ProtocolError", "NetworkError", "OfflineModeIsEnabled"}


class HubError(LivedubError):
    """The Hub refused or could not serve a catalog model; the message says what to do."""


class HubUnreachableError(HubError):
    """No connection to the Hub (no network, a firewall, the endpoint down)."""


class IntegrityError(HubError):
    """A downloaded file does not match the hash the Hub lists for it (it is deleted)."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # large (LFS) files
    git_sha1: str | None  # small files: the git blob id

    @property
    def digest(self) -> str:
        return self.sha256 or self.git_sha1 or ""


@dataclass(frozen=True)
class Plan:
    """What fetching one catalog model downloads: the files of one commit, and where they go."""

    entry: CatalogEntry
    commit: str
    files: tuple[RemoteFile, ...]
    target: Path
    endpoint: str | None = None

    @property
    def staging(self) -> Path:
        return self.target.with_name(f".{self.target.name}.partial")

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def present(self) -> int:
        """Bytes of this plan already in the staging folder (verified files and partial files)."""
        verified = _load_verified(self.staging)
        done = 0
        for f in self.files:
            if verified.get(f.path) == f.digest and (self.staging / f.path).is_file():
                done += f.size
            elif (part := _part_path(self.staging, f)).is_file():
                done += min(part.stat().st_size, f.size)
        return done


def library_logs(*, verbose: bool) -> None:
    """huggingface_hub logs every retry of a dropped download; livedub reports the outcome in one line, so its
    warnings show only with -v."""
    from huggingface_hub.utils import logging as hf_logging

    (hf_logging.set_verbosity_info if verbose else hf_logging.set_verbosity_error)()


def endpoint_url(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return endpoint or constants.ENDPOINT


def plan(entry: CatalogEntry, cache: Path, *, endpoint: str | None = None) -> Plan:
    """List `entry`'s repository on the Hub (at `endpoint`, default the public Hub) and choose its files."""
    from huggingface_hub import HfApi

    with _hub_errors(endpoint, f"listing {entry.repo}"):
        info = HfApi(endpoint=endpoint).model_info(entry.repo, revision=entry.revision, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings or ()}
    chosen, missing = select_files(entry.files, list(siblings))
    if missing:
        raise HubError(f"{entry.repo} at {info.sha} has no {', '.join(missing)}: the repository changed, so "
                       f"livedub's catalog entry {entry.name} needs an update")
    unsafe = [p for p in chosen if PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts]
    if unsafe:
        raise HubError(f"{entry.repo} lists {', '.join(unsafe)}: a path outside the model folder; refusing it")
    files = []
    for path in chosen:
        sibling = siblings[path]
        lfs = sibling.lfs
        sha256 = _field(lfs, "sha256") if lfs else None
        size = sibling.size if sibling.size is not None else _field(lfs, "size")
        files.append(RemoteFile(path, int(size or 0), sha256, None if lfs else sibling.blob_id))
    unchecked = [f.path for f in files if not f.digest]
    if unchecked or not info.sha:
        raise HubError(f"{entry.repo}: the Hub listed {', '.join(unchecked) or 'the repository'} without a hash or "
                       "commit; refusing to fetch what cannot be verified")
    return Plan(entry, info.sha, tuple(files), models_dir(cache) / entry.name, endpoint)


def select_files(spec: tuple[str, ...], available: list[str]) -> tuple[list[str], list[str]]:
    """(chosen repository paths, required items nothing matched) for a catalog `files` spec."""
    chosen: list[str] = []
    missing: list[str] = []
    for item in spec:
        for alternative in item.lstrip("?").split("|"):
            matched = sorted(p for p in available if fnmatch(p, alternative))
            if matched:
                chosen += [p for p in matched if p not in chosen]
                break
        else:
            if not item.startswith("?"):
                missing.append(item)
    return chosen, missing


def fetch(plan: Plan, *, progress: bool = True) -> Path:
    """Download, verify and install `plan`'s model; returns its folder. Safe to interrupt and run again."""
    target, staging = plan.target, plan.staging
    if (target / MANIFEST).is_file():
        return target
    if target.exists():
        raise HubError(f"{target} exists but is not a fetched model (no {MANIFEST}); move it away first")
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(staging, exc) from None
    with _locked(staging, plan.entry.name):
        if (target / MANIFEST).is_file():  # another run finished it while this one waited to start
            return target
        _check_space(plan)
        verified = _load_verified(staging)
        for f in plan.files:
            if verified.get(f.path) != f.digest or not (staging / f.path).is_file():
                with _progress_bars(progress):
                    _download(plan, f)
                verified[f.path] = f.digest
                _save_verified(staging, verified)
        try:
            check_layout(plan.entry, staging)
        except (LivedubError, OSError, ValueError) as exc:  # a missing, unreadable or malformed file
            shutil.rmtree(staging, ignore_errors=True)
            raise HubError(f"{plan.entry.name}: the fetched files do not form a usable model ({exc}); nothing was "
                           "installed") from None
        _write_manifest(plan, staging)
        for leftover in [staging / _VERIFIED, *staging.rglob(f"*{PART}")]:
            leftover.unlink(missing_ok=True)
        (staging / _LOCK).unlink(missing_ok=True)
        os.rename(staging, target)
    _fsync_dir(target.parent)
    return target


def check_layout(entry: CatalogEntry, folder: Path) -> None:
    """The fetched files are what the engine for `entry.kind` loads (a LivedubError says what is wrong)."""
    if entry.kind == "asr":
        for name in ("model.bin", "config.json", "tokenizer.json"):
            if not (folder / name).is_file():
                raise HubError(f"no {name}")
        json.loads((folder / "config.json").read_text("utf-8"))
    elif entry.kind == "mt":
        from .mt.ctranslate2 import model_languages

        if len(model_languages(folder)) < 2:
            raise HubError("its vocabulary names fewer than two languages")
    elif entry.kind == "piper":
        for model in folder.rglob("*.onnx"):
            meta = json.loads(Path(f"{model}.json").read_text("utf-8"))
            if not (meta.get("language") or meta.get("espeak")):
                raise HubError(f"{model.name}.json names no language")
            kind = meta.get("phoneme_type", "espeak")
            if kind not in ("espeak", "text"):  # piper's pinyin phonemizer downloads its g2pW model when first used
                raise HubError(f"{model.name} reads {kind} phonemes, for which Piper fetches more models at run time")
    elif entry.kind == "kokoro":
        from .tts.kokoro import read_voice_file

        for voice in (folder / "voices").glob("*.bin"):
            read_voice_file(voice)


# ---------------------------------------------------------------- one file


def _part_path(staging: Path, f: RemoteFile) -> Path:
    return staging / f"{f.path}.{f.digest[:16]}{PART}"


def _download(plan: Plan, f: RemoteFile) -> None:
    """One file into the staging folder: resumed from its partial file, checked, then given its name."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get

    url = hf_hub_url(plan.entry.repo, f.path, revision=plan.commit, endpoint=plan.endpoint)
    with _hub_errors(plan.endpoint, f"fetching {f.path}", plan):
        meta = get_hf_file_metadata(url)
    if meta.commit_hash and meta.commit_hash != plan.commit:
        raise HubError(f"{plan.entry.repo} changed while fetching (commit {meta.commit_hash[:7]}, listed "
                       f"{plan.commit[:7]}); run the command again")
    if (meta.size is not None and meta.size != f.size) or (meta.etag and _looks_like_hash(meta.etag)
                                                           and meta.etag not in (f.sha256, f.git_sha1)):
        raise IntegrityError(f"{plan.entry.repo}/{f.path}: the Hub's file ({meta.etag}, {meta.size} bytes) does "
                             f"not match its listing ({f.digest}, {f.size} bytes); nothing was installed")
    part = _part_path(plan.staging, f)
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "r+b" if part.exists() else "wb") as out:
            have = out.seek(0, os.SEEK_END)
            if have > f.size:
                out.truncate(0)
                have = out.seek(0)
            with _hub_errors(plan.endpoint, f"fetching {f.path}", plan):
                http_get(meta.location, out, resume_size=have, expected_size=f.size, displayed_filename=f.path)
            out.flush()
            os.fsync(out.fileno())
    except HubError:
        raise
    except OSError as exc:
        if exc.errno is None:  # huggingface_hub's size check: the server sent another length than listed
            part.unlink(missing_ok=True)
            raise IntegrityError(f"{plan.entry.repo}/{f.path}: {exc}; the download is deleted, nothing was "
                                 "installed; run the command again") from None
        raise write_error(part, exc) from None
    got = _hash_file(part, f)
    if got != f.digest:
        part.unlink()
        kind = "sha256" if f.sha256 else "git blob sha1"
        raise IntegrityError(f"{plan.entry.repo}/{f.path}: the download does not match the Hub's {kind} (got "
                             f"{got[:12]}…, expected {f.digest[:12]}…); it is deleted and nothing was installed — "
                             "run the command again")
    os.replace(part, plan.staging / f.path)


def _hash_file(path: Path, f: RemoteFile) -> str:
    """sha256 of the content, or for a small (non-LFS) file the git blob id: sha1 of "blob SIZE\\0" + content."""
    digest = hashlib.sha256() if f.sha256 else hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _looks_like_hash(etag: str) -> bool:
    return len(etag) in (40, 64) and all(c in "0123456789abcdef" for c in etag)


def _field(obj: object, name: str):
    """A field of huggingface_hub's BlobLfsInfo (a dataclass now, a dict in older releases)."""
    return getattr(obj, name, None) if not isinstance(obj, dict) else obj.get(name)


# ---------------------------------------------------------------- errors, locks, records


def _is_transport_error(exc: BaseException) -> bool:
    return any(cls.__name__ in _TRANSPORT_ERRORS for cls in type(exc).__mro__)


@contextlib.contextmanager
def _hub_errors(endpoint: str | None, doing: str, plan: Plan | None = None) -> Iterator[None]:
    """huggingface_hub's and the transport's exceptions as one line each (HubError and subclasses)."""
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    where = endpoint_url(endpoint)
    try:
        yield
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise HubError(f"{doing}: not found on the Hub at {where} (livedub's catalog may be out of date)") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "an error")
        raise HubError(f"{doing}: the Hub at {where} answered {status}; try again later") from None
    except Exception as exc:
        if not _is_transport_error(exc):
            raise
        reason = str(exc).strip() or type(exc).__name__
        if plan is None:
            raise HubUnreachableError(f"cannot reach the Hugging Face Hub at {where} ({reason}): `livedub models get` "
                                      "needs internet access; nothing was written") from None
        done = plan.present()
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub at {where} ({reason}) while {doing}: {_mb(done)} of "
            f"{_mb(plan.size)} are kept in {plan.staging}; run `livedub models get {plan.entry.name}` again to "
            "resume") from None


@contextlib.contextmanager
def _locked(staging: Path, name: str) -> Iterator[None]:
    """One fetch of a model at a time (a second run says so instead of writing the same files)."""
    with open(staging / _LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HubError(f"another `livedub models get` is fetching {name} ({staging}); wait for it") from None
        yield


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """huggingface_hub's progress bar, off for --quiet."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _check_space(plan: Plan) -> None:
    needed = plan.size - plan.present()
    free = shutil.disk_usage(plan.staging).free
    if free < needed + _SPARE_BYTES:
        raise HubError(f"{plan.entry.name} needs {_mb(needed)} more in {plan.staging.parent}, which has "
                       f"{_mb(free)} free")


def _load_verified(staging: Path) -> dict[str, str]:
    try:
        data = json.loads((staging / _VERIFIED).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_verified(staging: Path, verified: dict[str, str]) -> None:
    partial = staging / f"{_VERIFIED}.tmp"
    partial.write_text(json.dumps(verified, indent=1, sort_keys=True), "utf-8")
    os.replace(partial, staging / _VERIFIED)


def _write_manifest(plan: Plan, staging: Path) -> None:
    record = {
        "name": plan.entry.name, "repo": plan.entry.repo, "commit": plan.commit, "licence": plan.entry.licence,
        "files": {f.path: {"size": f.size, ("sha256" if f.sha256 else "git_sha1"): f.digest} for f in plan.files},
    }
    (staging / MANIFEST).write_text(json.dumps(record, indent=1, ensure_ascii=False), "utf-8")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
