"""One measurement per device: the lock an agent holds on the device for the length of its job.

The lock is an OS advisory lock (``flock``) on one file that every user of the device can open::

    $HILBENCH_LOCK_DIR/hilbench-device.lock     when the target's env sets it
    /data/local/tmp/hilbench-device.lock        Android (adb's shell user; no /tmp there)
    /tmp/hilbench-device.lock                   everywhere else
    $TMPDIR/hilbench-device.lock                where neither can be used (Termux)

A folder of one user's workdir would not do: two hosts may log in as different users, with different
workdirs, to one device. ``/tmp`` is the one folder every user of a POSIX device shares (macOS's per-user
``$TMPDIR`` is not; ``/tmp`` is). The first agent creates the file mode 0666, so any user can lock it later.

The kernel releases a ``flock`` when the process holding it exits, however it exits (SIGKILL, out of
memory): the lock is taken over as soon as its owner is provably gone, with no stale-lock guessing. The
file is opened close-on-exec, so a child of the agent never keeps it.

While it holds the lock the agent keeps its owner record in the file, one JSON line (host, hilbench's pid,
session, run, target, the agent's pid and user, since when); a waiting agent reads it to say whom it waits
for, and the holder empties it before it lets go.

A waiting agent sleeps in the kernel (a blocking ``flock``): it costs the device nothing while the other
measures and wakes the moment the lock is free. A timer wakes it every ``tick_s`` to see whether the
holder changed and whether its own wait is over. Stdlib only, Python 3.7.
"""

import errno
import json
import os
import signal
import stat
import threading
import time

try:
    import fcntl
except ImportError:  # Windows: not a supported device
    fcntl = None

LOCK_NAME = "hilbench-device.lock"
#: Folders tried in order when HILBENCH_LOCK_DIR is not set (only those that exist).
SHARED_DIRS = ("/data/local/tmp", "/tmp")
#: The most of an owner record read or written (bytes).
RECORD_MAX = 4096
#: Owner fields taken from the host's job (each cut to OWNER_TEXT characters).
OWNER_FIELDS = ("host", "host_pid", "session", "target")
OWNER_TEXT = 200


class LockBusy(Exception):
    """The lock stayed held by another owner for as long as the job allowed."""

    def __init__(self, path, holder, waited_ns):
        Exception.__init__(self, "the device is busy")
        self.path = path
        self.holder = holder
        self.waited_ns = waited_ns


class LockUnavailable(Exception):
    """No lock file could be opened (the message says where and why)."""


class _Tick(Exception):
    pass


def lock_dirs(environ=None):
    """The folders to try, in order: HILBENCH_LOCK_DIR alone when set; else those of SHARED_DIRS that exist, then
    $TMPDIR (Termux on Android has neither /tmp nor access to /data/local/tmp)."""
    environ = os.environ if environ is None else environ
    chosen = environ.get("HILBENCH_LOCK_DIR")
    if chosen:
        return [chosen]
    found = [d for d in SHARED_DIRS if os.path.isdir(d)]
    tmpdir = environ.get("TMPDIR")
    if tmpdir and os.path.isdir(tmpdir) and tmpdir.rstrip("/") not in found:
        found.append(tmpdir.rstrip("/") or "/")
    return found


def _why(exc):
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return "it is a symbolic link (remove it)"
    return exc.strerror or str(exc)


def open_lock_file(path):
    """(fd, writable): the lock file opened without following a link, created mode 0666 when missing.

    An existing file is opened without O_CREAT, which Linux's ``fs.protected_regular`` allows on another
    user's file in a sticky folder; where it cannot be written (another user made it private) it is
    opened read-only, which ``flock`` accepts (no owner record is written then)."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    for _ in range(10):
        writable = True
        try:
            fd = os.open(path, os.O_RDWR | flags)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o666)
                except OSError as exc2:
                    if exc2.errno == errno.EEXIST:
                        continue  # another agent made it first: open that one
                    raise
                try:
                    os.fchmod(fd, 0o666)  # past the umask: every user of the device takes this lock
                except OSError:
                    pass
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                fd = os.open(path, os.O_RDONLY | flags)
                writable = False
            else:
                raise
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            os.close(fd)
            raise
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "it is not a regular file (remove it)")
        return fd, writable
    raise OSError(errno.EAGAIN, "it kept appearing and disappearing")


def read_record(fd):
    """The owner record in the lock file: a dict, None when empty, ``{"unreadable": ...}`` otherwise."""
    try:
        data = os.pread(fd, RECORD_MAX, 0)
    except OSError as exc:
        return {"unreadable": exc.strerror or str(exc)}
    line = data.split(b"\n", 1)[0].strip()
    if not line:
        return None
    try:
        record = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return {"unreadable": "not an owner record"}
    if not isinstance(record, dict):
        return {"unreadable": "not an owner record"}
    return record


def held_s(holder):
    """Seconds the holder has held the lock, by this device's clock (None when its record does not say)."""
    since = (holder or {}).get("since")
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return max(0, int(time.time() - since))
    return None


