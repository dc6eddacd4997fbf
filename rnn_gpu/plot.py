"""`rnn-gpu plot`: train and validation loss against steps and characters seen."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError
from .fileio import atomic_write


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        raise UsageError(f"no metrics file: {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            float(record["step"]), float(record["train_loss"])
        except (ValueError, TypeError, KeyError):
            raise UsageError(f"{path}:{number}: not a metrics record") from None
        records.append(record)
    if not records:
        raise UsageError(f"{path} holds no records yet")
    return records


def plot_metrics(metrics_path: Path, output: Path) -> None:
    records = read_metrics(metrics_path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'rnn_gpu[plot]'") from None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x_key, label in ((axes[0], "step", "step"), (axes[1], "chars", "characters seen")):
        train = [(r[x_key], r["train_loss"]) for r in records if x_key in r]
        val = [(r[x_key], r["val_loss"]) for r in records if x_key in r and "val_loss" in r]
        if train:
            ax.plot(*zip(*train, strict=False), label="train", linewidth=1)
        if val:
            ax.plot(*zip(*val, strict=False), "o-", label="validation", markersize=3)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats per character)")
    axes[0].legend()
    fig.suptitle(str(metrics_path.parent), fontsize=9)
    fig.tight_layout()
    atomic_write(output, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
