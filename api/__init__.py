"""HTTP API: views that return cached bytes."""
