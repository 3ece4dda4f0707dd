"""Benchmarks of the course's code against PyTorch's own (run with ``python -m benchmarks.<name>``)."""
