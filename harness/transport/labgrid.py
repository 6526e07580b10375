"""Labgrid places as targets (docs/lab.md): a target file's ``[labgrid]`` table names a coordinator, the tags of
a reservation (or a place's name) and the resource that says where the board's SSH server is.

For each target a run holds a :class:`Lease`: it creates a reservation and polls it (labgrid expires a
reservation nobody polls), acquires the place the coordinator allocates, reads the resource (host, port and
user of a ``NetworkService``; the exporter's proxy, where the exporter asks for one, becomes the SSH transport's
ProxyJump), watches the place while the jobs run (an exporter that disappears, or a coordinator that goes away,
ends the target's jobs as stored errors), and releases the place and cancels the reservation when the transport
closes: after the last job, a failure, Ctrl-C or SIGTERM alike. Acquired places never time out in labgrid, so
each lease is also written to a record on this host (:func:`lease_dir`) before the place is acquired and
removed once it is released; ``hilbench lab release`` clears the records of runs that were killed.

The coordinator is driven through labgrid's own gRPC API (its generated ``CoordinatorStub`` and messages, and
its ``Place``/``Reservation``/``ResourceEntry`` classes) rather than ``labgrid.remote.client.ClientSession``:
that class prints to standard output, reads its options from an argparse namespace and logs through the root
logger (which configures logging for the whole process), none of which a library caller wants. The protocol
is the one ``labgrid-client`` speaks: a client stream (startup, subscriptions, syncs) that the coordinator
needs to know who acquires, and unary calls on the same channel.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import socket
import tempfile
import threading
import time
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.config.targets import LabgridSettings, SSHSettings, Target, host_problem, user_problem
from harness.errors import TransportError
from harness.liveness import owner_state, this_process
from harness.transport.ssh import SSHTransport, _refused

__all__ = ["LabgridTransport", "LabClient", "Lease", "LabError", "LabBusy", "lease_dir", "lease_records",
           "release_stale", "coordinator_address", "DEFAULT_PORT", "INSTALL_HINT"]

_log = logging.getLogger("hilbench.lab")

#: labgrid's coordinator port
DEFAULT_PORT = 20408
INSTALL_HINT = "pip install 'hilbench[lab]'"
#: how often a waiting reservation is polled (labgrid expires one that is not polled for 60 s)
POLL_S = 5.0
#: what a reservation token may be (labgrid makes 10 upper-case letters and digits)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: how long the coordinator has to answer (connecting, each call)
CONNECT_TIMEOUT_S = 10.0
#: how often the place is checked while the jobs run (its resource still there, the coordinator still up)
WATCH_S = 0.5


class LabError(TransportError):
    """A labgrid coordinator, place or resource problem: one line, stored as a ``transport`` error."""


class LabBusy(LabError):
    """The place stayed held by someone else past ``wait_s``: stored as a ``busy`` error, like a device lock."""

    category = "busy"


def _labgrid() -> Any:
    """labgrid's client pieces, or a one-line LabError saying how to install them."""
    try:
        import grpc
        from labgrid.remote.common import Place, Reservation, ReservationState, ResourceEntry
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
        from labgrid.remote.generated import labgrid_coordinator_pb2_grpc as pb_grpc
        from labgrid.util.version import labgrid_version
    except ImportError as exc:
        raise LabError(f"labgrid is not installed here ({exc}): {INSTALL_HINT}", step="labgrid") from None

    return types.SimpleNamespace(grpc=grpc, pb=pb, pb_grpc=pb_grpc, Place=Place, Reservation=Reservation,
                                 ReservationState=ReservationState, ResourceEntry=ResourceEntry,
                                 version=labgrid_version())


