"""``python -m bench.gate``: runs :func:`bench.gate.cli.main`."""

from bench.gate.cli import main

raise SystemExit(main())
