"""``hilbench doctor``: what must be true before a target can be measured.

* :mod:`~harness.doctor.checks`: :func:`doctor` and the checks of local and SSH targets (reachability, login,
  Python, the agent's probe, platform states), :func:`device_facts` stored with every run;
* :mod:`~harness.doctor.android`: the checks of Android (adb) targets;
* :mod:`~harness.doctor.lab`: the checks of labgrid places (coordinator, place, resource, then SSH);
* :mod:`~harness.doctor.base`: the :class:`Check` both answer with.
"""

from __future__ import annotations

from harness.doctor.base import Check
from harness.doctor.checks import device_facts, doctor, format_checks

__all__ = ["Check", "doctor", "format_checks", "device_facts"]