def coordinator_address(settings: LabgridSettings | None, source: str = "") -> str:
    """``HOST:PORT`` of the coordinator: ``labgrid.coordinator``, else ``$LG_COORDINATOR`` (port 20408 when none
    is given). Raises a one-line LabError when neither is set."""
    address = (settings.coordinator if settings else None) or os.environ.get("LG_COORDINATOR", "").strip()
    if not address:
        where = f"labgrid.coordinator in {source}" if source else "--coordinator"
        raise LabError(f"no labgrid coordinator named: set {where} or $LG_COORDINATOR", step="labgrid")
    if address.startswith("[") and "]:" in address or (address.count(":") == 1 and not address.startswith("[")):
        return address
    return f"{address}:{DEFAULT_PORT}"


def client_name() -> str:
    """Who this host and user are to the coordinator: ``host/user`` (``$LG_HOSTNAME``, ``$LG_USERNAME`` as
    labgrid-client reads them)."""
    return f"{os.environ.get('LG_HOSTNAME') or socket.gethostname()}/{os.environ.get('LG_USERNAME') or getpass.getuser()}"


class LabClient:
    """One connection to a labgrid coordinator: the client stream (kept open by a reader thread that keeps
    :attr:`places` and :attr:`resources` up to date) and the unary calls. Every failure is a one-line LabError."""

    def __init__(self, address: str, *, name: str | None = None, timeout_s: float | None = None,
                 target: str = "") -> None:
        lg = self.lg = _labgrid()
        self.address = address
        self.name = name or client_name()
        self.target = target
        self.timeout_s = timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
        #: place name -> labgrid Place; exporter -> group -> resource name -> ResourceEntry (as the coordinator says)
        self.places: dict[str, Any] = {}
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        #: why the stream ended (the coordinator went away), None while it is up
        self.gone: str | None = None
        self._cond = threading.Condition()
        self._synced: set[int] = set()
        self._ids = itertools.count(1)
        self._out: queue.Queue[Any] = queue.Queue()
        # labgrid-client's keepalive settings: a coordinator that vanishes is noticed within ~20 s. A connection
        # of its own (no subchannel shared with another client in this process): the coordinator knows a client
        # by its connection's peer address, one client stream per peer.
        self.channel = lg.grpc.insecure_channel(address, options=[
            ("grpc.keepalive_time_ms", 7500), ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.http2.ping_timeout_ms", 10000), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.use_local_subchannel_pool", 1)])
        try:
            lg.grpc.channel_ready_future(self.channel).result(timeout=timeout_s)
        except lg.grpc.FutureTimeoutError:
            self.channel.close()
            raise self._err(f"the labgrid coordinator {address} does not answer within {timeout_s:g} s: is "
                            "labgrid-coordinator running there, and is the address right (labgrid.coordinator, "
                            "$LG_COORDINATOR)?") from None
        self.stub = lg.pb_grpc.CoordinatorStub(self.channel)
        startup = lg.pb.ClientInMessage()
        startup.startup.version = lg.version
        startup.startup.name = self.name
        self._out.put(startup)
        for kind in ("all_places", "all_resources"):
            msg = lg.pb.ClientInMessage()
            setattr(msg.subscribe, kind, True)
            self._out.put(msg)
        self._call = self.stub.ClientStream(iter(self._out.get, None))
        self._reader = threading.Thread(target=self._pump, name="hilbench-labgrid", daemon=True)
        self._reader.start()
        self.sync()

    def _err(self, message: str, cls: type[LabError] = LabError) -> LabError:
        return cls(message, target=self.target, step="labgrid")

    def _pump(self) -> None:
        lg = self.lg
        why = "the coordinator closed the connection"
        try:
            for msg in self._call:
                with self._cond:
                    for update in msg.updates:
                        kind = update.WhichOneof("kind")
                        if kind == "resource":
                            r = update.resource
                            group = self.resources.setdefault(r.path.exporter_name, {}).setdefault(r.path.group_name, {})
                            group[r.path.resource_name] = lg.ResourceEntry(lg.ResourceEntry.data_from_pb2(r))
                        elif kind == "del_resource":
                            p = update.del_resource
                            self.resources.get(p.exporter_name, {}).get(p.group_name, {}).pop(p.resource_name, None)
                        elif kind == "place":
                            self.places[update.place.name] = lg.Place.from_pb2(update.place)
                        elif kind == "del_place":
                            self.places.pop(update.del_place, None)
                    if msg.HasField("sync"):
                        self._synced.add(msg.sync.id)
                    self._cond.notify_all()
        except lg.grpc.RpcError as exc:
            why = exc.details() or str(exc.code())
        except Exception as exc:  # noqa: BLE001 - the stream is gone either way; said where it is used
            why = f"{type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self.gone = self.gone or why
                self._cond.notify_all()

    def sync(self, timeout_s: float | None = None) -> None:
        """Wait until the coordinator has sent every update before now (labgrid's sync message)."""
        ident = next(self._ids)
        msg = self.lg.pb.ClientInMessage()
        msg.sync.id = ident
        self._out.put(msg)
        with self._cond:
            done = self._cond.wait_for(lambda: ident in self._synced or self.gone is not None,
                                       timeout_s or self.timeout_s)
            if self.gone is not None:
                raise self._err(f"lost the labgrid coordinator {self.address}: {self.gone}")
            if not done:
                raise self._err(f"the labgrid coordinator {self.address} did not answer within "
                                f"{timeout_s or self.timeout_s:g} s")
            self._synced.discard(ident)

    def rpc(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout_s)
        except self.lg.grpc.RpcError as exc:
            raise self._err(f"{self.address}: {method}: {exc.details() or exc.code()}") from None

    def create_reservation(self, filters: dict[str, str]) -> str:
        pb = self.lg.pb
        req = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=filters)}, prio=0.0)
        token = str(self.rpc("CreateReservation", req).reservation.token)
        if not _TOKEN.fullmatch(token):  # it names this host's lease record: never a path from the network
            raise self._err(f"the labgrid coordinator {self.address} answered with an unusable reservation token "
                            f"{token[:80]!r}")
        return token

    def poll_reservation(self, token: str) -> Any:
        return self.lg.Reservation.from_pb2(self.rpc("PollReservation",
                                                     self.lg.pb.PollReservationRequest(token=token)).reservation)

    def cancel_reservation(self, token: str) -> None:
        try:
            self.rpc("CancelReservation", self.lg.pb.CancelReservationRequest(token=token))
        except LabError as exc:
            if "does not exist" not in str(exc):  # expired, or dropped by a coordinator restart: nothing to cancel
                raise

    def acquire(self, place: str) -> None:
        self.rpc("AcquirePlace", self.lg.pb.AcquirePlaceRequest(placename=place))
        self.sync()

    def release(self, place: str, fromuser: str | None = None) -> None:
        """Release ``place``; with ``fromuser`` only while that user holds it (else nothing happens)."""
        req = self.lg.pb.ReleasePlaceRequest(placename=place)
        if fromuser is not None:
            req.fromuser = fromuser
        self.rpc("ReleasePlace", req)
        self.sync()

    def matching(self, settings: LabgridSettings) -> list[Any]:
        """The places the reservation could get: the named one, or those carrying every tag."""
        with self._cond:
            if settings.place:
                return [p for name, p in self.places.items() if name == settings.place]
            return [p for _, p in sorted(self.places.items())
                    if all(p.tags.get(k) == v for k, v in settings.reserve)]

    def resource_of(self, place: Any, wanted: str, *, acquired: bool = True) -> tuple[tuple[str, str, str, str], Any] | None:
        """``(path, ResourceEntry)`` of the place's resource of class (or name) ``wanted``: among its acquired
        resources, or (``acquired=False``) among the coordinator's resources its matches select."""
        with self._cond:
            if acquired:
                paths = [tuple(p) for p in place.acquired_resources]
            else:
                paths = [(e, g, r.cls, n) for e, groups in self.resources.items() for g, group in groups.items()
                         for n, r in group.items() if place.hasmatch((e, g, r.cls, n))]
            for path in sorted(paths):
                if wanted in (path[2], path[3]):
                    entry = self.resources.get(path[0], {}).get(path[1], {}).get(path[3])
                    return (path[0], path[1], path[2], path[3]), entry
        return None

    def close(self) -> None:
        self._out.put(None)
        with contextlib.suppress(Exception):
            self._call.cancel()
        with contextlib.suppress(Exception):
            self.channel.close()
        self._reader.join(2.0)


