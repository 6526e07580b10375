"""``hilbench doctor``: :mod:`~harness.doctor.checks` (local and SSH targets), :mod:`~harness.doctor.android`."""
