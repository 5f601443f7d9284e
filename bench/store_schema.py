"""The results store's tables as data: each table's columns and SQL types, declared once.

:class:`bench.store.Store` creates these tables (and adds the columns an older store lacks);
everything that needs a column list reads it from here.
"""

from __future__ import annotations

from bench.metrics.registry import columns as metric_columns

RUNS_COLUMNS: dict[str, str] = {
    "run_id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "started_at": "TEXT",
    "finished_at": "TEXT",
    "command": "TEXT",
    "git_commit": "TEXT",
    "host": "TEXT",
    "cpu": "TEXT",
    "gpu": "TEXT",
    "threads": "INTEGER",
    "jobs": "INTEGER",
    "manifest": "TEXT",  # JSON: package versions, codec descriptions, settings
}

#: One row per cell. Nullable numbers are NULL where not applicable (never a made-up zero).
MEASUREMENT_COLUMNS: dict[str, str] = {
    "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "cell_key": "TEXT UNIQUE NOT NULL",
    "run_id": "INTEGER REFERENCES runs(run_id)",
    "status": "TEXT NOT NULL",  # 'ok' or 'error'
    "error": "TEXT",
    "codec": "TEXT NOT NULL",
    "adapter": "TEXT",
    "codec_version": "TEXT",
    "config_hash": "TEXT",
    "trained": "INTEGER",  # 0 for learned codecs on random weights: complexity only
    "weights_sha256": "TEXT",  # sha256 of the learned codec's weights file; NULL: untrained or classical
    "rate_label": "TEXT NOT NULL",
    "rate_params": "TEXT",  # JSON
    "dataset": "TEXT NOT NULL",
    "image": "TEXT NOT NULL",
    "image_sha256": "TEXT",
    "resolution": "TEXT NOT NULL",  # 'native' or 'WxH' (centre crop)
    "width": "INTEGER",
    "height": "INTEGER",
    "pixels": "INTEGER",
    "device": "TEXT",
    "round": "INTEGER",  # 1, or k for the k-th repetition of the same cell (the gate's rounds)
    "threads": "INTEGER",  # the run's --threads: the pin of every process of the cell
    # what the timed calls ran with (Codec.threads_used): the pin, or the codec's own count, which
    # threads_pinned_by names (NULL: both follow the pin); NULL in error rows and rows from before
    "enc_threads": "INTEGER",
    "dec_threads": "INTEGER",
    "threads_pinned_by": "TEXT",
    "bytes": "INTEGER",
    "bpp": "REAL",
    "stream_sha256": "TEXT",  # sha256 of the kept bitstream (bench.streams; run --keep-streams), else NULL
    "estimated_bits": "REAL",
    **dict.fromkeys(metric_columns(), "REAL"),  # every metric's columns, from the registry (bench/metrics)
    "enc_time_s": "REAL",  # median over repeats
    "enc_time_min_s": "REAL",
    "enc_time_max_s": "REAL",
    "dec_time_s": "REAL",
    "dec_time_min_s": "REAL",
    "dec_time_max_s": "REAL",
    "enc_cpu_s": "REAL",  # median CPU time of the worker process (all threads) per call
    "dec_cpu_s": "REAL",
    "repeats": "INTEGER",
    "warmup": "INTEGER",
    "timer": "TEXT",  # 'perf_counter', 'cuda_events', 'perf_counter+process_start'
    "enc_peak_rss_bytes": "INTEGER",
    "dec_peak_rss_bytes": "INTEGER",
    "base_rss_bytes": "INTEGER",
    "enc_gpu_peak_bytes": "INTEGER",
    "dec_gpu_peak_bytes": "INTEGER",
    "enc_nvml_bytes": "INTEGER",
    "dec_nvml_bytes": "INTEGER",
    # memory of the codec itself: each call run once more in a clean forked process (bench.memory)
    "enc_mem_peak_bytes": "INTEGER",  # that process's peak RSS during the encode
    "enc_mem_growth_bytes": "INTEGER",  # peak − RSS right before the call − library pages it mapped
    "dec_mem_peak_bytes": "INTEGER",
    "dec_mem_growth_bytes": "INTEGER",
    "model_bytes": "INTEGER",  # learned codecs: parameters + buffers of the rate point's model
    "mem_method": "TEXT",  # 'fork', 'fork+construct' (CUDA), 'subprocess', 'off', 'failed: ...'
    "encode_deterministic": "INTEGER",
    "enc_kmac_per_px": "REAL",  # learned codecs: counted multiply-adds (bench.complexity)
    "dec_kmac_per_px": "REAL",
    "params": "INTEGER",
    "complexity": "TEXT",  # JSON: kMAC/pixel and parameters per part, counted size
    "matmul_gflops": "REAL",  # float32 2048² matmul rate of the worker, the arithmetic yardstick
    "cross_decode": "TEXT",  # NULL (not checked), 'identical', 'differs', 'error: ...'
    "extras": "TEXT",  # JSON: codec-specific numbers
    "started_at": "TEXT",
    "finished_at": "TEXT",
    "wall_s": "REAL",  # the whole cell in its worker: image, codec, warm-up, timed calls, metrics, memory, counts
    "cell_cpu_s": "REAL",  # CPU time of the worker process (all threads) over the same span; not its subprocesses'
    # where the cell ran (bench.machine.machine_info, filled on the worker's machine) and by what
    "host": "TEXT",
    "cpu_model": "TEXT",
    "logical_cpus": "INTEGER",
    "arch": "TEXT",
    "gpu_model": "TEXT",  # NULL when the cell ran on a CPU
    "executor": "TEXT",  # 'local' or 'dask'
}


