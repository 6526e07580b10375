"""``hilbench store compact`` and ``hilbench store migrate``: a store that stays quick to read as it grows.

Compaction merges the per-run files (``<table>/<run_id>.parquet``) of every closed session into one file per
session and table, ``<table>/session=<session_id>.parquet``, one row group per run (a reader that wants some
runs skips the others' row groups by their statistics). Its footer lists the runs it holds; every reader
ignores a per-run file of a run that a session's file holds (harness/store.py ``Store._table_files``).

The steps, each atomic, so that a crash or a kill at any point leaves every row readable exactly once and a
second ``store compact`` finishes the work:

1. for each table, the merged file is written under a temporary name, synced and renamed into place (a file
   the session had already is read into the new one: the new file holds every run the old one did);
2. only once every table's merged file is in place are the per-run files it covers deleted.

Only sessions that are no longer running are compacted (a running session's files are left alone, and a run
its writer adds later is a per-run file no merged file covers), so a ``hilbench run`` may write into the store
meanwhile. A file that does not read is left where it is (``hilbench store check`` names it). Two
compactions (or migrations) of one store never run at once: each holds the store's ``.maintenance.lock``
(``flock``).

An object store (``s3://``, harness/storage.py): ``store migrate`` works there (it only adds summary files, and
the marker last), without the lock, which an object store cannot hold: run one migration at a time.
``store compact`` works there too, in two parts. **Merging** is safe whoever else reads, writes or compacts: each
merged object is one PUT (whole or absent), readers ignore the per-run objects it covers, and the per-run objects
stay, so two compactions that overwrite each other's merged object lose nothing. **Pruning** (``--prune``)
deletes the per-run objects a session's merged object covers, as step 2 above, after asking the endpoint for
the merged object's list again; with no lock to hold, run it from one place at a time (the nightly job): a
second compaction that replaced the merged object with one covering fewer runs between that check and the
delete could lose that run's rows. Without ``--prune`` the merged objects only add storage (a compacted
session's bytes twice) and make readers fast; the per-run objects can be pruned later.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import StoreError
from harness.store import COMPACT_PREFIX, SCHEMA_VERSION, Store, file_problem

__all__ = ["COMPACTED_TABLES", "compact_store", "migrate_store", "maintenance_lock"]

#: The per-run tables compaction merges; ``runs`` last, as a writer writes it.
COMPACTED_TABLES = ("samples", "telemetry", "accuracy", "summaries", "runs")
LOCK_NAME = ".maintenance.lock"
#: Ids compaction puts in a file name (a shared store's rows are not trusted as paths).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")


@contextlib.contextmanager
def maintenance_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.maintenance.lock`` (``flock``); StoreError when another process holds it."""
    import fcntl

    try:
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"{root}: cannot write {LOCK_NAME} ({exc.strerror or exc})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{root}: another `hilbench store compact` or `store migrate` is running on this "
                             "store: wait for it to finish") from None
        except OSError:
            pass  # a file system without locks
        yield
    finally:
        os.close(fd)


def migrate_store(store: Store) -> int:
    """``hilbench store migrate``: store the summary of every run that has none and mark the store v2
    (:meth:`Store.migrate`), under the maintenance lock. Returns how many runs it summarised."""
    store.ensure_folders()
    if store.location.remote:  # no flock on an object store (module docstring)
        return store.migrate()
    with maintenance_lock(store.root):
        return store.migrate()


def compact_store(store: Store, *, fail_at: Callable[[str], None] | None = None, prune: bool = False) -> list[str]:
    """Compact every closed session of ``store`` (see the module docstring); one line per session compacted.
    ``fail_at`` (tests) is called with the name of each step before it is taken, to stop there. ``prune``: an
    object store's per-run objects that a merged object covers are deleted too (a local store's always are)."""
    step = fail_at or (lambda _name: None)
    root = store.root
    if store.location.remote:
        return _compact_remote(store, step, prune)
    store.ensure_folders()
    done: list[str] = []
    with maintenance_lock(root):
        if getattr(store, "schema_version", SCHEMA_VERSION) < SCHEMA_VERSION:
            n = store.migrate()
            done.append(f"migrated to schema v{SCHEMA_VERSION}: stored the summaries of {n} runs")
        for session, ids in _closed_sessions(store):
            merged, removed = _compact_session(store, session, ids, step)
            if merged or removed:
                done.append(f"session {session}: {len(ids)} runs, merged {merged} per-run files into "
                            f"{COMPACT_PREFIX}{session}.parquet files, removed {removed}")
    return done


