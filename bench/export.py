"""Export a results store to CSV and to CompressAI's results-JSON shape.

CompressAI's plotting scripts read ``{"name", "description", "results": {"psnr-rgb", "ms-ssim-rgb",
"bpp", "encoding_time", "decoding_time"}}`` with one entry per rate point, averaged over images.
We write one such file per codec, from the native-resolution, successful cells of one dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.store import read_measurements


def to_csv(results: str | Path, out: str | Path) -> int:
    """Every measurement row (errors included) to ``out``; returns the row count."""
    frame = read_measurements(results, status=None)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return len(frame)


def to_compressai_json(results: str | Path, folder: str | Path, dataset: str | None = None) -> list[Path]:
    frame = read_measurements(results)
    frame = frame[frame["resolution"] == "native"]
    if frame.empty:
        raise ValueError(f"{results}: no successful native-resolution cells to export")
    dataset = dataset or sorted(frame["dataset"].unique())[0]
    frame = frame[frame["dataset"] == dataset]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for codec, group in frame.groupby("codec"):
        mean = group.groupby("rate_label", sort=False)[
            ["bpp", "psnr_rgb", "ms_ssim", "enc_time_s", "dec_time_s"]].mean().sort_values("bpp")
        images = group["image"].nunique()
        doc = {
            "name": codec,
            "description": f"lic-bench: {codec} ({group['codec_version'].iloc[0]}) on {dataset}, "
                           f"mean over {images} images; times are medians per image, in seconds",
            "results": {
                "psnr-rgb": mean["psnr_rgb"].tolist(),
                "ms-ssim-rgb": [None if v != v else v for v in mean["ms_ssim"].tolist()],
                "bpp": mean["bpp"].tolist(),
                "encoding_time": mean["enc_time_s"].tolist(),
                "decoding_time": mean["dec_time_s"].tolist(),
            },
        }
        path = folder / f"{codec}.json"
        path.write_text(json.dumps(doc, indent=2))
        written.append(path)
    return written
