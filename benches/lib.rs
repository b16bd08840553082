//! Shared helpers for the benchmark targets in this folder.
