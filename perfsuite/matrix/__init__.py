"""matrix: see docs/ARCHITECTURE.md."""
