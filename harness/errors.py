"""The hilbench error tree.

Every error that hilbench raises on purpose derives from :class:`HilbenchError`.
Third-party exceptions (paramiko, subprocess, pyarrow, tomllib) are caught at the
boundary where they happen and re-raised as one of these, ``from`` the original,
so the evidence is kept while the user sees one line that says what and where::

    HilbenchError
    ├── ConfigError        bad plan or target file: unknown key, wrong type, bad value
    ├── ModelError         missing, truncated or unreadable model file
    ├── InputError         a file given to a command (a vendor tool's output, a telemetry log) that
    │                      cannot be read or is not in the format asked for
    ├── OutputError        a file a command was asked to write (--output) cannot be written
    ├── StoreError         results store not writable, corrupt, or of a newer schema
    ├── ProtocolError      a message from the agent that breaks the protocol
    │   └── MessageError   a well-formed line whose content does not (a field missing, of the wrong type or
    │                      out of range, over a limit derived from the plan; harness/agent/validate.py)
    ├── TransportError     cannot reach, log into, or talk to a target
    │   ├── HostKeyError   unknown or changed host key
    │   └── LineTimeout    no protocol line within the time asked for (harness/transport/base.py; polled)
    └── AnalysisError      compare / history / report / plot / variants cannot do what was asked

A job that fails on the device is not an exception: it is stored as a run with an ``error_category``
(one of :data:`ERROR_CATEGORIES`, which an agent may send, or ``store``, which only the host writes: the
results store refused the job's files) and its message, and ``hilbench run`` exits 3.

Only the CLI prints these and turns them into exit codes (harness/cli/exits.py; an exception outside this
tree is a bug: exit 4).
"""

from __future__ import annotations

__all__ = [
    "HilbenchError",
    "ConfigError",
    "ModelError",
    "InputError",
    "OutputError",
    "StoreError",
    "ProtocolError",
    "MessageError",
    "TransportError",
    "HostKeyError",
    "AnalysisError",
    "ERROR_CATEGORIES",
]

#: Categories a failed job is stored with (DESIGN.md, protocol ``error`` message).
ERROR_CATEGORIES = (
    "transport",
    "agent",
    "backend",
    "model",
    "input",
    "timeout",
    "resource",
    "interrupted",
    "busy",  # another run held the device's lock for longer than the job would wait (docs/reliability.md)
)


class HilbenchError(Exception):
    """Root of every error hilbench raises on purpose."""


class ConfigError(HilbenchError):
    """A plan or target file is invalid. The message names ``file: table.key``."""


class ModelError(HilbenchError):
    """A model file is missing, truncated or not a model."""


class InputError(HilbenchError):
    """A file given to a command cannot be read or is not what it should be (a vendor tool's output, a
    telemetry log). The message names the file and says what to pass instead."""


class OutputError(HilbenchError):
    """A file a command was asked to write cannot be written. The message names the file."""


class StoreError(HilbenchError):
    """The results store cannot be written or read."""


class ProtocolError(HilbenchError):
    """The agent sent something that breaks the protocol."""


class MessageError(ProtocolError):
    """A protocol message whose content is invalid: the message names the field, one line
    (``phase message: duration_ns missing``). The session ends the job as an ``agent`` error."""


class TransportError(HilbenchError):
    """A target cannot be reached or talked to.

    ``target`` and ``step`` say where it happened (for example ``connect``,
    ``upload``, ``start agent``); ``stderr_tail`` keeps the last lines the
    remote side printed, when there are any.
    """

    #: the error category a job that fails with it is stored under (a labgrid place held past its wait: ``busy``)
    category = "transport"

    def __init__(self, message: str, *, target: str = "", step: str = "", stderr_tail: str = "") -> None:
        self.target = target
        self.step = step
        self.stderr_tail = stderr_tail
        #: the message without its ``target: step: `` prefix
        self.detail = message
        prefix = ""
        if target:
            prefix = f"{target}: " if not step else f"{target}: {step}: "
        super().__init__(prefix + message)


class HostKeyError(TransportError):
    """The target's host key is unknown or has changed."""


class AnalysisError(HilbenchError):
    """Analysis of stored results failed: nothing matches a selection, too little data, a missing tool."""
