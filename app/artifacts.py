"""Where datasets, run checkpoints and published models live, by key: "datasets/<hash>",
"runs/<id>", "models/<version>".

Keras and NumPy work on files, so every artifact is worked on in a local folder, `local(key)`;
`pull(key)` makes that folder hold what the store has, `push(key)` sends what was written there.

- `LocalStore`, the embedded default: FABRIC_ARTIFACTS_DIR is the store; pull and push do nothing.
- `ObjectStore`, with FABRIC_ARTIFACTS_URL=s3://bucket/prefix (AWS S3, MinIO, R2, GCS interop):
  the bucket is the store and FABRIC_ARTIFACTS_DIR only this machine's copy, so workers on other
  machines resume each other's runs and the API serves what any worker published. Through
  obstore (Rust's object_store): streaming reads, multipart writes, S3, GCS and Azure alike.

Datasets and models are immutable once their row is committed, and their files are pushed before
that commit, so a row never points at files the store lacks. A run's checkpoint is pushed after
every epoch, its state file last (it names the epoch the checkpoint holds).
"""

import functools
import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from pathlib import Path

from app.config import Settings, get_settings

# Beside the files of a pulled or pushed folder: each file's store ETag and its local size and
# mtime when last in step, so pull fetches only what changed and push sends only what was written.
SYNC_FILE = ".store-sync.json"
# Immutable kinds of which a machine keeps copies, up to FABRIC_ARTIFACTS_LOCAL_COPIES each; a run's
# checkpoints are dropped from the machine when the run is published.
KEPT_KINDS = ("datasets", "models")
# Read from the store and written to a response this many bytes at a time (per request in flight).
STREAM_CHUNK_BYTES = 256 * 1024


class StoreUnavailable(Exception):
    """The object store did not answer (or refused): nothing was read or written."""


class ArtifactStore(ABC):
    def __init__(self, local_root: Path) -> None:
        self.local_root = local_root

    def local(self, key: str) -> Path:
        """This machine's folder (or file) for a key."""
        return self.local_root / key

    @abstractmethod
    def pull(self, key: str) -> Path:
        """Makes local(key) a copy of the folder the store holds under key (removing files the
        store does not hold); returns it. FileNotFoundError when the store holds nothing there."""

    @abstractmethod
    def push(self, key: str, last: Iterable[str] = ()) -> None:
        """Sends the files of local(key) written since they were last in step with the store;
        the files named in `last` after all others."""

    @abstractmethod
    def forget(self, key: str) -> None:
        """Drops this machine's copy of a key (never the store's)."""

    @abstractmethod
    def served_file(self, key: str) -> Path | None:
        """A file to serve as it is, where the store is a local folder; else None (stream it)."""

    @abstractmethod
    async def stream(self, key: str) -> tuple[int, AsyncIterator[memoryview]]:
        """(size, chunks) of a stored file; FileNotFoundError if there is none."""


class LocalStore(ArtifactStore):
    def pull(self, key: str) -> Path:
        folder = self.local(key)
        if not folder.is_dir():
            raise FileNotFoundError(f"no artifacts under {folder}")
        return folder

    def push(self, key: str, last: Iterable[str] = ()) -> None:
        pass

    def forget(self, key: str) -> None:
        pass

    def served_file(self, key: str) -> Path | None:
        return self.local(key)

    async def stream(self, key: str) -> tuple[int, AsyncIterator[memoryview]]:
        raise NotImplementedError("a local store's files are served as files (served_file)")


