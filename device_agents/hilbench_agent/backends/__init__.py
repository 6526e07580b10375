"""Inference backends the agent can drive, found by a registry.

A backend is a small contract (see :class:`base.Backend`): ``probe()`` says
whether it can run here, ``load()`` opens a model, ``input_specs()`` describes
the inputs, ``set_inputs()`` binds arrays, ``invoke`` is the one call the timed
loop measures, ``outputs()`` returns the last results, ``close()`` frees it.

Each backend declares its name, aliases, model suffixes, the suffixes it runs by
default, its settings schema and its install hint in its own class. The registry
imports every module of this package and keeps each ``Backend`` subclass it finds,
so adding a backend is one new file here (plus its tests): the host's plan defaults,
its validation of settings and ``hilbench doctor``'s remedies all derive from it.
Backend modules import their runtime inside ``probe``/``load``, never at the top,
so the registry loads on a bare Python.
"""

import importlib
import pkgutil

from hilbench_agent.backends.base import COMMON_SETTINGS, Backend
from hilbench_agent.protocol import AgentError


def _discover():
    """{name: Backend subclass} for every backend module of this package, by name."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(__name__ + "." + info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Backend) and obj.__module__ == module.__name__:
                if obj.name in found:
                    raise RuntimeError("two backends are named %r: %s and %s" % (obj.name, found[obj.name], obj))
                found[obj.name] = obj
    return found


#: backend name -> its class
BACKENDS = _discover()

#: backend name -> {setting: Setting}: the single schema of every backend's job settings
SETTINGS = dict((name, dict(COMMON_SETTINGS, **cls.settings)) for name, cls in BACKENDS.items())

#: Aliases users may write in plans.
ALIASES = dict((alias, name) for name, cls in BACKENDS.items() for alias in cls.aliases)

#: Which model file suffixes each backend accepts (None: no model file needed).
MODEL_SUFFIXES = dict((name, cls.model_suffixes) for name, cls in BACKENDS.items())

#: The backend a model file runs on when neither the plan nor the model names one.
DEFAULT_BACKEND = dict((suffix, name) for name, cls in BACKENDS.items() for suffix in cls.default_for)


def canonical_name(name):
    return ALIASES.get(name, name)


def get_backend_class(name):
    cls = BACKENDS.get(canonical_name(name))
    if cls is None:
        raise AgentError("backend", "unknown backend %r (known: %s)" % (name, ", ".join(sorted(BACKENDS))))
    return cls


def validate_settings(name, settings):
    """Return a list of one-line problems with ``settings`` for backend ``name``."""
    name = canonical_name(name)
    schema = SETTINGS.get(name)
    if schema is None:
        return ["unknown backend %r (known: %s)" % (name, ", ".join(sorted(SETTINGS)))]
    problems = []
    for key, value in sorted(settings.items()):
        if key not in schema:
            problems.append("unknown setting %r for backend %s (known: %s)" % (key, name, ", ".join(sorted(schema))))
            continue
        problem = schema[key].problem(key, value)
        if problem:
            problems.append(problem)
    return problems


def probe_all():
    """Probe every backend; returns {name: {available, version, reason, ...}}."""
    return probe_some(sorted(SETTINGS))


def probe_some(names):
    """Probe the named backends (unknown names are left out)."""
    found = {}
    for name in sorted(set(canonical_name(n) for n in names if canonical_name(n) in SETTINGS)):
        try:
            found[name] = get_backend_class(name).probe()
        except Exception as exc:  # a probe must never take the agent down
            found[name] = {"available": False, "reason": "probe failed: %s" % _first_line(exc)}
    return found


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
