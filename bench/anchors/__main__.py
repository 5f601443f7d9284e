"""``python -m bench.anchors``: runs :func:`bench.anchors.cli.main`."""

from bench.anchors.cli import main

raise SystemExit(main())
