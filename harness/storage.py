"""Where a results store's files live: a local folder or an object store (S3), behind one small interface.

:class:`harness.store.Store` reads and writes every file through a *location*:

* :class:`LocalFolder`: a folder on this host. A file is written to a temporary name (held with ``flock`` so
  that ``store check`` never takes it for a stale one), fsync'ed and renamed: a crash or two writers never
  leave a half-written file.
* :class:`ObjectStore`: ``s3://bucket/prefix`` through pyarrow's S3 filesystem (``pyarrow.fs``). A file is
  built in memory and uploaded in one request sequence whose object appears whole or not at all (S3 shows no
  object before its PUT or multipart upload completes), so writers on many hosts never collide and no
  temporary names, locks or renames are needed. Endpoint, region and credentials come from the URL's query
  (``?endpoint_override=http://host:9000&region=eu-west-1``) or the usual AWS environment variables
  (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, a profile), as the AWS SDK reads them.

Both give the same methods (``files``, ``stamp``, ``read_text``, ``put_bytes``, ``put_parquet``, ``delete``,
``parquet_file``, ``prepare``, ``temp_files``) and ``filesystem`` (None for a local folder, else the pyarrow
filesystem that ``pyarrow.dataset`` and ``pyarrow.parquet`` read through). A location's ``root`` is what
messages show: the folder's Path, or the URL with every credential masked. Failures are
:class:`~harness.errors.StoreError` with one line that says what and where, never a credential.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path, PurePath, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.errors import StoreError
from harness.liveness import hold_lock, machine_tag

__all__ = ["LocalFolder", "ObjectStore", "open_location", "is_store_url", "mask_url", "mask_argv"]

#: URL schemes of object stores (``s3://``).
SCHEMES = ("s3",)
#: Query keys of an ``s3://`` URL (pyarrow.fs.S3FileSystem's options of the same names).
_QUERY_KEYS = ("endpoint_override", "region", "scheme", "access_key", "secret_key", "session_token")
_SECRET_KEYS = ("access_key", "secret_key", "session_token")
_MASK = "***"


def is_store_url(text: object) -> bool:
    """Whether ``text`` names an object store (``s3://...``) rather than a local folder."""
    return isinstance(text, str) and bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text)) \
        and text.split("://", 1)[0].lower() in SCHEMES


def mask_url(text: str) -> str:
    """``text`` with the credentials of any URL in it masked: ``user:password@`` and the query's
    ``access_key``, ``secret_key`` and ``session_token`` values show as ``***``."""
    text = re.sub(r"(://)[^/@\s?#]+@", rf"\1{_MASK}@", text)
    return re.sub(r"(?i)\b(access_key|secret_key|session_token)=[^&\s#]*", rf"\1={_MASK}", text)


def mask_argv(argv: list[str]) -> list[str]:
    """A command line as it may be stored or shown: credentials in URLs masked (:func:`mask_url`)."""
    return [mask_url(a) if "://" in a or "_key=" in a or "session_token=" in a else a for a in argv]


def open_location(root: Path | str) -> LocalFolder | ObjectStore:
    """The location a store's ``root`` names: ``s3://...`` an object store, anything else a local folder."""
    if is_store_url(root):
        return ObjectStore(str(root))
    if isinstance(root, str) and "://" in root:
        scheme = root.split("://", 1)[0]
        raise StoreError(f"--store {mask_url(root)}: {scheme}:// is not a store this hilbench can use "
                         f"(a folder, or s3://bucket/prefix)")
    return LocalFolder(Path(root))


