"""What a comparison writes: the machine it ran on, a text table, a
markdown report and a bar chart."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from .systems import SYSTEMS


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}


def format_table(rows: list[dict]) -> str:
    head = (f"{'system':12} {'H':>5} {'B':>4} {'T':>4} {'L':>2} {'p':>4} {'chars/s':>12} {'step ms':>9} {'GFLOP/s':>8} "
            f"{'of sgemm':>8} {'fwd us/t':>9} {'bwd us/t':>9} {'peak MB':>8}")
    lines = [head]

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    for r in rows:
        mem = r.get("peak_mem_bytes")
        lines.append(f"{r['backend']:12} {r['hidden']:5} {r['batch']:4} {r['seq']:4} {r.get('layers', 1):2} "
                     f"{r.get('dropout', 0.0):4.2g} "
                     f"{r['chars_per_s']:12,.0f} {r['step_ms']:9.2f} {r['gflop_per_s']:8.1f} "
                     f"{fmt(r.get('sgemm_fraction'), '8.0%'):>8} "
                     f"{fmt(r['recurrence_fwd_us_per_step'], '9.1f'):>9} "
                     f"{fmt(r['recurrence_bwd_us_per_step'], '9.1f'):>9} {fmt(mem and mem / 2**20, '8.0f'):>8}")
    return "\n".join(lines)


def markdown_report(result: dict) -> str:
    m = result["machine"]
    lines = [f"Measured {m['date_utc']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
             f"NumPy {m['numpy']}. Each system's time is the median of alternating rounds; "
             "ratios are against the NumPy backend in the same run.", ""]
    devices = {r["backend"]: r["device"] for cfg in result["configs"] for r in cfg["rows"]}
    lines += [f"- {name}: {device}" for name, device in devices.items()]
    lines += ["", "| H | B | T | layers | dropout | system | chars/s | vs numpy | step ms | GFLOP/s | of sgemm "
                  "| peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cfg in result["configs"]:
        base = next((r["chars_per_s"] for r in cfg["rows"] if r["backend"] == "numpy"), None)
        for r in cfg["rows"]:
            ratio = f"{r['chars_per_s'] / base:.2f}x" if base else "-"
            mem = f"{r['peak_mem_bytes'] / 2**20:.0f}" if r.get("peak_mem_bytes") else "-"
            of_sgemm = f"{r['sgemm_fraction']:.0%}" if r.get("sgemm_fraction") else "-"
            lines.append(f"| {cfg['hidden']} | {cfg['batch'] if r['backend'] != 'seed' else 1} | {cfg['seq']} | "
                         f"{cfg.get('layers', 1)} | {cfg.get('dropout', 0.0):g} | {r['backend']} | "
                         f"{r['chars_per_s']:,.0f} | {ratio} | "
                         f"{r['step_ms']:.2f} | {r['gflop_per_s']:.1f} | {of_sgemm} | {mem} |")
    if result["skipped"]:
        lines += ["", "Not run here: " + "; ".join(f"{k} ({v})" for k, v in sorted(result["skipped"].items()))]
    return "\n".join(lines) + "\n"


def plot_compare(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    configs = result["configs"]
    names = sorted({r["backend"] for c in configs for r in c["rows"]}, key=SYSTEMS.index)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [next((r["chars_per_s"] for r in c["rows"] if r["backend"] == name), 0) for c in configs]
        ax.bar([x + i * width for x in range(len(configs))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(configs))],
                  [f"H={c['hidden']} B={c['batch']} T={c['seq']}" + (f" L={c['layers']}" if c.get("layers", 1) > 1
                                                                      else "")
                   + (f" p={c['dropout']:g}" if c.get("dropout") else "") for c in configs], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("training characters / s")
    ax.set_title(f"rnn_gpu training throughput ({result['machine']['date_utc'][:10]}, {result['machine']['cpu']})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return True
