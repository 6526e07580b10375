"""Running jobs: :mod:`~harness.run.session` sends each job to its device, recovers from drops and stores the
rows; :mod:`~harness.run.jobrun` turns one job's protocol messages into its rows."""
