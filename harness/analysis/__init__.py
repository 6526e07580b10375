"""Analysis of stored results: statistics, stability, derived figures, energy, comparisons, history, accuracy.

Nothing here reaches a device: everything is computed from the store (or a recorded file)."""
