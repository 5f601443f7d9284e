"""Helper commands for the third-party tools the suite runs (``python -m bench.tools.vtm``).

Modules here import only the standard library at module level, so CI can call them with any
``python3`` before the package's dependencies are installed.
"""
