"""Speed benchmarks of the rocket trainer (see benchmarks/README.md); not part of the package."""
