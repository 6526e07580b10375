"""Preparing inputs before a run: model variants (:mod:`~harness.prep.variants`) and evaluation sets packed from
image folders (:mod:`~harness.prep.evalsets`)."""
