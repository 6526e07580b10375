"""The agent's side of the protocol: one JSON object per line, versioned.

Every line is ``{"v": 1, "type": ..., "t_ns": <device monotonic ns>, ...}``.
Protocol lines go to a private copy of the process's original stdout; file
descriptor 1 itself is pointed at stderr, so a runtime that prints to stdout
(C libraries do) can never corrupt the protocol stream.
"""

import json
import os
import sys
import time

from hilbench_agent import PROTOCOL_VERSION

MESSAGE_TYPES = ("hello", "lock", "phase", "sample", "telemetry", "accuracy", "result", "error", "log")
ERROR_CATEGORIES = ("transport", "agent", "backend", "model", "input", "timeout", "resource", "interrupted", "busy")


class AgentError(Exception):
    """A failure the agent reports as an ``error`` message with a category."""

    def __init__(self, category, message):
        if category not in ERROR_CATEGORIES:
            category = "agent"
        Exception.__init__(self, message)
        self.category = category
        self.message = message


class Channel(object):
    """Writes protocol messages to the protocol stream and to the journal."""

    def __init__(self, stream, journal_path=None):
        self._stream = stream
        self._journal = None
        self.journal_path = journal_path
        if journal_path:
            directory = os.path.dirname(journal_path)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o700)  # private, like the folders the transports make
            self._journal = open(journal_path, "a")

    @classmethod
    def from_stdout(cls, journal_path=None):
        """Take over stdout for the protocol and send everything else to stderr."""
        sys.stdout.flush()
        proto_fd = os.dup(1)
        os.dup2(2, 1)
        stream = os.fdopen(proto_fd, "w")
        sys.stdout = sys.stderr
        return cls(stream, journal_path)

    def send(self, type_, **fields):
        message = {"v": PROTOCOL_VERSION, "type": type_, "t_ns": time.monotonic_ns()}
        message.update(fields)
        line = json.dumps(message, separators=(",", ":"), allow_nan=False, default=_jsonable) + "\n"
        if self._journal is not None:
            self._journal.write(line)
            self._journal.flush()
        try:
            self._stream.write(line)
            self._stream.flush()
        except (BrokenPipeError, OSError):
            # The host went away: the journal still holds everything.
            pass
        return message

    def close(self):
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _jsonable(value):
    # numpy scalars and arrays, sets, paths: anything json cannot take as is.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
