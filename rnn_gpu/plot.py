"""`rnn-gpu plot`: train and validation loss against steps and characters
seen (and the validation loss per character of the original text, which
compares runs of different vocabularies), and the learning rate against steps;
where the records have them, a second row: each layer's largest singular
value of W and its fraction of saturated units at every evaluation."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .fileio import atomic_write
from .training.metrics import PLOTTED_PER_LAYER, read_metrics

PLOTTABLE = 1e15  # the largest magnitude drawn


def image_format(output: Path, supported) -> str:
    """The format named by the file's extension (png without one)."""
    fmt = output.suffix.lower().lstrip(".") or "png"
    if fmt not in supported:
        raise UsageError(f"-o {output}: cannot write .{fmt} images; use one of {', '.join(sorted(supported))}")
    return fmt


def points(records: list[dict], x: str, y: str) -> list[tuple[float, float]]:
    """The (x, y) pairs of the records that have both as finite numbers within
    PLOTTABLE (a diverged step's NaN, or a number no axis can scale to, is
    left out)."""
    pairs = [(r[x], r[y]) for r in records if x in r and y in r]
    return [(float(a), float(b)) for a, b in pairs if abs(a) < PLOTTABLE and abs(b) < PLOTTABLE]


PER_LAYER_LABELS = {"W_sigma_max": "largest singular value of W", "saturation": "saturated units (|h| > 0.99)"}


def layer_points(records: list[dict], key: str) -> list[list[tuple[float, float]]]:
    """Per layer, the (step, value) pairs of a per-layer key (`points`' rules)."""
    depth = max((len(r[key]) for r in records if key in r), default=0)
    per_layer = [[{"step": r["step"], key: r[key][k]} for r in records if key in r and len(r[key]) > k]
                 for k in range(depth)]
    return [points(rows, "step", key) for rows in per_layer]


def draw_per_layer(axes, records: list[dict], keys: list[str]) -> None:
    """The second row: each per-layer key over the steps, a line per layer."""
    for ax, key in zip(axes, keys, strict=False):
        drawn = [ax.plot(*zip(*pairs, strict=True), "o-", label=f"layer {k}", markersize=3)
                 for k, pairs in enumerate(layer_points(records, key), 1) if pairs]
        ax.set_xlabel("step")
        ax.set_ylabel(PER_LAYER_LABELS[key])
        if key == "saturation":
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    for ax in axes[len(keys):]:
        ax.set_visible(False)


def plot_metrics(metrics_path: Path, output: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'rnn_gpu[plot]'") from None
    fmt = image_format(output, FigureCanvasAgg.get_supported_filetypes())
    records = read_metrics(metrics_path)
    has_lr = any("lr" in r for r in records)
    per_layer = [k for k in PLOTTED_PER_LAYER if any(k in r for r in records)]
    rows = 2 if per_layer else 1
    fig, grid = plt.subplots(rows, 3 if has_lr else 2, figsize=(15 if has_lr else 11, 4 * rows), squeeze=False)
    axes = grid[0]
    for ax, x_key, label in ((axes[0], "step", "step"), (axes[1], "symbols", "symbols seen")):
        train, val = points(records, x_key, "train_loss"), points(records, x_key, "val_loss")
        per_char = points(records, x_key, "val_loss_per_char")
        if train:
            ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
        if val:
            ax.plot(*zip(*val, strict=True), "o-", label="validation", markersize=3)
        if per_char and per_char != val:
            ax.plot(*zip(*per_char, strict=True), "s--", label="validation per character", markersize=3)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats per symbol)")
    axes[1].sharey(axes[0])
    axes[0].legend()
    if has_lr:
        axes[2].plot(*zip(*points(records, "step", "lr"), strict=True), linewidth=1)
        axes[2].set_xlabel("step")
        axes[2].set_ylabel("learning rate")
        axes[2].grid(alpha=0.3)
    if per_layer:
        draw_per_layer(grid[1], records, per_layer)
    fig.suptitle(str(metrics_path.parent), fontsize=9)
    fig.tight_layout()
    atomic_write(output, lambda f: fig.savefig(f, format=fmt, dpi=110))
    plt.close(fig)
