"""Download and check the weights a codec configuration describes.

    python -m bench.codecs.weights mbt2018 [mlicpp ...] [--timeout 120]

For every rate point with a ``weights`` table: a ``url`` is downloaded into the weights folder
(``$BENCH_WEIGHTS_DIR``, else the torch hub cache) unless a copy is there, and its sha256 is
checked before the file takes its name; a ``path`` is only checked. One line per file; any error
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from bench.argparsing import ArgumentParser
from bench.codecs import registry
from bench.codecs.learned import weights_specs
from bench.errors import BenchError, describe, quiet_broken_pipe


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.codecs.weights", description=__doc__.split("\n")[0])
    parser.add_argument("codecs", nargs="+", help="configuration names (codecs/NAME.toml)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per download (default 120)")
    args = parser.parse_args(argv)
    from bench.models.weights import fetch

    try:
        configs = registry.load_configs()
        for name in args.codecs:
            if name not in configs and name not in configs.broken:
                print(f"error: no codec configuration {name!r} (known: {', '.join(sorted(configs))})", file=sys.stderr)
                return 2
            config = configs[name]
            specs = weights_specs(config)
            if not any(specs):
                print(f"{name}: no weights described (untrained)")
            for point, spec in zip(config.rates, specs):
                if spec is not None:
                    print(f"{name} {point.label}: {fetch(spec, args.timeout)} (sha256 checked)", flush=True)
    except BrokenPipeError:
        return quiet_broken_pipe()
    except (BenchError, OSError, ValueError, RuntimeError) as exc:  # config, download, sha256: one line
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
