"""nightly: see docs/ARCHITECTURE.md."""
