"""Configuration read before anything runs: TOML reading (:mod:`~harness.config.toml`), target files
(:mod:`~harness.config.targets`) and plans expanded into jobs (:mod:`~harness.config.plan`)."""
