"""A model package outside ``bench/``, as a researcher's own code: plugged in by TOML only."""