def describe(holder):
    """The holder on one line: ``session S (host H, hilbench pid P, run R; agent pid A as U) for N s``."""
    if not holder:
        return "another process (its owner record is not written yet)"
    if holder.get("unreadable"):
        return "another process (its owner record is unreadable: %s)" % str(holder["unreadable"])[:80]
    host_side = []
    if holder.get("host"):
        host_side.append("host %s" % holder["host"])
    if holder.get("host_pid") is not None:
        host_side.append("hilbench pid %s" % holder["host_pid"])
    if holder.get("run_id"):
        host_side.append("run %s" % holder["run_id"])
    agent = "agent pid %s" % holder.get("pid", "?")
    if holder.get("user"):
        agent += " as %s" % holder["user"]
    text = "session %s" % holder["session"] if holder.get("session") else "a hilbench agent"
    text += " (%s)" % "; ".join([", ".join(host_side), agent] if host_side else [agent])
    held = held_s(holder)
    if held is not None:
        text += " for %d s" % held
    return text


def _user():
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else None


class DeviceLock(object):
    """The device's lock for one job. ``acquire`` it (waiting as the job allows), ``release`` it at the end;
    the kernel releases it anyway when the process dies."""

    def __init__(self, owner=None, directories=None, tick_s=2.0):
        self.owner = {}
        for key in OWNER_FIELDS + ("run_id",):
            value = (owner or {}).get(key)
            if isinstance(value, str):
                value = value[:OWNER_TEXT]
            elif not isinstance(value, int) or isinstance(value, bool):
                value = None
            self.owner[key] = value
        self.directories = directories
        self.tick_s = tick_s
        self.fd = None
        self.path = None
        self.writable = False
        self.held = False

    def open(self):
        if fcntl is None:
            raise LockUnavailable("this OS has no flock (hilbench devices are Linux, macOS or Android)")
        tried = []
        for folder in self.directories if self.directories is not None else lock_dirs():
            path = os.path.join(folder, LOCK_NAME)
            try:
                self.fd, self.writable = open_lock_file(path)
            except OSError as exc:
                tried.append("%s: %s" % (path, _why(exc)))
                continue
            self.path = path
            return
        raise LockUnavailable("cannot open the device lock (%s): set HILBENCH_LOCK_DIR in the target's env to a "
                              "folder every user of the device can write"
                              % ("; ".join(tried) or "no /tmp or /data/local/tmp on this device"))

    def holder(self):
        return read_record(self.fd)

    def _try(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except (IOError, OSError) as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise

    def _wait(self, seconds):
        """Block in flock for up to ``seconds``; True once the lock is ours. In the main thread a one-shot
        timer (SIGALRM) ends the wait; elsewhere (no signals there) the lock is polled."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if self._try():
                    return True
                time.sleep(0.05)
            return self._try()
        armed = [True]

        def on_alarm(signum, frame):
            if armed[0]:
                raise _Tick()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
                fcntl.flock(self.fd, fcntl.LOCK_EX)
                return True
            finally:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Tick:
            # The timer fired, perhaps just after flock returned: the caller tries again, and a flock on the
            # same open file that holds it already succeeds at once.
            return False
        finally:
            signal.signal(signal.SIGALRM, previous)

    def acquire(self, wait_s, on_wait=None, clock=time.monotonic):
        """Take the lock, waiting up to ``wait_s`` seconds (0: try once). ``on_wait(holder, waited_ns)`` is
        called when the lock is first found held and whenever its holder changes (at most once a tick).
        Returns ``{"path", "waited_ns", "waited_for"}``; raises LockBusy when the wait ends without it."""
        if self.fd is None:
            self.open()
        begin = clock()
        holder = None
        waited = False
        if not self._try():
            waited = True
            holder = self.holder()
            if on_wait is not None:
                on_wait(holder, 0)
            end = begin + max(0.0, float(wait_s))
            while True:
                left = end - clock()
                if left <= 0:
                    if self._try():
                        break
                    raise LockBusy(self.path, holder, int((clock() - begin) * 1e9))
                if self._wait(min(self.tick_s, left)):
                    break
                now_holder = self.holder()
                if now_holder != holder:
                    holder = now_holder
                    if on_wait is not None:
                        on_wait(holder, int((clock() - begin) * 1e9))
        self.held = True
        self._write_record()
        return {"path": self.path, "waited_ns": int((clock() - begin) * 1e9) if waited else 0,
                "waited_for": holder if waited else None}

    def _write_record(self):
        if not self.writable:
            return
        record = dict((k, v) for k, v in self.owner.items() if v is not None)
        record.update(v=1, pid=os.getpid(), user=_user(), since=round(time.time(), 3))
        data = json.dumps(record, sort_keys=True).encode("utf-8")[:RECORD_MAX - 1] + b"\n"
        try:
            # The new line first, then the old tail cut: a reader sees the old record or the new one.
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError:
            pass  # the record is for people; the lock holds without it

    def release(self):
        """Empty the owner record and let go (closing the file releases the flock). Safe to call twice."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self.held and self.writable:
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
        finally:
            self.held = False
            os.close(fd)
