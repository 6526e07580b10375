"""Where sysfs/procfs readers read from: the real tree under a root, or a tree in memory.

Every sysfs-reading function in this package takes ``root``: a folder (``"/"``
on a device, a temporary folder in tests) or a :class:`MemFS` built from a
recorded listing (node_exporter's ``ttar`` fixtures, ``grep -r . /sys/...``
output, ``find ... -exec cat`` dumps). Both answer the same four questions, so
one reader serves a live device, a fake tree and a recorded sample.

Reads are plain ``open``/``read``: this is on the sampler's hot path.
"""

import errno
import os
import posixpath
import re

__all__ = ["DiskFS", "MemFS", "as_fs", "read_text", "read_int",
           "memfs_from_ttar", "memfs_from_grep", "memfs_from_dump"]


class DiskFS(object):
    """The real filesystem seen from ``root`` (``/`` on the device)."""

    def __init__(self, root="/"):
        self.root = os.path.abspath(root)
        self._prefix = "" if self.root == "/" else self.root.rstrip("/")

    def path(self, path):
        """The on-disk path of an absolute sysfs path such as ``/sys/class/thermal``."""
        return self._prefix + "/" + path.lstrip("/")

    def read(self, path):
        """The file's text; raises ``OSError`` (ENOENT, EIO, EACCES...) as the kernel does.

        ``os.open``/``os.read`` rather than ``open()``: a third of the cost per
        file, which is what the sampler does 10 times a second per sensor.
        """
        fd = os.open(self._prefix + path if path.startswith("/") else self.path(path), os.O_RDONLY)
        try:
            data = os.read(fd, 65536)
            if len(data) == 65536:
                chunks = [data]
                while True:
                    more = os.read(fd, 65536)
                    if not more:
                        break
                    chunks.append(more)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def listdir(self, path):
        try:
            return sorted(os.listdir(self.path(path)))
        except OSError:
            return []

    def isdir(self, path):
        return os.path.isdir(self.path(path))

    def exists(self, path):
        return os.path.exists(self.path(path))

    def realpath(self, path):
        """The resolved sysfs path (symlinks followed), still relative to the root."""
        real = os.path.realpath(self.path(path))
        if self.root == "/":
            return real
        rel = os.path.relpath(real, self.root)
        return "/" + rel if not rel.startswith("..") else real

    def __repr__(self):
        return "DiskFS(%r)" % self.root


