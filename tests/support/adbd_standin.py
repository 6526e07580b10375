"""A STAND-IN Android phone: a server that speaks the real adbd wire protocol on loopback TCP.

It is not a phone and is never counted as one. It exists so that the real ``adb``
client and server (Debian's ``adb`` package, or platform-tools) can talk to
something here: ``adb connect 127.0.0.1:PORT``, then ``adb push``/``pull``/``shell``
go through the genuine adb host code and the genuine adbd transport protocol:

* 24-byte message headers (command, arg0, arg1, length, checksum, magic) for
  CNXN, AUTH, OPEN, OKAY, WRTE, CLSE, with per-stream flow control (one WRTE in
  flight until the peer's OKAY);
* the ``shell:`` service, v1 (raw bytes) and ``shell,v2`` (packets for stdin,
  stdout, stderr, exit code and close-stdin) - ``shell_v2`` is advertised in the
  banner, so ``adb shell`` returns the remote exit status;
* the ``sync:`` service: STAT, LIST, SEND/DATA/DONE, RECV, QUIT.

What is faked: the "phone" is a sandbox folder. Device paths under ``/data``,
``/sys`` and ``/sdcard`` map into it; commands run with the host's ``/bin/sh``
after that mapping, with ``getprop``, ``dumpsys`` and ``taskset`` answered by
small scripts from recorded outputs (``props``, ``dumpsys/<service>.txt`` in the
sandbox). The benchmark binaries are whatever the test pushes - in the tests,
shell scripts that print recorded real runner outputs. There is no ABI, no
SELinux, no real CPU topology: the sysfs tree is a fake one written by the test.

Like adbd, it starts each shell in a session of its own (so ``$$`` is the process
group) and, when the host closes a shell stream early, sends SIGHUP to the shell
alone: its children run on, as they do on a phone.

It can simulate the failures a phone shows: ``authorized=False`` answers every
signature with a new AUTH token and ignores the public key (the "Allow USB
debugging?" prompt never accepted), ``drop()`` closes every connection and
refuses new ones (a cable pulled mid-run), ``come_back()`` accepts again.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
from pathlib import Path

__all__ = ["ADBDStandIn", "write_fake_tree"]

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
VERSION = 0x01000001  # skips checksums, as adbd since Android 9
MAX_PAYLOAD = 256 * 1024
SYNC_DATA_MAX = 64 * 1024
HEADER = struct.Struct("<6I")

# shell protocol v2 packet ids
ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW = 0, 1, 2, 3, 4, 5

_MAPPED = re.compile(r"(?<![\w./-])/(data|sys|sdcard)(?=/|\b)")

GETPROP = r"""#!/bin/sh
f="$HILBENCH_STANDIN_ROOT/props"
if [ $# -eq 0 ]; then
  sed 's/^\([^=]*\)=\(.*\)$/[\1]: [\2]/' "$f"
else
  v=$(grep "^$1=" "$f" | head -n 1 | cut -d= -f2-)
  echo "$v"
fi
"""

DUMPSYS = r"""#!/bin/sh
f="$HILBENCH_STANDIN_ROOT/dumpsys/$1.txt"
if [ -f "$f" ]; then cat "$f"; else echo "Can't find service: $1"; fi
"""

# The stand-in has no CPU topology to pin to: it records the request and runs the command.
TASKSET = r"""#!/bin/sh
echo "$1" >> "$HILBENCH_STANDIN_ROOT/taskset.log"
shift
exec "$@"
"""

DEFAULT_PROPS = {
    "ro.product.model": "hilbench stand-in phone",
    "ro.product.manufacturer": "hilbench",
    "ro.soc.model": "STANDIN-SOC",
    "ro.soc.manufacturer": "hilbench",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.hardware": "standin",
    "ro.hilbench.stand_in": "1",  # so every run on it is stored as emulated, never as a phone
}


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def write_fake_tree(root: Path, *, cpus: dict[int, int] | None = None, battery_uevent: str | None = None,
                    zones: dict[str, int] | None = None) -> None:
    """A small fake sysfs tree: cpufreq per CPU (max kHz), a battery uevent, thermal zones (milli-C)."""
    cpus = cpus if cpus is not None else {0: 1800000, 1: 1800000, 2: 2400000, 3: 2400000}
    for cpu, max_khz in cpus.items():
        d = root / "sys/devices/system/cpu" / f"cpu{cpu}" / "cpufreq"
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
        (d / "scaling_cur_freq").write_text(f"{max_khz * 3 // 4}\n")
        (d / "scaling_max_freq").write_text(f"{max_khz}\n")
        (d / "scaling_min_freq").write_text("300000\n")
        (d / "scaling_governor").write_text("schedutil\n")
    (root / "sys/devices/system/cpu/possible").write_text(f"0-{max(cpus)}\n")
    ps = root / "sys/class/power_supply/battery"
    ps.mkdir(parents=True, exist_ok=True)
    (ps / "uevent").write_text(battery_uevent if battery_uevent is not None else
                               "POWER_SUPPLY_NAME=battery\nPOWER_SUPPLY_STATUS=Discharging\n"
                               "POWER_SUPPLY_VOLTAGE_NOW=3900000\nPOWER_SUPPLY_CURRENT_NOW=-450000\n"
                               "POWER_SUPPLY_CAPACITY=80\nPOWER_SUPPLY_TEMP=301\n")
    for i, (kind, milli_c) in enumerate((zones or {"cpu-0-0": 45500, "battery": 30100}).items()):
        z = root / "sys/class/thermal" / f"thermal_zone{i}"
        z.mkdir(parents=True, exist_ok=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{milli_c}\n")


class _Stream:
    """One adb stream (a service opened by the host), with flow control both ways."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.ready = threading.Event()
        self.ready.set()
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        self.on_data: object = None  # set by services that consume packets themselves

    # host -> device
    def feed(self, data: bytes) -> None:
        with self.cond:
            self.buf.extend(data)
            self.cond.notify_all()

    def read_exact(self, n: int) -> bytes | None:
        with self.cond:
            while len(self.buf) < n and not self.closed:
                self.cond.wait(0.5)
            if len(self.buf) < n:
                return None
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out

    def close_from_peer(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.ready.set()

    # device -> host
    def write(self, data: bytes) -> bool:
        step = min(self.conn.max_payload, MAX_PAYLOAD)
        for i in range(0, len(data), step):
            while not self.ready.wait(0.5):
                if self.closed or self.conn.dead:
                    return False
            if self.closed or self.conn.dead:
                return False
            self.ready.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i:i + step])
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(A_CLSE, self.local_id, self.remote_id, b"")
        self.conn.forget(self.local_id)


