"""posecli's benchmarks: each subpackage measures something and writes a page of docs/ from a
template and the values it measured (run them from the repository root: python -m benchmarks.X)."""
