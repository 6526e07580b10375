"""``hilbench store check [--repair]``: what in a results store no reader can use, and setting it aside.

Problems (each makes ``store check`` exit 1):

* ``corrupt``: a Parquet file that does not read (empty, truncated, overwritten, a page whose checksum fails)
  or is not of its folder's table (another table's file, a key column missing, a column of another type);
* ``orphaned``: a samples, telemetry or accuracy file whose run has no ``runs`` row (a writer stopped between
  the two; never one a live session may still commit);
* ``missing-samples``: a successful run's ``runs`` row whose samples are gone or corrupt;
* ``stale-temp``: a temporary file whose writer is gone (:meth:`harness.store.Store.stale_temps`);
* ``abandoned``: a session whose row says ``running`` but whose process is gone;
* ``bad-marker``: ``hilbench-store.json`` missing or unreadable.

``--repair`` moves every problem file into ``quarantine/<time>-<random>/<table>/`` with a ``manifest.jsonl``
saying what each was and why (nothing is deleted but stale temporary files, which hold no stored data), closes
abandoned sessions' rows as ``abandoned`` and writes a new marker, so that every reader works again.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa

from harness.errors import StoreError
from harness.liveness import owner_state
from harness.storage import LocalFolder, ObjectStore, is_store_url
from harness.store import MARKER, SCHEMA_VERSION, SCHEMAS, TABLES, Store, file_problem, new_id

__all__ = ["Finding", "PROBLEMS", "check_store", "repair_store", "QUARANTINE"]

QUARANTINE = "quarantine"
#: Kinds of finding that are problems (the rest are notes: a live session, a file it may still commit).
PROBLEMS = ("corrupt", "orphaned", "missing-samples", "stale-temp", "abandoned", "bad-marker")
_PER_RUN = ("samples", "telemetry", "accuracy", "summaries")


@dataclass(frozen=True)
class Finding:
    kind: str  #: one of PROBLEMS, or "running" / "pending" (notes)
    path: PurePath  #: the file (for a session: its row's file; a Path in a folder, a bucket/key in an object store)
    detail: str
    table: str | None = None
    run_id: str | None = None  #: the run a missing-samples finding sets aside (its other files go with it)
    session: dict[str, Any] | None = None  #: an abandoned session's judgement: last activity, jobs

    @property
    def problem(self) -> bool:
        return self.kind in PROBLEMS


def open_checked(root: Path | str) -> Store:
    """The store at ``root`` for checking: it must exist and look like a results store (a marker or table
    folders); a marker that does not read is a finding, not an error."""
    if is_store_url(root):
        store = Store(root, check_marker=False)
        if not store.location.exists() and not any(store.location.files(t) for t in TABLES):
            raise StoreError(f"--store {store.root}: not a hilbench results store (no {MARKER}, no "
                             f"{', '.join(TABLES)} objects)")
        return store
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"--store {root}: {'not a folder' if root.exists() else 'no such folder'}")
    if not (root / MARKER).exists() and not any((root / t).is_dir() for t in TABLES):
        raise StoreError(f"--store {root}: not a hilbench results store (no {MARKER}, no {', '.join(TABLES)} folders)")
    return Store(root, check_marker=False)


def check_store(store: Store) -> list[Finding]:
    """Every finding in ``store``, problems first in a stable order. Reads every file in full."""
    loc = store.location
    root: PurePath = loc.key_root  # the folder, or the bucket/prefix of an object store (harness/storage.py)
    found: list[Finding] = []
    marker = root / MARKER
    marker_why = _marker_problem(marker, loc)
    if marker_why:
        found.append(Finding("bad-marker", marker, marker_why))
    corrupt: set[str] = set()
    stems: dict[str, dict[str, PurePath]] = {t: {} for t in TABLES}  # table -> file name (run id) -> file that reads
    listed = [(table, type(root)(path)) for table in TABLES for path in loc.files(table)]
    with ThreadPoolExecutor(max_workers=loc.readers) as pool:  # pyarrow decodes without the GIL
        problems = list(pool.map(lambda tp: file_problem(tp[0], tp[1], read=True, verify_checksums=True,
                                                         location=loc), listed))
    for (table, path), problem in zip(listed, problems, strict=True):
        if problem is not None:
            corrupt.add(str(path))
            found.append(Finding("corrupt", path, problem, table=table))
        else:
            stems[table][path.stem] = path
    # The readers below skip the corrupt files quietly: each is a finding already.
    store.skipped.update({p: "corrupt" for p in corrupt})
    for path, why in store.stale_temps():
        found.append(Finding("stale-temp", path, why))
    # Paths come from the folder listing, never from what a row says (a shared store's rows are not trusted).
    session_file: dict[str, PurePath] = {}
    for path in stems["sessions"].values():
        for sid in loc.read_table(path, columns=["session_id"]).column("session_id").to_pylist():
            session_file.setdefault(str(sid), path)
    sessions = store.sessions()
    raw = store.sessions(judge=False)
    stored = dict(zip(raw["session_id"], raw["status"], strict=True))
    live_since: list[pd.Timestamp] = []
    for row in sessions.to_dict("records"):
        sid = str(row["session_id"])
        path = session_file.get(sid, root / "sessions")
        if row["status"] == "abandoned" and stored[row["session_id"]] == "running":
            found.append(Finding("abandoned", path, f"session {sid} says running, but {row['status_detail']}",
                                 table="sessions", session=row))
        elif row["status"] == "running":
            found.append(Finding("running", path, f"session {sid}: {row['status_detail']}", table="sessions"))
            live_since.append(pd.Timestamp(row["started_at"]))
    runs = store.runs()
    committed = set(runs["run_id"].astype(str))
    held: dict[str, set[str]] = {}  # table -> run ids its files hold
    for table in _PER_RUN:
        held[table] = set()
        for stem, path in stems[table].items():
            if stem in committed:
                held[table].add(stem)
                continue
            ids = set(loc.read_table(path, columns=["run_id"]).column("run_id").to_pylist()) - {None}
            held[table] |= ids
            if ids & committed:
                continue  # a file named for no run that holds some stored run's rows
            stamp = loc.stamp(str(path))
            mtime = pd.Timestamp(stamp[1] if stamp else 0, unit="ns", tz="UTC")
            if any(since <= mtime for since in live_since):
                found.append(Finding("pending", path, "no runs row yet; a running session may still commit it",
                                     table=table))
            else:
                found.append(Finding("orphaned", path, f"its run {stem} has no runs row (the writer stopped "
                                     "before committing it)", table=table))
    for row in runs.to_dict("records"):
        timed, aggregate = row.get("timed_count"), row.get("aggregate_only")
        if row.get("status") != "ok" or (not _missing(aggregate) and bool(aggregate)) or _missing(timed) or not timed:
            continue
        run_id = str(row["run_id"])
        runs_file = stems["runs"].get(run_id)
        if run_id in held["samples"] or runs_file is None:  # None: a row in a file named for no run: not moved
            continue
        bad = any(PurePosixPath(c).parent.name == "samples" and PurePosixPath(c).stem == run_id for c in corrupt)
        why = "its samples file is corrupt" if bad else "its samples file is missing"
        found.append(Finding("missing-samples", runs_file, f"run {run_id} is stored as ok with {int(timed)} timed "
                             f"runs, but {why}", table="runs", run_id=run_id))
    order = {k: i for i, k in enumerate((*PROBLEMS, "running", "pending"))}
    return sorted(found, key=lambda f: (order[f.kind], str(f.path)))


def repair_store(store: Store, findings: list[Finding]) -> list[str]:
    """Set aside what ``findings`` name (see the module's docstring); returns one line per action."""
    loc = store.location
    root: PurePath = loc.key_root
    done: list[str] = []
    box = root / QUARANTINE / new_id()
    moved: set[PurePath] = set()

    def move(path: PurePath, table: str | None, kind: str, detail: str) -> None:
        if path in moved or loc.stamp(str(path)) is None:
            return
        dest = box / (table or ".") / path.name
        try:
            loc.move(path, dest)
            loc.append_line(box / "manifest.jsonl", json.dumps({
                "file": str(path.relative_to(root)), "problem": kind, "detail": detail,
                "moved_to": str(dest.relative_to(root)), "moved_at": dt.datetime.now(dt.timezone.utc).isoformat()}))
        except OSError as exc:
            raise StoreError(f"{path}: cannot move it into {dest.parent} ({exc.strerror or exc}); what was moved "
                             f"before is listed in {box / 'manifest.jsonl'}") from exc
        moved.add(path)
        done.append(f"moved {path.relative_to(root)} -> {dest.relative_to(root)} ({kind})")

    for f in findings:
        if f.kind in ("corrupt", "orphaned"):
            move(f.path, f.table, f.kind, f.detail)
        elif f.kind == "missing-samples" and f.run_id is not None:
            move(f.path, "runs", f.kind, f.detail)
            for table in _PER_RUN:  # what is left of the run goes with its row: files listed in its folder only
                for path in map(type(root), loc.files(table)):
                    if path.stem == f.run_id:
                        move(path, table, f.kind, f"set aside with run {f.run_id}: {f.detail}")
        elif f.kind == "stale-temp":
            if any(path == f.path for path, _ in store.stale_temps()):  # still stale: no writer took it since
                try:
                    Path(f.path).unlink()  # a temporary file: only in a local folder
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreError(f"{f.path}: cannot remove it ({exc.strerror or exc})") from exc
                done.append(f"removed {f.path.relative_to(root)} ({f.detail})")
        elif f.kind == "abandoned" and f.session is not None:
            if _close_abandoned(store, f):
                done.append(f"closed session {f.session['session_id']} as abandoned ({f.detail})")
        elif f.kind == "bad-marker":
            if loc.stamp(str(f.path)) is not None:
                move(f.path, None, f.kind, f.detail)
            store.ensure_writable()
            done.append(f"wrote a new {MARKER} (schema v{SCHEMA_VERSION})")
    return done


def _close_abandoned(store: Store, f: Finding) -> bool:
    """Rewrite an abandoned session's row: status ``abandoned``, finished at its last sign of life, its stored
    runs counted. False when its owner came back to life meanwhile (it was only late) or it closed itself."""
    session_id = str(f.session["session_id"]) if f.session else ""
    try:
        table = store.location.read_table(f.path, schema=SCHEMAS["sessions"])
    except (pa.ArrowException, OSError):
        return False
    row = table.to_pylist()[0] if table.num_rows == 1 else None
    if row is None or row.get("status") != "running":
        return False
    if owner_state(row.get("owner_host"), row.get("owner_pid"), row.get("owner_process")) == "alive":
        return False
    runs = store.runs()
    mine = runs[runs["session_id"] == session_id]
    last = max([t for t in (row.get("heartbeat_at"), row.get("started_at")) if t is not None]
               + [t.to_pydatetime() for t in mine["finished_at"].dropna()], default=None)
    row.update(status="abandoned", finished_at=last, jobs_ok=int((mine["status"] == "ok").sum()),
               jobs_failed=int((mine["status"] != "ok").sum()))
    store._write_file("sessions", f.path.stem, pa.Table.from_pylist([row], schema=SCHEMAS["sessions"]))
    return True


def _marker_problem(marker: PurePath, loc: LocalFolder | ObjectStore) -> str | None:
    try:
        text = loc.read_text(MARKER)
    except StoreError as exc:
        return f"unreadable ({' '.join(str(exc).split())[:120]})"
    if text is None:
        return f"missing (every store has one; {marker.parent} holds no {MARKER})"
    try:
        version = int(json.loads(text)["schema_version"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({' '.join(str(exc).split())[:120]})"
    if version < 1:
        return f"unreadable (schema_version {version})"
    return None


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