# ---------------------------------------------------------------------------------------------- local folder
class LocalFolder:
    """A store in a folder on this host."""

    remote = False
    filesystem: Any = None
    #: how many files a reader reads at once: one per core (the disk is not the limit)
    readers = os.cpu_count() or 1

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self) -> bool:
        return self.root.is_dir()

    def files(self, table: str) -> list[str]:
        """The Parquet files of ``table``, sorted by name."""
        folder = self.root / table
        return sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def stamp(self, path: str) -> tuple[int, int] | None:
        """(size, mtime) of a file, None when it is gone."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def read_text(self, rel: str) -> str | None:
        """The text of ``rel`` (None: no such file); StoreError when it exists but does not read."""
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return path.read_text()
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def prepare(self, tables: tuple[str, ...], marker: str, marker_bytes: bytes) -> None:
        """Create the folder, its table folders and the marker; prove it takes files."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for table in tables:
                (self.root / table).mkdir(exist_ok=True)
            if not (self.root / marker).exists():
                self.put_bytes(marker, marker_bytes)
            fd, probe = _temp_for(self.root / tables[0] / "probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(f"{self.root}: results store is not writable ({exc.strerror or exc})") from exc

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Write a small file atomically (OSError as it comes)."""
        path = self.root / rel
        fd, tmp = _temp_for(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quiet(tmp)
            raise

    def put_parquet(self, rel: str, arrow: pa.Table) -> Path:
        """Write ``arrow`` as ``rel`` atomically; StoreError (nothing of it written) when the folder refuses."""
        return self.put_with(rel, lambda tmp: pq.write_table(arrow, tmp, compression="zstd",
                                                              write_page_checksum=True))

    def put_with(self, rel: str, write: Any) -> Path:
        """Write ``rel`` atomically with ``write(sink)`` (a Parquet writer streaming into a temporary file, held
        with ``flock`` until renamed); StoreError (nothing of it written) when the folder refuses."""
        path = self.root / rel
        tmp = None
        try:
            fd, tmp = _temp_for(path)
            try:  # held (flock) until renamed: `store check` never takes a file being written for a stale one
                write(tmp)
                _fsync(tmp)  # the data is on disk before its name is: a crash leaves the old state or the new
                os.replace(tmp, path)
            finally:
                os.close(fd)
        except OSError as exc:
            if tmp is not None:
                _unlink_quiet(tmp)
            raise StoreError(_write_failure(path, exc)) from exc
        except BaseException:
            if tmp is not None:
                _unlink_quiet(tmp)
            raise
        return path

    def present(self, path: str) -> bool:
        """Whether the file is there now."""
        return os.path.isfile(path)

    def delete(self, path: str | Path) -> bool:
        return _unlink_quiet(path)

    def parquet_file(self, path: str, **kwargs: Any) -> pq.ParquetFile:
        return pq.ParquetFile(path, **kwargs)

    def dataset(self, files: list[str], schema: pa.Schema) -> ds.Dataset:
        """The Parquet files ``files`` as one dataset of ``schema``."""
        return ds.dataset(files, schema=schema, format="parquet")

    def read_whole(self, files: list[str], schema: pa.Schema, columns: list[str] | None) -> pa.Table | None:
        """None: a local file is read in place (:meth:`ObjectStore.read_whole` is the object store's way)."""
        return None

    def temp_files(self, tables: tuple[str, ...]) -> list[Path]:
        """Every temporary file: the writers' ``.*.tmp`` (and older versions' ``.probe-*``)."""
        folders = [self.root] + [self.root / t for t in tables]
        return sorted(p for d in folders if d.is_dir() for p in d.iterdir()
                      if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.startswith(".probe-"))
                      and p.is_file())

    def check(self, exc: BaseException) -> None:
        """Nothing: a local file that does not read is that file's problem."""

    # What `store check` needs besides (harness/storecheck.py): paths under :attr:`key_root`.
    @property
    def key_root(self) -> Path:
        return self.root

    def read_table(self, path: PurePath | str, columns: list[str] | None = None,
                   schema: pa.Schema | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns, schema=schema)

    def move(self, src: PurePath, dest: PurePath) -> None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)

    def append_line(self, path: PurePath, line: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------------------------- object store
#: Objects up to this size (as listed) are fetched whole, in one request (:class:`ObjectStore`).
WHOLE_OBJECT_MAX = 8 << 20
#: The most bytes of whole objects one :class:`ObjectStore` keeps.
WHOLE_CACHE_MAX = 256 << 20


class ObjectStore:
    """A store under ``s3://bucket/prefix`` (pyarrow.fs.S3FileSystem).

    Each request to an object store costs a round trip, whatever its size, and reading a Parquet file through a
    file system takes several (its footer, then its column chunks). Objects of up to :data:`WHOLE_OBJECT_MAX`
    bytes as listed (the runs, summaries and sessions tables' files, a compacted session's small tables) are
    therefore fetched **whole, in one GET** (after the HEAD pyarrow's open makes), many at once, and kept for
    this store's life while their listed size and time stay the same (up to :data:`WHOLE_CACHE_MAX` bytes in
    all): a compacted file's footer (the runs it covers) and its rows then cost one fetch together.
    Larger objects (samples) are read by ranges, so a reader of a few runs fetches only their row groups."""

    remote = True
    #: how many objects a reader fetches at once: requests wait on the network, not on this host's cores
    readers = 16

    def __init__(self, url: str) -> None:
        from pyarrow import fs as pafs

        parts = urlsplit(url)
        userinfo, _, bucket = parts.netloc.rpartition("@")
        self.bucket = bucket
        self.prefix = parts.path.strip("/")
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _QUERY_KEYS:
                raise StoreError(f"--store {mask_url(url)}: unknown option {key!r} in the URL's query "
                                 f"(known: {', '.join(_QUERY_KEYS)})")
            query[key] = value
        if userinfo:
            user, _, password = userinfo.partition(":")
            query.setdefault("access_key", user)
            query.setdefault("secret_key", password)
        shown = {k: (_MASK if k in _SECRET_KEYS else v) for k, v in query.items()}
        #: what every message shows: the URL, credentials masked
        self.root = mask_url(f"s3://{bucket}/{self.prefix}" + (f"?{urlencode(shown, safe=':/*@')}" if shown else ""))
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket or ""):
            raise StoreError(f"--store {self.root}: {bucket or '(none)'!r} is not a bucket name "
                             "(s3://bucket/prefix: 3 to 63 lower-case letters, digits, dots and hyphens)")
        self._secrets = [v for k, v in query.items() if k in _SECRET_KEYS and v]
        endpoint = (query.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3")
                    or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.endpoint = mask_url(endpoint) if endpoint else "AWS S3"
        region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        kwargs: dict[str, Any] = {
            "connect_timeout": 5, "request_timeout": 60,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if endpoint:
            kwargs["endpoint_override"] = endpoint
        if region:
            kwargs["region"] = region
        if query.get("scheme"):
            kwargs["scheme"] = query["scheme"]
        if query.get("access_key") or query.get("secret_key"):
            kwargs.update(access_key=query.get("access_key"), secret_key=query.get("secret_key"),
                          session_token=query.get("session_token") or None)
        try:
            self.filesystem = pafs.S3FileSystem(**kwargs)
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise StoreError(f"--store {self.root}: {self._why(exc)}") from exc
        self._listed: dict[str, tuple[int, int]] = {}
        self._whole: dict[str, tuple[tuple[int, int], pa.Buffer]] = {}

    def _key(self, rel: str) -> str:
        return f"{self.bucket}/{self.prefix}/{rel}" if self.prefix else f"{self.bucket}/{rel}"

    def path(self, rel: str) -> str:
        return self._key(rel)

    def _why(self, exc: BaseException) -> str:
        """One line, no credential: what went wrong with this store, with a hint where one helps."""
        text = " ".join(str(exc).split())
        for secret in self._secrets if hasattr(self, "_secrets") else []:
            text = text.replace(secret, _MASK)
        text = mask_url(re.sub(r"\s*\(Request ID: [^)]*\)", "", text))
        up = text.upper()
        if "NO_SUCH_BUCKET" in up or "NOSUCHBUCKET" in up:
            return f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it first"
        if "NETWORK_CONNECTION" in up or "COULD NOT CONNECT" in up or "COULD NOT RESOLVE" in up:
            detail = re.search(r"Details: (.*)$", text)
            return (f"cannot reach the endpoint {self.endpoint} ({detail.group(1) if detail else 'no connection'}):"
                    " check AWS_ENDPOINT_URL or the URL's endpoint_override, and the network")
        if any(code in up for code in ("INVALID_ACCESS_KEY_ID", "INVALIDACCESSKEYID", "SIGNATURE_DOES_NOT_MATCH",
                                       "SIGNATUREDOESNOTMATCH", "ACCESS_DENIED", "ACCESSDENIED", "FORBIDDEN",
                                       "UNRECOGNIZED CLIENT", "EXPIRED_TOKEN", "EXPIREDTOKEN")):
            return (f"the endpoint {self.endpoint} refused the credentials (access denied): check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the bucket's policy")
        if any(code in up for code in ("SLOW_DOWN", "SLOWDOWN", "THROTTL", "REQUEST_LIMIT_EXCEEDED",
                                       "TOO MANY REQUESTS", "SERVICE_UNAVAILABLE", "SERVICEUNAVAILABLE")):
            return (f"the endpoint {self.endpoint} throttled the requests (slow down) after retries: try again "
                    "later, or with fewer writers at once")
        return text if len(text) <= 300 else text[:297] + "..."

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{self.root}: {what}: {self._why(exc)}")

    def exists(self) -> bool:
        """Whether a store is there (its marker); StoreError when the endpoint or bucket cannot be used."""
        return self.read_text("hilbench-store.json") is not None

    def files(self, table: str) -> list[str]:
        from pyarrow import fs as pafs

        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(self._key(table), allow_not_found=True))
        except (pa.ArrowException, OSError) as exc:
            raise self._fail(f"cannot list {table}", exc) from exc
        out = []
        for info in infos:
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet") \
                    and not info.base_name.startswith("."):
                mtime = info.mtime_ns if info.mtime_ns is not None else 0
                self._listed[info.path] = (info.size or 0, mtime)
                out.append(info.path)
        return sorted(out)

    def stamp(self, path: str) -> tuple[int, int] | None:
        if path in self._listed:
            return self._listed[path]
        from pyarrow import fs as pafs

        try:
            info = self.filesystem.get_file_info(path)
        except (pa.ArrowException, OSError) as exc:
            raise self._fail(f"cannot read {PurePosixPath(path).name}", exc) from exc
        if info.type != pafs.FileType.File:
            return None
        return info.size or 0, info.mtime_ns or 0

    def read_text(self, rel: str) -> str | None:
        from pyarrow import fs as pafs

        key = self._key(rel)
        try:
            if self.filesystem.get_file_info(key).type != pafs.FileType.File:
                # No such object; unless the bucket itself is missing (a HEAD of a key cannot tell them apart).
                if self.filesystem.get_file_info(self.bucket).type == pafs.FileType.NotFound:
                    raise StoreError(f"{self.root}: bucket {self.bucket!r} does not exist at {self.endpoint}: "
                                     "create it first")
                return None
            with self.filesystem.open_input_stream(key) as f:
                return bytes(f.read()).decode("utf-8", "replace")
        except (pa.ArrowException, OSError) as exc:
            raise self._fail(f"cannot read {rel}", exc) from exc

    def prepare(self, tables: tuple[str, ...], marker: str, marker_bytes: bytes) -> None:
        """Prove the bucket takes objects (write and delete a probe), and write the marker when missing.
        Nothing else: an object store has no folders to make."""
        probe = self._key(f"{tables[0]}/.probe-{machine_tag()}-{os.getpid()}")
        try:
            with self.filesystem.open_output_stream(probe) as f:
                f.write(b"")
            self.filesystem.delete_file(probe)
        except (pa.ArrowException, OSError) as exc:
            raise self._fail("results store is not writable", exc) from exc
        if self.read_text(marker) is None:
            self.put_bytes(marker, marker_bytes)

    def _upload(self, key: str, data: bytes | pa.Buffer) -> None:
        with self.filesystem.open_output_stream(key, metadata={"Content-Type": "application/octet-stream"}) as f:
            f.write(data)

    def put_bytes(self, rel: str, data: bytes) -> None:
        try:
            self._upload(self._key(rel), data)
        except (pa.ArrowException, OSError) as exc:
            raise self._fail(f"cannot write {rel}", exc) from exc

    def put_parquet(self, rel: str, arrow: pa.Table) -> str:
        """Write ``arrow`` as ``rel``: encoded in memory, then uploaded; the object appears whole or not at all."""
        return self.put_with(rel, lambda sink: pq.write_table(arrow, sink, compression="zstd",
                                                               write_page_checksum=True))

    def put_with(self, rel: str, write: Any) -> str:
        """Write ``rel`` with ``write(sink)`` into memory, then upload it: the object appears whole or not at all."""
        buf = pa.BufferOutputStream()
        write(buf)
        key = self._key(rel)
        try:
            self._upload(key, buf.getvalue())
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{self.root}: cannot write {rel} ({self._why(exc)}); nothing of it was written, "
                             "and every file stored before is kept") from exc
        self._listed.pop(key, None)
        return key

    def forget(self, path: str) -> None:
        """Drop what the last listing said of ``path``: its next stamp (and footer) is asked of the endpoint."""
        self._listed.pop(path, None)

    def present(self, path: str) -> bool:
        """Whether the object is there now (asked of the endpoint, not the last listing)."""
        from pyarrow import fs as pafs

        try:
            return bool(self.filesystem.get_file_info(path).type == pafs.FileType.File)
        except (pa.ArrowException, OSError) as exc:
            raise self._fail(f"cannot read {PurePosixPath(path).name}", exc) from exc

    def delete(self, path: str | Path) -> bool:
        self._listed.pop(str(path), None)
        try:
            self.filesystem.delete_file(str(path))
        except (pa.ArrowException, OSError):
            return False
        return True

    def _info(self, path: str) -> Any:
        """The file's FileInfo with its size as listed: opening it then costs no HEAD request."""
        from pyarrow import fs as pafs

        listed = self._listed.get(path)
        return pafs.FileInfo(path, pafs.FileType.File, size=listed[0]) if listed is not None else path

    def _fetch_whole(self, path: str) -> pa.Buffer | None:
        """The object's bytes, in one GET (kept: class docstring); None when it is not listed or too large."""
        listed = self._listed.get(path)
        if listed is None or listed[0] > WHOLE_OBJECT_MAX:
            return None
        hit = self._whole.get(path)
        if hit is not None and hit[0] == listed:
            return hit[1]
        # pyarrow asks the object's size first (a HEAD; its open calls take no FileInfo here), then one GET reads it
        with self.filesystem.open_input_file(path) as f:
            buf = f.read_buffer()
        if sum(b.size for _, b in self._whole.values()) + buf.size <= WHOLE_CACHE_MAX:
            self._whole[path] = (listed, buf)
        return buf

    def parquet_file(self, path: str, **kwargs: Any) -> pq.ParquetFile:
        buf = self._fetch_whole(path)
        if buf is not None:
            return pq.ParquetFile(pa.BufferReader(buf), **kwargs)
        return pq.ParquetFile(path, filesystem=self.filesystem, **kwargs)

    def dataset(self, files: list[str], schema: pa.Schema) -> ds.Dataset:
        """The objects ``files`` as one dataset of ``schema``, their sizes as listed (no HEAD request each)."""
        return ds.dataset([self._info(f) for f in files], schema=schema, format="parquet",
                          filesystem=self.filesystem)

    def read_whole(self, files: list[str], schema: pa.Schema, columns: list[str] | None) -> pa.Table | None:
        """``files`` read as one table of ``schema`` (``columns``; a column a file lacks is null), each fetched
        whole in one GET, :attr:`readers` at once; None (read them by ranges) when any is larger than
        :data:`WHOLE_OBJECT_MAX` or not listed."""
        from concurrent.futures import ThreadPoolExecutor

        if not files or any(self._listed.get(f, (WHOLE_OBJECT_MAX + 1,))[0] > WHOLE_OBJECT_MAX for f in files):
            return None

        def one(path: str) -> pa.Table:
            buf = self._fetch_whole(path)
            if buf is None:
                raise OSError(f"{path}: not listed")
            return pq.read_table(pa.BufferReader(buf), schema=schema, columns=columns)

        with ThreadPoolExecutor(max_workers=min(self.readers, len(files))) as pool:
            return pa.concat_tables(list(pool.map(one, files)))

    def temp_files(self, tables: tuple[str, ...]) -> list[Path]:
        """None: an object store has no temporary files (an upload shows nothing until it completes)."""
        return []

    def check(self, exc: BaseException) -> None:
        """Raise StoreError when ``exc`` (from reading a file) is the endpoint failing (unreachable, refused,
        throttled) rather than the file being bad: such a file is not skipped as corrupt."""
        up = str(exc).upper()
        if "AWS ERROR" in up and not any(code in up for code in ("NO_SUCH_KEY", "NOSUCHKEY")):
            raise self._fail("cannot read", exc) from exc

    # What `store check` needs besides (harness/storecheck.py): keys under :attr:`key_root` as paths.
    @property
    def key_root(self) -> PurePosixPath:
        return PurePosixPath(self._key("").rstrip("/"))

    def read_table(self, path: PurePath | str, columns: list[str] | None = None,
                   schema: pa.Schema | None = None) -> pa.Table:
        try:
            return pq.read_table(str(path), columns=columns, schema=schema, filesystem=self.filesystem)
        except (pa.ArrowException, OSError) as exc:
            self.check(exc)
            raise

    def move(self, src: PurePath, dest: PurePath) -> None:
        """Copy ``src`` to ``dest`` on the server, then delete ``src`` (an object store has no rename)."""
        self._listed.pop(str(src), None)
        try:
            self.filesystem.copy_file(str(src), str(dest))
            self.filesystem.delete_file(str(src))
        except (pa.ArrowException, OSError) as exc:
            raise OSError(self._why(exc)) from exc

    def append_line(self, path: PurePath, line: str) -> None:
        """Rewrite ``path`` with ``line`` added (objects cannot be appended to)."""
        from pyarrow import fs as pafs

        key = str(path)
        try:
            before = b""
            if self.filesystem.get_file_info(key).type == pafs.FileType.File:
                with self.filesystem.open_input_stream(key) as f:
                    before = bytes(f.read())
            self._upload(key, before + line.encode() + b"\n")
        except (pa.ArrowException, OSError) as exc:
            raise OSError(self._why(exc)) from exc


# ------------------------------------------------------------------------------------ local-folder helpers
def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: str | Path) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _temp_for(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, named for this machine and process and held (``flock``) through
    the returned descriptor until it is closed: while held, no ``store check`` takes it for a stale one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{machine_tag()}-{os.getpid()}.", suffix=".tmp")
    hold_lock(fd)
    return fd, tmp


def _write_failure(path: Path, exc: OSError) -> str:
    """One line: which folder could not take which file, why, and what is kept."""
    code = exc.errno
    if code is None:  # pyarrow's own OSError may name the errno in its text only
        m = re.search(r"errno (\d+)", str(exc), re.I)
        code = int(m.group(1)) if m else None
    why = os.strerror(code) if code else " ".join(str(exc.strerror or exc).split())
    hint = {28: ": free space on that disk", 122: ": the disk quota is used up", 13: ": check the folder's permissions",
            1: ": check the folder's permissions", 30: ": the file system is read-only"}.get(code or 0, "")
    return (f"{path.parent}: cannot write {path.name} ({why}){hint}; nothing of it was written, and every file "
            "stored before is kept")