class _Connection:
    def __init__(self, server: ADBDStandIn, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.max_payload = MAX_PAYLOAD
        self.dead = False
        self.online = False
        self.procs: set[subprocess.Popen[bytes]] = set()

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        header = HEADER.pack(cmd, arg0, arg1, len(data), _checksum(data), cmd ^ 0xFFFFFFFF)
        with self.lock:
            if self.dead:
                return
            try:
                self.sock.sendall(header + data)
            except OSError:
                self.dead = True

    def recv_exact(self, n: int) -> bytes | None:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except OSError:
                return None
            if not chunk:
                return None
            out.extend(chunk)
        return bytes(out)

    def forget(self, local_id: int) -> None:
        with self.lock:
            self.streams.pop(local_id, None)

    def kill(self) -> None:
        self.dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for s in list(self.streams.values()):
            s.close_from_peer()
        for p in list(self.procs):
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass

    def serve(self) -> None:
        try:
            while not self.dead:
                head = self.recv_exact(HEADER.size)
                if head is None:
                    break
                cmd, arg0, arg1, length, _check, magic = HEADER.unpack(head)
                if magic != cmd ^ 0xFFFFFFFF:
                    break  # what adbd does with a corrupt header: drop the transport
                data = self.recv_exact(length) if length else b""
                if data is None:
                    break
                self.dispatch(cmd, arg0, arg1, data)
        finally:
            self.kill()
            self.server.forget(self)

    def banner(self) -> bytes:
        props = self.server.props
        return ("device::ro.product.name={};ro.product.model={};ro.product.device={};features=shell_v2".format(
            props.get("ro.hardware", "standin"), props.get("ro.product.model", "standin"),
            props.get("ro.hardware", "standin"))).encode()

    def dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.max_payload = min(arg1 or MAX_PAYLOAD, MAX_PAYLOAD)
            if self.server.authorized:
                self.online = True
                self.send(A_CNXN, VERSION, MAX_PAYLOAD, self.banner())
            else:
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
        elif cmd == A_AUTH:
            if arg0 == AUTH_SIGNATURE:
                # No key is ever accepted: ask again, so the host falls back to offering its public key.
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            # AUTH_RSAPUBLICKEY: a real phone now shows its prompt; nobody taps it here.
        elif not self.online:
            return
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            with self.lock:
                local_id = self.next_id
                self.next_id += 1
                stream = _Stream(self, local_id, arg0)
                self.streams[local_id] = stream
            self.server.log.append(service)
            handler = self.server.service_handler(service)
            if handler is None:
                self.forget(local_id)
                self.send(A_CLSE, 0, arg0, b"")
                return
            self.send(A_OKAY, local_id, arg0, b"")
            threading.Thread(target=self._run_service, args=(handler, stream, service), daemon=True).start()
        elif cmd == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.send(A_CLSE, 0, arg0, b"")
                return
            stream.feed(data)
            self.send(A_OKAY, arg1, arg0, b"")
        elif cmd == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.ready.set()
        elif cmd == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.close_from_peer()

    def _run_service(self, handler: object, stream: _Stream, service: str) -> None:
        try:
            handler(stream, service)  # type: ignore[operator]
        finally:
            stream.close()


class ADBDStandIn:
    """The stand-in phone. ``start()`` listens on 127.0.0.1 (a free port unless given); ``serial`` is
    what adb calls it after ``adb connect``."""

    def __init__(self, root: Path, *, props: dict[str, str] | None = None, authorized: bool = True,
                 port: int = 0) -> None:
        self.root = Path(root)
        self.props = dict(DEFAULT_PROPS, **(props or {}))
        self.authorized = authorized
        self.refusing = False
        self.log: list[str] = []  # every service the host opened, in order
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._listener = self._listen(port)
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._setup_root()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
        return sock

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _setup_root(self) -> None:
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "sdcard").mkdir(parents=True, exist_ok=True)
        (self.root / "dumpsys").mkdir(parents=True, exist_ok=True)
        bindir = self.root / "system/bin"
        bindir.mkdir(parents=True, exist_ok=True)
        for name, text in (("getprop", GETPROP), ("dumpsys", DUMPSYS), ("taskset", TASKSET)):
            (bindir / name).write_text(text)
            (bindir / name).chmod(0o755)
        self.write_props()

    def write_props(self) -> None:
        (self.root / "props").write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))

    def set_dumpsys(self, service: str, text: str) -> None:
        (self.root / "dumpsys" / f"{service}.txt").write_text(text)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> ADBDStandIn:
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True, name="adbd-standin").start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if self.refusing:
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def drop(self) -> None:
        """Pull the cable: close every connection (and kill its shells) and stop listening, so a
        reconnect is refused at once (as a phone gone from the network is, by its router)."""
        self.refusing = True
        self._close_listener()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.kill()

    def come_back(self) -> None:
        """Plug it back in: listen on the same port again."""
        if self.refusing and not self._stopped:
            self._listener = self._listen(self.port)
            self.refusing = False
            self.start()

    def _close_listener(self) -> None:
        # shutdown() first: close() alone leaves a thread blocked in accept() holding the port open.
        for op in (lambda: self._listener.shutdown(socket.SHUT_RDWR), self._listener.close):
            try:
                op()
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped = True
        self.drop()

    def __enter__(self) -> ADBDStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ paths
    def host_path(self, device_path: str) -> Path | None:
        """Where a device path lives in the sandbox; None outside the mapped folders."""
        if not _MAPPED.match(device_path):
            return None
        return Path(str(self.root) + device_path)

    def map_command(self, command: str) -> str:
        return _MAPPED.sub(lambda m: str(self.root) + m.group(0), command)

    def unmap_output(self, data: bytes) -> bytes:
        return data.replace(str(self.root).encode(), b"")

    # ------------------------------------------------------------------ services
    def service_handler(self, service: str) -> object:
        if service.startswith("shell"):
            return self._shell
        if service == "sync:":
            return self._sync
        return None

    def _shell(self, stream: _Stream, service: str) -> None:
        head, _, command = service.partition(":")
        opts = head.split(",")[1:]
        v2 = "v2" in opts
        env = {
            "PATH": f"{self.root}/system/bin:/usr/bin:/bin",
            "HILBENCH_STANDIN_ROOT": str(self.root),
            "HOME": str(self.root / "data/local/tmp"),
            "LC_ALL": "C",
            # The agent looks for the phone's /data/local/tmp itself (not through a mapped command): its device
            # lock is the sandbox's, the one the vendor runner's shell takes.
            "HILBENCH_LOCK_DIR": str(self.root / "data/local/tmp"),
        }
        mapped = self.map_command(command) if command.strip() else "exit 0"
        proc = subprocess.Popen(["/bin/sh", "-c", mapped], cwd=str(self.root), env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE if v2 else subprocess.STDOUT,
                                start_new_session=True)
        stream.conn.procs.add(proc)
        out_lock = threading.Lock()

        def send(pid: int, data: bytes) -> None:
            data = self.unmap_output(data)
            with out_lock:
                stream.write(struct.pack("<BI", pid, len(data)) + data if v2 else data)

        def pump(src: object, pid: int) -> None:
            while True:
                chunk = os.read(src.fileno(), 65536)  # type: ignore[attr-defined]
                if not chunk:
                    return
                send(pid, chunk)

        def feed_stdin() -> None:
            assert proc.stdin is not None
            try:
                if not v2:
                    while True:
                        got = stream.read_exact(1)
                        if got is None:
                            break
                        proc.stdin.write(got)
                        proc.stdin.flush()
                while v2:
                    head = stream.read_exact(5)
                    if head is None:
                        break
                    pid, n = struct.unpack("<BI", head)
                    body = stream.read_exact(n) if n else b""
                    if body is None:
                        break
                    if pid == ID_STDIN and not proc.stdin.closed:
                        proc.stdin.write(body)
                        proc.stdin.flush()
                    elif pid == ID_CLOSE_STDIN:
                        proc.stdin.close()  # and go on reading: the host may still close the stream
            except (OSError, ValueError):
                pass
            # The host closed the stream (its adb client was killed): like adbd, SIGHUP to the shell alone,
            # never to its children, which run on.
            if stream.closed and proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGHUP)
                except OSError:
                    pass

        threads = [threading.Thread(target=pump, args=(proc.stdout, ID_STDOUT), daemon=True)]
        if v2:
            threads.append(threading.Thread(target=pump, args=(proc.stderr, ID_STDERR), daemon=True))
        for t in threads:
            t.start()
        threading.Thread(target=feed_stdin, daemon=True).start()
        for t in threads:
            t.join()
        code = proc.wait()
        stream.conn.procs.discard(proc)
        if v2 and not stream.conn.dead:
            with out_lock:
                stream.write(struct.pack("<BIB", ID_EXIT, 1, code & 0xFF if code >= 0 else 128 - code))

    def _sync(self, stream: _Stream, service: str) -> None:
        while True:
            head = stream.read_exact(8)
            if head is None:
                return
            ident, length = head[:4], struct.unpack("<I", head[4:])[0]
            if ident == b"QUIT":
                return
            arg = stream.read_exact(length) if length else b""
            if arg is None:
                return
            text = arg.decode("utf-8", "replace")
            if ident == b"STAT":
                p = self.host_path(text)
                try:
                    st = p.stat() if p is not None else None
                except OSError:
                    st = None
                if st is None:
                    stream.write(b"STAT" + struct.pack("<III", 0, 0, 0))
                else:
                    stream.write(b"STAT" + struct.pack("<III", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF,
                                                       int(st.st_mtime)))
            elif ident == b"LIST":
                p = self.host_path(text)
                if p is not None and p.is_dir():
                    for entry in sorted(os.listdir(p)):
                        try:
                            st = (p / entry).lstat()
                        except OSError:
                            continue
                        name = entry.encode()
                        stream.write(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF,
                                                           int(st.st_mtime), len(name)) + name)
                stream.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            elif ident == b"SEND":
                if not self._recv_file(stream, text):
                    return
            elif ident == b"RECV":
                p = self.host_path(text)
                try:
                    data = p.read_bytes() if p is not None else None
                except OSError as exc:
                    data = None
                    why = exc.strerror or str(exc)
                else:
                    why = "Permission denied"
                if data is None:
                    msg = f"remote object '{text}' does not exist or {why}".encode()
                    stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                for i in range(0, len(data), SYNC_DATA_MAX):
                    chunk = data[i:i + SYNC_DATA_MAX]
                    stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                stream.write(b"DONE" + struct.pack("<I", 0))
            else:
                msg = f"unknown sync command {ident!r}".encode()
                stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                return

    def _recv_file(self, stream: _Stream, spec: str) -> bool:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"
        target = self.host_path(path)
        chunks: list[bytes] = []
        while True:
            head = stream.read_exact(8)
            if head is None:
                return False
            ident, n = head[:4], struct.unpack("<I", head[4:])[0]
            if ident == b"DATA":
                body = stream.read_exact(n) if n else b""
                if body is None:
                    return False
                chunks.append(body)
            elif ident == b"DONE":
                break
            else:
                return False
        if target is None:
            msg = f"couldn't create file: {path}: Read-only file system".encode()
            stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
            return True
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(chunks))
            target.chmod(int(mode_text or "33188") & 0o7777)
        except (OSError, ValueError) as exc:
            msg = f"couldn't create file: {exc}".encode()
            stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
            return True
        self.bytes_received = getattr(self, "bytes_received", 0) + sum(len(c) for c in chunks)
        stream.write(b"OKAY" + struct.pack("<I", 0))
        return True