class MemFS(object):
    """A sysfs tree held in memory: files, directories, symlinks and files that fail to read.

    ``errors`` maps a path to the message its read fails with (EIO), or to an
    ``(errno, message)`` pair.
    """

    def __init__(self, files=None, dirs=(), symlinks=None, errors=None):
        self.files = dict(files or {})
        self.symlinks = dict(symlinks or {})
        self.errors = dict(errors or {})
        self.dirs = set()
        for d in dirs:
            self._add_dir(_norm(d))
        for p in list(self.files) + list(self.symlinks) + list(self.errors):
            self._add_dir(posixpath.dirname(_norm(p)))

    def _add_dir(self, d):
        while d and d not in self.dirs:
            self.dirs.add(d)
            if d == "/":
                break
            d = posixpath.dirname(d)

    def _resolve(self, path):
        parts = [p for p in _norm(path).split("/") if p]
        cur = "/"
        for _ in range(40):
            changed = False
            out = "/"
            for i, part in enumerate(parts):
                cand = posixpath.join(out, part)
                target = self.symlinks.get(cand)
                if target is not None:
                    new = posixpath.normpath(posixpath.join(posixpath.dirname(cand), target))
                    parts = [p for p in new.split("/") if p] + parts[i + 1:]
                    changed = True
                    break
                out = cand
            cur = out
            if not changed:
                return cur
        raise OSError(errno.ELOOP, "too many symlinks", path)

    def realpath(self, path):
        return self._resolve(path)

    def read(self, path):
        p = self._resolve(path)
        if p in self.errors:
            err = self.errors[p]
            if isinstance(err, tuple):
                raise OSError(err[0], err[1], path)
            raise OSError(errno.EIO, err, path)
        if p in self.files:
            return self.files[p]
        if p in self.dirs:
            raise OSError(errno.EISDIR, "Is a directory", path)
        raise OSError(errno.ENOENT, "No such file or directory", path)

    def listdir(self, path):
        p = self._resolve(path)
        if p not in self.dirs:
            return []
        return sorted(self._children().get(p, ()))

    def _children(self):
        """``{dir: set of names}``, built once per content (a scan of every entry per listdir made reading a
        recorded tree quadratic in its size)."""
        key = (len(self.files), len(self.dirs), len(self.symlinks), len(self.errors))
        cached = getattr(self, "_children_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        children = {}
        for entry in list(self.files) + list(self.dirs) + list(self.symlinks) + list(self.errors):
            if entry == "/":
                continue
            parent, _, name = entry.rpartition("/")
            children.setdefault(parent or "/", set()).add(name)
        self._children_cache = (key, children)
        return children

    def isdir(self, path):
        try:
            return self._resolve(path) in self.dirs
        except OSError:
            return False

    def exists(self, path):
        try:
            p = self._resolve(path)
        except OSError:
            return False
        return p in self.dirs or p in self.files or p in self.errors

    def __repr__(self):
        return "MemFS(%d files)" % len(self.files)


def _norm(path):
    return posixpath.normpath("/" + path.lstrip("/"))


def as_fs(root):
    """``root`` as a filesystem object: a path becomes a :class:`DiskFS`, an FS is returned as is."""
    if root is None:
        return DiskFS("/")
    if hasattr(root, "read") and hasattr(root, "listdir"):
        return root
    return DiskFS(root)


def read_text(fs, path):
    """``(text, None)`` with surrounding whitespace stripped, or ``(None, reason)`` when unreadable."""
    try:
        return fs.read(path).strip(), None
    except OSError as exc:
        return None, _os_reason(exc)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, "unreadable: %s" % exc


def read_int(fs, path):
    """``(int, None)`` or ``(None, reason)``: missing, unreadable, empty or not a number."""
    text, reason = read_text(fs, path)
    if text is None:
        return None, reason
    if not text:
        return None, "empty file"
    try:
        return int(text.split()[0]), None
    except ValueError:
        return None, "not a number: %r" % text[:40]


def _os_reason(exc):
    code = getattr(exc, "errno", None)
    name = errno.errorcode.get(code, "") if code else ""
    msg = exc.strerror or str(exc)
    if code == errno.EACCES:
        return "permission denied (EACCES)"
    if code == errno.ENOENT:
        return "missing (ENOENT)"
    if name:
        return "read failed: %s (%s)" % (msg, name)
    return "read failed: %s" % msg


# --- recorded listings into a MemFS -------------------------------------------------------------

def memfs_from_ttar(text):
    """A tree from node_exporter's ttar format (``Path:``/``Lines:``/content/``Mode:`` blocks)."""
    files, dirs, links = {}, [], {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Directory: "):
            dirs.append(line[len("Directory: "):].strip())
        elif line.startswith("Path: "):
            path = line[len("Path: "):].strip()
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if nxt.startswith("SymlinkTo: "):
                links[_norm(path)] = nxt[len("SymlinkTo: "):].strip()
                i += 1
            elif nxt.startswith("Lines: "):
                try:
                    count = max(0, int(nxt[len("Lines: "):].strip()))  # a negative count looped for ever
                except ValueError:
                    count = 0
                body = lines[i + 2:i + 2 + count]
                files[_norm(path)] = "\n".join(body) + ("\n" if body else "")
                i += 1 + count
        i += 1
    return MemFS(files, dirs, links)


_STOP_RE = re.compile(r"[\s/]")


def _split_grep_line(line):
    """``(path, value)`` of a ``grep`` line; directory names may hold ``:`` (``intel-rapl:0``).

    The path ends at the first ':' not followed by a path component and a '/' (``[^\\s/:][^\\s/]*/``).
    Linear: the first whitespace or '/' after each ':' is found once and kept while it is still ahead
    (matching that regex on the rest after every ':' was quadratic on a line of colons).
    """
    if not (line.startswith("/sys/") or line.startswith("/proc/")):
        return None
    first = None
    stop = -1
    n = len(line)
    for k, ch in enumerate(line):
        if ch != ":":
            continue
        if first is None:
            first = k
        if stop <= k:
            m = _STOP_RE.search(line, k + 1)
            stop = m.start() if m else n
        nxt = line[k + 1] if k + 1 < n else ""
        continues = nxt != "" and nxt not in ":/" and not nxt.isspace() and stop < n and line[stop] == "/"
        if not continues:
            return line[:k], line[k + 1:]
    if first is None:
        return None
    return line[:first], line[first + 1:]


def memfs_from_grep(text):
    """A tree from ``grep -r . /sys/...`` output: one ``path:value`` per line."""
    parts = {}
    for line in text.splitlines():
        split = _split_grep_line(line.strip())
        if split:
            parts.setdefault(_norm(split[0]), []).append(split[1] + "\n")
    # Joined once: appending to the file's text line by line was quadratic for a path repeated many times.
    return MemFS(dict((path, "".join(chunks)) for path, chunks in parts.items()))


_CAT_ERR_RE = re.compile(r"^cat: (.+?): (.+)$")


def memfs_from_dump(text):
    """A tree from ``find DIR -type f -exec sh -c 'echo ---; echo $f; echo ---; cat $f'``.

    A ``cat: PATH: Input/output error`` body becomes a file that raises EIO,
    as the real file does (unconnected INA3221 channels do this).
    """
    files, errors = {}, {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "---" and i + 2 < len(lines) + 1:
            path = lines[i + 1].strip() if i + 1 < len(lines) else ""
            closing = lines[i + 2].strip() if i + 2 < len(lines) else "---"
            if path.startswith("/") and closing == "---":
                j = i + 3
                body = []
                while j < len(lines) and lines[j].strip() != "---":
                    body.append(lines[j])
                    j += 1
                m = _CAT_ERR_RE.match(body[0]) if len(body) == 1 else None
                if m and m.group(1) == path:
                    errors[_norm(path)] = m.group(2)
                else:
                    files[_norm(path)] = "\n".join(body) + ("\n" if body else "")
                i = j
                continue
        i += 1
    return MemFS(files, errors=errors)
