"""Reporting: the stdout table (median per target, ratio to the first) and PNG plots.

Plots read every record in <out>/results.jsonl, so running several scenarios into one
folder gives one throughput chart covering all of them.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# Figures shown in the table, in this order, when a scenario produces them.
MEDIAN_FIGURES = (
    "msgs_per_s",
    "deliveries_per_s",
    "MB_per_s",
    "send_per_s",
    "receipt_p50_ms",
    "receipt_p90_ms",
    "receipt_p99_ms",
    "receipt_p999_ms",
    "receipt_max_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "msgs_per_receive",
    "unloaded_msgs_per_s",
    "loaded_ratio",
    "idle_connections",
    "broker_rss_idle_mib",
    "client_cpu_pct",
    "workers_cpu_max_pct",
    "broker_cpu_pct",
    "broker_cpu_us_per_msg",
    "broker_rss_max_mib",
    "elapsed_s",
)
# Figures summed over runs (any non-zero value is a failure worth seeing).
SUM_FIGURES = (
    "lost",
    "unsent",
    "duplicated",
    "timed_out",
    "idle_dropped",
    "idle_connect_failed",
    "send_retries",
)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _fmt(x: float) -> str:
    if isinstance(x, bool):
        return str(int(x))
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def summarize(records: list[dict[str, Any]], names: list[str]) -> list[list[str]]:
    """Rows of [figure, value per target (+ ratio to the first)]."""
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_target[r["target"]].append(r)
    rows: list[list[str]] = []
    for key in MEDIAN_FIGURES + SUM_FIGURES:
        cells: list[str] = [key]
        base: float | None = None
        present = False
        for i, name in enumerate(names):
            vals = [float(r[key]) for r in by_target[name] if key in r]
            if not vals:
                cells.append("-")
                continue
            present = True
            v = sum(vals) if key in SUM_FIGURES else _median(vals)
            cell = _fmt(v)
            if i == 0:
                base = v
            elif key not in SUM_FIGURES and base:
                cell += f" ({v / base:.2f}×)"
            cells.append(cell)
        if present:
            rows.append(cells)
    return rows


def print_table(records: list[dict[str, Any]], names: list[str], label: str) -> None:
    runs = max((r["run"] for r in records), default=0) + 1
    rows = summarize(records, names)
    header = [f"figure (median of {runs})", *names]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{label}")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    errors = {e for r in records for e in r.get("errors", [])}
    for e in sorted(errors)[:10]:
        print(f"! {e}")


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _throughput(r: dict[str, Any]) -> float | None:
    return r.get("deliveries_per_s") or r.get("msgs_per_s")


def plot_results(out: Path) -> list[Path]:
    """Write throughput.png and latency_cdf.png from <out>/results.jsonl; return paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = _load(out / "results.jsonl")
    written: list[Path] = []
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        v = _throughput(r)
        if v:
            groups[(r["label"], r["target"])].append(v)
    if groups:
        labels = sorted({k[0] for k in groups})
        targets = sorted({k[1] for k in groups})
        fig, ax = plt.subplots(figsize=(min(14, max(6, 1.2 * len(labels) + 2)), 5))
        width = 0.8 / len(targets)
        for ti, t in enumerate(targets):
            xs, ys = [], []
            for li, label in enumerate(labels):
                vals = groups.get((label, t))
                if vals:
                    xs.append(li + ti * width)
                    ys.append(_median(vals))
            ax.bar(xs, ys, width, label=t)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels(labels, rotation=15, ha="right", fontsize=8)
        ax.set_ylabel("messages/s (fan-out: deliveries/s), median")
        ax.set_title("Throughput by scenario")
        ax.legend()
        fig.tight_layout()
        path = out / "throughput.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    curves = []
    for r in records:
        for kind in ("latency", "receipt"):
            cdf = r.get(f"{kind}_cdf")
            if cdf:
                curves.append((f"{r['target']} {r['label']} ({kind}, run {r['run']})", cdf))
    if curves:
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, cdf in curves:
            qs = [q for q, _ in cdf if q < 1.0]
            ms = [v for q, v in cdf if q < 1.0]
            ax.plot([1 / (1 - q) for q in qs], ms, label=name, linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency, ms")
        ax.set_title("Latency by percentile (send→receive from intended send time)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        path = out / "latency_cdf.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
