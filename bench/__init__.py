"""lic-bench: benchmarking and rate-distortion analysis for learned image compression."""

__version__ = "0.1.0"