def _compact_session(store: Store, session: str, run_ids: list[str], step: Callable[[str], None]) -> tuple[int, int]:
    """Merge then delete one closed session's per-run files; (files merged, files removed)."""
    root = store.root
    merged = 0
    for table in COMPACTED_TABLES:
        target = root / table / f"{COMPACT_PREFIX}{session}.parquet"
        covered = store._covers(str(target)) if target.exists() else None
        parts: list[pa.Table] = []
        new: set[str] = set()
        for run_id in run_ids:
            path = root / table / f"{run_id}.parquet"
            if (covered and run_id in covered) or not path.is_file():
                continue
            if file_problem(table, path, read=True) is not None:
                continue  # left as it is: `store check` names it
            try:
                parts.append(pq.read_table(path))
            except (pa.ArrowException, OSError):
                continue
            new.add(run_id)
        if parts:
            step(f"write {table}")
            store.write_merged(table, session, parts, new)
            merged += len(parts)
            step(f"written {table}")
    removed = 0
    for table in COMPACTED_TABLES:
        target = root / table / f"{COMPACT_PREFIX}{session}.parquet"
        covered = store._covers(str(target)) if target.exists() else None
        for run_id in sorted(r for r in covered or () if _SAFE_ID.match(r)):
            path = root / table / f"{run_id}.parquet"
            if path.is_file():
                step(f"delete {table}")
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreError(f"{path}: cannot remove it ({exc.strerror or exc}); its rows are in "
                                     f"{target.name}, and readers ignore it: run `hilbench store compact` "
                                     "again") from exc
                removed += 1
    return merged, removed


def _closed_sessions(store: Store) -> list[tuple[str, list[str]]]:
    """(session, its run ids) of every session that is no longer running, with ids fit for a file name."""
    sessions = store.sessions()
    closed = set(sessions.loc[sessions["status"] != "running", "session_id"].dropna().astype(str))
    runs = store._read("runs", ["run_id", "session_id"])
    runs = runs[runs["session_id"].isin(closed)]
    out = []
    for session, group in runs.groupby("session_id", sort=True):
        ids = sorted(str(r) for r in group["run_id"] if _SAFE_ID.match(str(r)))
        if _SAFE_ID.match(str(session)) and ids:
            out.append((str(session), ids))
    return out


def _compact_remote(store: Store, step: Callable[[str], None], prune: bool) -> list[str]:
    """``store compact`` of an object store (module docstring): merge each closed session's per-run objects into
    one object per table (one PUT each); with ``prune``, then delete the per-run objects the merged object covers
    as the endpoint has it now."""
    loc = store.location
    done: list[str] = []
    if getattr(store, "schema_version", SCHEMA_VERSION) < SCHEMA_VERSION:
        n = store.migrate()
        done.append(f"migrated to schema v{SCHEMA_VERSION}: stored the summaries of {n} runs")
    listed = {table: set(loc.files(table)) for table in COMPACTED_TABLES}
    for session, ids in _closed_sessions(store):
        merged = 0
        for table in COMPACTED_TABLES:
            target = loc.path(f"{table}/{COMPACT_PREFIX}{session}.parquet")
            covered = store._covers(target) if target in listed[table] else None
            parts: list[pa.Table] = []
            new: set[str] = set()
            for run_id in ids:
                path = loc.path(f"{table}/{run_id}.parquet")
                if (covered and run_id in covered) or path not in listed[table]:
                    continue
                if file_problem(table, path, read=True, location=loc) is not None:
                    continue  # left as it is: `store check` names it
                parts.append(loc.read_table(path))
                new.add(run_id)
            if parts:
                step(f"write {table}")
                store.write_merged(table, session, parts, new)
                merged += len(parts)
        removed = 0
        if prune:
            for table in COMPACTED_TABLES:
                target = loc.path(f"{table}/{COMPACT_PREFIX}{session}.parquet")
                if not loc.present(target):
                    continue
                loc.forget(target)  # type: ignore[union-attr]  # its list as the endpoint has it now, not as listed
                covered = store._covers(target) or frozenset()
                for run_id in sorted(r for r in covered if _SAFE_ID.match(r)):
                    path = loc.path(f"{table}/{run_id}.parquet")
                    if path in listed[table]:
                        step(f"delete {table}")
                        removed += int(loc.delete(path))
        if merged or removed:
            done.append(f"session {session}: {len(ids)} runs, merged {merged} per-run objects into "
                        f"{COMPACT_PREFIX}{session}.parquet objects, removed {removed}")
    return done
