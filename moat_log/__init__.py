"""moat-log: event-sourced, log-structured state for MoaT installations."""
