"""A cache on the device for what a backend builds from a model: TensorRT engines, compiled Core ML models.

An entry is keyed by everything the build depends on (the model's sha256, the runtime's version, the
accelerator, the build options); its name is the sha256 of that key, so two builds that differ in anything
never share an entry. Each entry has a ``.json`` beside it that says what it was built from. Entries are
written under a temporary name and renamed, so a crash or two agents building at once never leave a
half-written entry; a reader sees the old state or the new.

The cache lives in ``$HILBENCH_CACHE``, else ``$XDG_CACHE_HOME/hilbench``, else ``~/.cache/hilbench`` (a
backend's ``cache_dir`` setting overrides it), one folder per kind (``tensorrt``, ``coreml``).
"""

import hashlib
import json
import os
import shutil
import tempfile
import time

from hilbench_agent.protocol import AgentError


def default_root():
    if os.environ.get("HILBENCH_CACHE"):
        return os.environ["HILBENCH_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hilbench")


def model_sha256(path):
    """sha256 of a model file, or of a model folder (an .mlpackage: every file's relative path and bytes)."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                digest.update(os.path.relpath(full, path).replace(os.sep, "/").encode("utf-8") + b"\0")
                _update_file(digest, full)
    else:
        _update_file(digest, path)
    return digest.hexdigest()


def _update_file(digest, path):
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            digest.update(block)


class BuildCache(object):
    """Entries of one kind under ``root/kind``; ``suffix`` names what an entry is (``.engine``, ``.mlmodelc``)."""

    def __init__(self, kind, suffix, root=None):
        self.folder = os.path.join(os.path.expanduser(root or default_root()), kind)
        self.suffix = suffix

    @staticmethod
    def key(fields):
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()

    def path(self, key):
        return os.path.join(self.folder, key + self.suffix)

    def get(self, key):
        """The entry's path, or None when the cache has none."""
        path = self.path(key)
        return path if os.path.exists(path) else None

    def _ready(self):
        try:
            if not os.path.isdir(self.folder):
                os.makedirs(self.folder)
        except OSError as exc:
            raise AgentError("resource", "cannot create the build cache %s: %s (set cache_dir, or engine_cache = "
                             "false)" % (self.folder, exc))

    def put_bytes(self, key, data, fields):
        """Store ``data`` as the entry of ``key`` (atomically) with its description; returns its path."""
        self._ready()
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix="." + key[:16], suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
        except OSError as exc:
            _remove(tmp)
            raise AgentError("resource", "cannot write the build cache entry %s: %s" % (path, exc))
        self._describe(key, fields)
        return path

    def put_dir(self, key, source, fields):
        """Move the folder ``source`` in as the entry of ``key`` (a rename: atomic); returns its path."""
        self._ready()
        path = self.path(key)
        tmp = tempfile.mkdtemp(dir=self.folder, prefix="." + key[:16], suffix=".tmp")
        try:
            staged = os.path.join(tmp, "entry")
            shutil.copytree(source, staged)
            if os.path.exists(path):  # another agent built it meanwhile: keep theirs
                return path
            os.rename(staged, path)
        except OSError as exc:
            raise AgentError("resource", "cannot write the build cache entry %s: %s" % (path, exc))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._describe(key, fields)
        return path

    def drop(self, key):
        """Remove an entry the runtime refused (a stale build): the next run builds it again."""
        path = self.path(key)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _remove(path)
        _remove(path + ".json")

    def _describe(self, key, fields):
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix="." + key[:16], suffix=".json.tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(dict(fields, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())), f,
                          sort_keys=True, indent=1)
            os.rename(tmp, self.path(key) + ".json")
        except OSError:
            pass  # the description helps a person; the entry stands without it


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