# ---------------------------------------------------------------------------------------------- lease records


def lease_dir() -> Path:
    """Where this host records the places hilbench holds (``$HILBENCH_CACHE/lab``, else ~/.cache/hilbench/lab)."""
    return Path(os.environ.get("HILBENCH_CACHE") or Path.home() / ".cache" / "hilbench") / "lab"


def _record_path(coordinator: str, token: str) -> Path:
    tag = hashlib.sha256(coordinator.encode()).hexdigest()[:8]
    return lease_dir() / f"{tag}-{token}.json"


def _write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def lease_records() -> list[tuple[Path, dict[str, Any]]]:
    """Every lease record on this host (unreadable ones skipped)."""
    out: list[tuple[Path, dict[str, Any]]] = []
    folder = lease_dir()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("coordinator"), str):
            out.append((path, record))
    return out


def release_stale(place: str | None = None) -> tuple[list[str], bool]:
    """``hilbench lab release [PLACE]``: release the places and cancel the reservations of this host's lease
    records whose hilbench process is gone (never one another user or a live run holds: the release is
    labgrid's ``fromuser`` release, a no-op unless the place is still held under the record's name).
    Returns (one line per record, whether everything asked for was cleared)."""
    lines: list[str] = []
    ok = True
    for path, rec in lease_records():
        if place is not None and rec.get("place") != place:
            continue
        what = f"place {rec.get('place') or '(not yet allocated)'} at {rec['coordinator']}"
        owner = rec.get("owner") or {}
        if owner_state(owner.get("host"), owner.get("pid"), owner.get("process")) != "gone":
            lines.append(f"{what}: held by a hilbench run that is still running (pid {owner.get('pid')} on "
                         f"{owner.get('host')}): left alone")
            continue
        try:
            client = LabClient(rec["coordinator"], name=rec.get("name"))
        except LabError as exc:
            lines.append(f"{what}: {exc.detail}")
            ok = False
            continue
        try:
            if rec.get("place"):
                with client._cond:
                    current = client.places.get(rec["place"])
                # Held under the record's name AND through its reservation: a place that another run of the same
                # host and user has acquired since (through its own reservation) is not this record's.
                held = (current is not None and current.acquired == rec.get("name")
                        and current.reservation == rec.get("reservation"))
                if held:
                    client.release(rec["place"], fromuser=rec.get("name"))
                state = "released" if held else "was no longer held by hilbench (nothing to release)"
            else:
                state = "was never acquired"
            if rec.get("reservation"):
                client.cancel_reservation(rec["reservation"])
            lines.append(f"{what}: {state}; reservation {rec.get('reservation')} cancelled "
                         f"(left by hilbench pid {owner.get('pid')} for target {rec.get('target')}, since "
                         f"{rec.get('since')})")
            path.unlink(missing_ok=True)
        except LabError as exc:
            lines.append(f"{what}: {exc.detail}")
            ok = False
        finally:
            client.close()
    if place is not None and not lines:
        lines.append(f"no lease of place {place} is recorded on this host ({lease_dir()}): hilbench holds nothing "
                     f"there (a place acquired by hand is released with `labgrid-client -p {place} release`)")
    return lines, ok


