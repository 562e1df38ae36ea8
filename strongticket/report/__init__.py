"""Tables and figures from saved runs (training run directories)."""
