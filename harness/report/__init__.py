"""Output for people: the self-contained HTML report (:mod:`~harness.report.html`) and figures
(:mod:`~harness.report.plots`)."""