# ---------------------------------------------------------------------------------------------- the lease


class Lease:
    """One place held for one target: reserve, wait, acquire, read the resource, watch, release."""

    def __init__(self, target: Target, *, name: str | None = None) -> None:
        assert target.labgrid is not None
        self.target = target
        self.settings = target.labgrid
        self.name = name
        self.client: LabClient | None = None
        self.coordinator: str | None = None
        self.reservation: str | None = None
        self.place: str | None = None
        self.exporter: str | None = None
        self.resource: str | None = None
        self.endpoint: dict[str, Any] | None = None
        self.acquired_at: dt.datetime | None = None
        self.waited_s: float | None = None
        #: why the place was lost while held (exporter gone, coordinator gone), None while it is held
        self.lost: str | None = None
        #: called (from the watcher thread) when the place is lost
        self.on_lost: Callable[[str], None] | None = None
        self._maybe_held = False
        self._record: Path | None = None
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def _err(self, message: str, cls: type[LabError] = LabError) -> LabError:
        return cls(message, target=self.target.name, step="labgrid")

    @property
    def held(self) -> bool:
        return self._maybe_held and self.lost is None

    def record(self) -> dict[str, Any]:
        """What is stored with each run (the runs row's ``lab`` column)."""
        return {
            "coordinator": self.coordinator, "wanted": self.settings.filters(), "place": self.place,
            "exporter": self.exporter, "resource": self.resource, "reservation": self.reservation,
            "endpoint": self.endpoint, "acquired_at": self.acquired_at.isoformat() if self.acquired_at else None,
            "waited_s": self.waited_s, "lost": self.lost,
        }

    def _write(self) -> None:
        assert self.coordinator is not None and self.reservation is not None and self.client is not None
        self._record = _record_path(self.coordinator, self.reservation)
        with contextlib.suppress(OSError):  # the record is a safety net; a read-only home must not stop a run
            _write_record(self._record, {
                "coordinator": self.coordinator, "reservation": self.reservation, "place": self.place,
                "name": self.client.name, "target": self.target.name,
                "owner": this_process(), "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})

    def acquire(self, stop: threading.Event | None = None) -> Target:
        """Reserve, wait (at most ``wait_s``; a set ``stop`` ends the wait), acquire and read the resource.
        Returns the target to reach over SSH. On any failure everything taken so far is given back."""
        s = self.settings
        self.coordinator = coordinator_address(s, self.target.source)
        started = time.monotonic()
        # A lease taken again after a release starts afresh (a new reservation, a new watcher).
        self.lost = self.place = self.reservation = self.exporter = self.resource = None
        self._stop_watch = threading.Event()
        try:
            self.client = LabClient(self.coordinator, name=self.name, target=self.target.name)
            if not self.client.matching(s):
                known = ", ".join(sorted(self.client.places)) or "none"
                raise self._err(f"no labgrid place at {self.coordinator} matches {s.wanted()} (places: {known})")
            self.reservation = self.client.create_reservation(s.filters())
            self._write()
            self.place = self._wait(stop, started)
            self._write()
            self._maybe_held = True
            self.client.acquire(self.place)
            self.acquired_at = dt.datetime.now(dt.timezone.utc)
            self.waited_s = round(time.monotonic() - started, 3)
            resolved = self._resolve()
        except BaseException:
            self.release()
            raise
        self._watcher = threading.Thread(target=self._watch, name=f"hilbench-labgrid-{self.place}", daemon=True)
        self._watcher.start()
        return resolved

    def _holders(self) -> str:
        assert self.client is not None
        held = [f"{p.name} by {p.acquired}" if p.acquired else f"{p.name} reserved ({p.reservation})"
                for p in self.client.matching(self.settings)]
        return "; ".join(held) or "nothing holds them"

    def _wait(self, stop: threading.Event | None, started: float) -> str:
        """Poll the reservation until a place is allocated; LabBusy past ``wait_s``."""
        assert self.client is not None and self.reservation is not None
        lg = self.client.lg
        wait_s = self.settings.wait_s
        while True:
            res = self.client.poll_reservation(self.reservation)
            if res.state in (lg.ReservationState.allocated, lg.ReservationState.acquired):
                return str(res.allocations["main"][0])
            if res.state is not lg.ReservationState.waiting:
                raise self._err(f"the labgrid reservation {self.reservation} for {self.settings.wanted()} is "
                                f"{res.state.name} (was a place deleted, or the coordinator restarted?)")
            left = started + wait_s - time.monotonic()
            if left <= 0:
                raise self._err(f"{self.settings.wanted()} at {self.coordinator} stayed held by someone else past "
                                f"labgrid.wait_s = {wait_s:g} s ({self._holders()}); raise wait_s in "
                                f"{self.target.source}, or ask the holder to release it", LabBusy)
            if stop is not None and stop.wait(min(POLL_S, left)):
                raise self._err(f"interrupted while waiting for {self.settings.wanted()}")
            elif stop is None:
                time.sleep(min(POLL_S, left))

    def _resolve(self) -> Target:
        """The SSH target at the place's resource: its host, port and user, its proxy as a ProxyJump."""
        assert self.client is not None and self.place is not None
        with self.client._cond:
            place = self.client.places.get(self.place)
        found = self.client.resource_of(place, self.settings.resource) if place is not None else None
        if found is None or found[1] is None:
            have = ", ".join(sorted("/".join(p) for p in (place.acquired_resources if place else []))) or "none"
            raise self._err(f"the labgrid place {self.place} has no {self.settings.resource} resource (its "
                            f"resources: {have}): add a match for it (`labgrid-client -p {self.place} add-match "
                            f"EXPORTER/GROUP/{self.settings.resource}`) or set labgrid.resource in "
                            f"{self.target.source}")
        path, entry = found
        self.exporter = path[0]
        self.resource = "/".join(path)
        args, extra = entry.args, entry.extra
        host = str(args.get("address") or "").split("%")[0]
        user = self.target.user or args.get("username") or None
        port = args.get("port", 22)
        if not host or host_problem(host.strip("[]")):
            raise self._err(f"the labgrid resource {self.resource} gives no usable address ({host!r})")
        if user is not None and (not isinstance(user, str) or user_problem(user)):
            raise self._err(f"the labgrid resource {self.resource} gives no usable username ({user!r})")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise self._err(f"the labgrid resource {self.resource} gives no usable port ({port!r})")
        jumps = [self.target.ssh.proxy_jump] if self.target.ssh.proxy_jump else []
        proxy = os.environ.get("LG_PROXY") or (extra.get("proxy") if extra.get("proxy_required") else None)
        if proxy:
            if not isinstance(proxy, str) or host_problem(proxy.rpartition("@")[2].partition(":")[0]):
                raise self._err(f"the labgrid resource {self.resource} names an unusable proxy ({proxy!r})")
            jumps.append(proxy)
        self.endpoint = {"host": host, "port": port, "user": user, "proxy_jump": ",".join(jumps) or None}
        ssh: SSHSettings = replace(self.target.ssh, proxy_jump=",".join(jumps) or None)
        return replace(self.target, host=host.strip("[]"), port=port, user=user, ssh=ssh)

    def _watch(self) -> None:
        """While held: the coordinator still there, the resource still exported, the reservation polled."""
        assert self.client is not None and self.place is not None
        last_poll = time.monotonic()
        while not self._stop_watch.wait(WATCH_S):
            why = None
            if self.client.gone is not None:
                why = (f"the labgrid coordinator {self.coordinator} went away ({self.client.gone}): a restarted "
                       f"coordinator forgets acquired places, so {self.place} may no longer be ours")
            else:
                with self.client._cond:
                    place = self.client.places.get(self.place)
                    ours = place is not None and place.acquired == self.client.name
                    entry = None
                    if self.resource:
                        e, g, _, n = self.resource.split("/")
                        entry = self.client.resources.get(e, {}).get(g, {}).get(n)
                if not ours:
                    why = f"the labgrid place {self.place} was released or taken over by {getattr(place, 'acquired', None)}"
                elif entry is None:
                    why = (f"the labgrid exporter {self.exporter} of place {self.place} disappeared (its "
                           f"{self.settings.resource} is gone)")
                elif time.monotonic() - last_poll > 15:
                    last_poll = time.monotonic()
                    with contextlib.suppress(LabError):
                        self.client.poll_reservation(self.reservation or "")
            if why is not None:
                self.lost = why
                _log.warning("%s: %s", self.target.name, why)
                if self.on_lost is not None:
                    with contextlib.suppress(Exception):
                        self.on_lost(why)
                return

    def release(self) -> None:
        """Give the place back and cancel the reservation; never raises. A coordinator that cannot be reached
        leaves the lease record for ``hilbench lab release``."""
        self._stop_watch.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5.0)
        client = self.client
        self.client = None
        if client is None:
            return
        done = True
        try:
            if client.gone is not None and self.coordinator is not None:
                client.close()
                client = LabClient(self.coordinator, name=client.name, target=self.target.name)
            if self._maybe_held and self.place is not None:
                try:
                    client.release(self.place, fromuser=client.name)
                except LabError as exc:
                    # A coordinator restarted before it saved the place (labgrid writes places.yaml at most
                    # every 15 s, and not when it stops) no longer knows it: nothing of ours is left to release.
                    if "does not exist" not in str(exc):
                        raise
            if self.reservation is not None:
                client.cancel_reservation(self.reservation)
        except LabError as exc:
            done = False
            _log.warning("%s: could not give labgrid place %s back (%s): `hilbench lab release %s` does once the "
                         "coordinator answers", self.target.name, self.place, exc.detail, self.place or "")
        finally:
            self._maybe_held = False
            client.close()
        if done and self._record is not None:
            self._record.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- the transport


class LabgridTransport(SSHTransport):
    """SSH to the board of a labgrid place, held by a :class:`Lease` from the first connect until close."""

    name = "labgrid"

    @classmethod
    def device_key(cls, target: Target) -> tuple[Any, ...]:
        """``("labgrid", coordinator, place or tags)``: two targets asking for the same place (or the same tags)
        measure one after another."""
        s = target.labgrid
        if s is None:
            return ("labgrid", target.name)
        return ("labgrid", s.coordinator or os.environ.get("LG_COORDINATOR", ""), s.place or s.reserve)

    @classmethod
    def preflight(cls, target: Target) -> None:
        super().preflight(replace(target, host=target.host or "labgrid-place"))

    def __init__(self, target: Target) -> None:
        super().__init__(replace(target, host=target.host or "labgrid-place"))
        self.target = target
        self.lease = Lease(target)
        self.lease.on_lost = self._lost
        self._logging_in = False

    def lab_record(self) -> dict[str, Any] | None:
        return self.lease.record()

    def _lost(self, why: str) -> None:
        """The place is gone: drop the SSH connection, so that the job in flight ends (as a stored error)."""
        t = self._client.get_transport() if self._client else None
        if t is not None:
            t.close()

    def _take(self, stop: threading.Event | None) -> None:
        if self.lease.lost is not None:
            raise LabError(self.lease.lost, target=self.target.name, step="labgrid")
        if not self.lease.held:
            resolved = self.lease.acquire(stop)
            self.target = resolved

    def connect(self) -> None:
        self._take(None)
        super().connect()

    def reconnect(self, *, stop: threading.Event | None = None, attempts: int | None = None,
                  first_delay_s: float | None = None) -> None:
        self._take(stop)
        self._connect_with_backoff(stop=stop, attempts=attempts, first_delay_s=first_delay_s,
                                   final=lambda e: _refused(e) or isinstance(e, LabError))

    @property
    def is_alive(self) -> bool:
        return self.lease.lost is None and super().is_alive

    def login(self) -> None:
        if self.lease.lost is not None:
            raise LabError(self.lease.lost, target=self.target.name, step="labgrid")
        self._logging_in = True
        try:
            super().login()
        finally:
            self._logging_in = False

    def close(self) -> None:
        super().close()
        if not self._logging_in:
            self.lease.release()


def place_summary(place: Any) -> str:
    """``free``, ``acquired by host/user`` or ``reserved (TOKEN)``."""
    if place.acquired:
        return f"acquired by {place.acquired}"
    if place.reservation:
        return f"reserved ({place.reservation})"
    return "free"