#: Benchmarks of learned decoders split into parts (``python -m bench.tools.decode_parts``): one row per
#: size, codec, computation mode, thread count and part (``total`` for the whole decode), fastest of the
#: interleaved decodes.
DECODE_PART_COLUMNS: dict[str, str] = {
    "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "run_id": "INTEGER REFERENCES runs(run_id)",
    "codec": "TEXT NOT NULL",
    "rate": "TEXT",  # rate point label
    "size": "TEXT NOT NULL",
    "width": "INTEGER",
    "height": "INTEGER",
    "mode": "TEXT NOT NULL",
    "dtype": "TEXT",
    "part": "TEXT NOT NULL",
    "threads": "INTEGER",
    "seconds": "REAL",  # wall
    "cpu_seconds": "REAL",  # process CPU time, all threads
    "gflop": "REAL",  # counted: 2 × direct multiply-adds
    "matmul_gflops": "REAL",  # the yardstick of the mode's dtype, timed in the same run
    "matmul_fraction": "REAL",  # gflop / seconds / matmul rate
    "matmul_gflop_per_cpu_s": "REAL",  # the same yardstick per CPU second: the floor in CPU time (NULL before)
    "bytes": "INTEGER",
    "peak_rss_growth_bytes": "INTEGER",
    "host": "TEXT",
    "cpu_model": "TEXT",
    "loadavg_1min": "REAL",
}


#: Metric cross-checks (``python -m bench.tools.metrics_check``): one row per metric and image, our value beside
#: a second implementation's on the same pair, and the seconds of our call; a metric that cannot run here is
#: one row with ``image`` NULL and the reason in ``note``.
METRIC_CHECK_COLUMNS: dict[str, str] = {
    "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "run_id": "INTEGER REFERENCES runs(run_id)",
    "metric": "TEXT NOT NULL",
    "image": "TEXT",
    "distortion": "TEXT",  # how the compared image was made, e.g. 'jpeg q50 (Pillow 4:2:0)'
    "ours": "REAL",
    "theirs": "REAL",  # the second implementation's value; NULL when it has none or it failed
    "abs_diff": "REAL",  # |ours - theirs|
    "implementation": "TEXT",  # ours, with its version (bench.metrics.registry.implementation_version)
    "second": "TEXT",  # the second implementation, in words
    "wall_s": "REAL",  # one call of ours, after an untimed one
    "cpu_s": "REAL",  # its CPU time: this process and its children (the vmaf CLI)
    "note": "TEXT",  # 'unavailable: …' or why the second implementation gave no value
    "suite_commit": "TEXT",
    "host": "TEXT",
    "cpu_model": "TEXT",
}