class ObjectStore(ArtifactStore):
    def __init__(self, url: str, local_root: Path, options: dict, client_options: dict, retry: dict, copies_kept: int) -> None:
        from obstore.store import from_url

        super().__init__(local_root)
        self.url, self.copies_kept = url, copies_kept
        self._store = from_url(url, config=options, client_options=client_options, retry_config=retry)

    def pull(self, key: str) -> Path:
        folder = self.local(key)
        listed = {meta["path"][len(key) + 1 :]: meta for meta in self._call(_list_all, key + "/")}
        if not listed:
            raise FileNotFoundError(f"the artifact store holds nothing under {key}/")
        folder.mkdir(parents=True, exist_ok=True)
        sync = {name: state for name, state in _read_sync(folder).items() if name in listed}
        for path in [p for p in folder.rglob("*") if p.is_file() and p.name != SYNC_FILE]:
            if path.relative_to(folder).as_posix() not in listed:  # e.g. written by a worker that died before pushing
                path.unlink()
        for name, meta in listed.items():
            path = folder / name
            if sync.get(name, {}).get("etag") == meta["e_tag"] and _local_state(path) == sync[name]["local"]:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            self._call(_download, f"{key}/{name}", partial)
            partial.replace(path)  # whole or not at all
            sync[name] = {"etag": meta["e_tag"], "local": _local_state(path)}
        _write_sync(folder, sync)
        kind = key.split("/", 1)[0]
        if kind in KEPT_KINDS:
            os.utime(folder)  # most recently used
            self._drop_old_copies(kind)
        return folder

    def _drop_old_copies(self, kind: str) -> None:
        """Keeps this machine's copies of datasets (and of models) to the most recently used few."""
        copies = [p for p in (self.local_root / kind).iterdir() if p.is_dir() and not p.name.startswith(".")]
        for old in sorted(copies, key=lambda p: p.stat().st_mtime, reverse=True)[self.copies_kept :]:
            shutil.rmtree(old, ignore_errors=True)

    def push(self, key: str, last: Iterable[str] = ()) -> None:
        import obstore

        folder = self.local(key)
        sync = _read_sync(folder)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SYNC_FILE)
        last = [name for name in last if name in names]
        for name in [n for n in names if n not in last] + last:
            state = _local_state(folder / name)
            if sync.get(name, {}).get("local") == state:
                continue
            result = self._call(obstore.put, f"{key}/{name}", folder / name)
            sync[name] = {"etag": result["e_tag"], "local": state}
        _write_sync(folder, sync)

    def forget(self, key: str) -> None:
        shutil.rmtree(self.local(key), ignore_errors=True)

    def served_file(self, key: str) -> Path | None:
        return None

    async def stream(self, key: str) -> tuple[int, AsyncIterator[memoryview]]:
        import obstore

        try:
            result = await obstore.get_async(self._store, key)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise StoreUnavailable(f"artifact store: {str(error).splitlines()[0]}") from error

        async def chunks() -> AsyncIterator[memoryview]:
            async for chunk in result.stream(STREAM_CHUNK_BYTES):
                yield memoryview(chunk)

        return result.meta["size"], chunks()

    def _call(self, operation, *args):
        """operation(the obstore store, *args), its failures (but a missing file) as StoreUnavailable."""
        try:
            return operation(self._store, *args)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise StoreUnavailable(f"artifact store: {str(error).splitlines()[0]}") from error


def _list_all(store, prefix: str) -> list[dict]:
    """Every object under prefix (listing pages through the bucket as it is consumed)."""
    import obstore

    return [meta for batch in obstore.list(store, prefix=prefix) for meta in batch]


def _download(store, key: str, path: Path) -> None:
    import obstore

    with path.open("wb") as file:
        for chunk in obstore.get(store, key).stream(STREAM_CHUNK_BYTES):
            file.write(chunk)


def _local_state(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _read_sync(folder: Path) -> dict:
    try:
        return json.loads((folder / SYNC_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_sync(folder: Path, sync: dict) -> None:
    (folder / SYNC_FILE).write_text(json.dumps(sync))


def create_store(settings: Settings) -> ArtifactStore:
    if settings.artifacts_url is None:
        return LocalStore(settings.artifacts_dir)
    options = {"region": settings.artifacts_region}
    if settings.artifacts_endpoint:
        options["endpoint"] = settings.artifacts_endpoint
    if settings.artifacts_access_key_id:
        options["access_key_id"] = settings.artifacts_access_key_id
    if settings.artifacts_secret_access_key:
        options["secret_access_key"] = settings.artifacts_secret_access_key.get_secret_value()
    client_options = {
        "allow_http": (settings.artifacts_endpoint or "").startswith("http://"),
        "connect_timeout": timedelta(seconds=settings.artifacts_connect_timeout_s),
        "timeout": timedelta(seconds=settings.artifacts_request_timeout_s),
    }
    retry = {"retry_timeout": timedelta(seconds=settings.artifacts_retry_timeout_s), "max_retries": 10}
    return ObjectStore(
        settings.artifacts_url, settings.artifacts_dir, options, client_options, retry, settings.artifacts_local_copies
    )


@functools.lru_cache
def get_store() -> ArtifactStore:
    return create_store(get_settings())
