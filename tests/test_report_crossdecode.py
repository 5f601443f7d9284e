"""The report's cross-decode table: one row per codec and device, counts by outcome."""

from __future__ import annotations

import pandas as pd

from bench.report.tables import cross_decode_table


def test_cross_decode_table_counts_outcomes_per_codec() -> None:
    rows = pd.DataFrame({
        "codec": ["mlicpp", "mlicpp", "mlicpp", "msp-fast", "msp-fast", "jpeg-420"],
        "device": ["cpu"] * 6,
        "cross_decode": ["identical (1 threads on cpu)", "differs (1 threads on cpu): 3 values",
                         "not cross-decoded: asked for 1 threads on cpu, the decoder ran with [2] threads",
                         "identical (1 threads on cpu)", "error (1 threads on cpu): bench.crossdecode failed", None],
    })
    table = cross_decode_table(rows).set_index("codec")
    assert list(table.index) == ["mlicpp", "msp-fast"]  # jpeg-420 was not cross-decoded
    assert table.loc["mlicpp", ["cells", "identical", "differs", "not_cross_decoded", "errors"]].tolist() == [3, 1, 1, 1, 0]
    assert table.loc["msp-fast", ["cells", "identical", "errors"]].tolist() == [2, 1, 1]
    assert table.loc["msp-fast", "decoded_with"] == "1 threads on cpu"


def test_cross_decode_table_is_empty_without_checks() -> None:
    rows = pd.DataFrame({"codec": ["webp"], "device": ["cpu"], "cross_decode": [None]})
    assert cross_decode_table(rows).empty
