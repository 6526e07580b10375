"""Running jobs: :mod:`~harness.run.session` sends each job to its device, recovers from drops and stores the rows."""
