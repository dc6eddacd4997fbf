"""How the files of this directory were made (docs/math.md, "The vanishing
gradient, measured"):

    python bench/results/inspect-2026-12-07/reproduce.py ../shared/data/tinyshakespeare.txt WORK_DIR

Two models of 2 layers x 256 units on tinyshakespeare, alike but for each
layer's recurrent W at step 0: the package's uniform initialisation (seed 0),
or an orthogonal W. `--init orthogonal` did not exist yet when this ran, so
the orthogonal matrices are made here, the Q of the QR decomposition of a
Gaussian matrix with the signs of R's diagonal folded in (NumPy; no SciPy),
written with the uniform U, V and biases into a step-0 checkpoint that
`train --init-from` starts from. Both are inspected at step 0 and after
STEPS steps of Adam (the defaults otherwise), on windows of SEQ steps."""
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import rnn_gpu
from rnn_gpu.checkpoint import Checkpoint, save_checkpoint
from rnn_gpu.data.corpus import load_corpus
from rnn_gpu.layout import layer_names
from rnn_gpu.model import init_params
from rnn_gpu.plot import plot_metrics
from rnn_gpu.training import TrainConfig

HIDDEN, LAYERS, STEPS, SEQ, EVAL_EVERY = 256, 2, 500, 128, 100
HERE = Path(__file__).resolve().parent


def orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def machine() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(corpus: str, work: str) -> None:
    corpus, work = str(Path(corpus).resolve()), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    vocab = load_corpus([corpus], "chars", 0.1).vocab
    cfg = TrainConfig(hidden=HIDDEN, layers=LAYERS, steps=STEPS, eval_every=EVAL_EVERY, backend="numpy", time=None)
    notes = {"machine": machine(), "cores": os.cpu_count(), "date": "2026-12-07",
             "python": sys.version.split()[0], "numpy": np.__version__, "runs": {}}
    for init in ("uniform", "orthogonal"):
        params = init_params(len(vocab), HIDDEN, cfg.seed, LAYERS)
        if init == "orthogonal":
            rng = np.random.default_rng(2026_12_07)
            for k in range(1, LAYERS + 1):
                params[layer_names(k)[1]] = orthogonal(rng, HIDDEN)
        start = work / f"{init}-step0.npz"
        save_checkpoint(start, Checkpoint(params=params, vocab=vocab,
                                          config={**dataclasses.asdict(cfg), "corpus": [corpus]}))
        rnn_gpu.inspect(start, seq=SEQ, output=HERE / f"{init}-step0")
        cpu, wall = time.process_time(), time.perf_counter()
        final = rnn_gpu.train(corpus, work / init, init_from=str(start), **{
            k: getattr(cfg, k) for k in ("hidden", "layers", "steps", "eval_every", "backend")})
        notes["runs"][init] = {"cpu_s": round(time.process_time() - cpu, 1),
                               "wall_s": round(time.perf_counter() - wall, 1), "val_loss": final["val_loss"],
                               "W_sigma_max": final["W_sigma_max"], "saturation": final["saturation"]}
        rnn_gpu.inspect(work / init, seq=SEQ, output=HERE / f"{init}-step{STEPS}")
        (HERE / f"{init}-metrics.jsonl").write_text((work / init / "metrics.jsonl").read_text())
        plot_metrics(work / init / "metrics.jsonl", HERE / f"{init}-loss.png")
    (HERE / "machine.json").write_text(json.dumps(notes, indent=1) + "\n")
    radii(work)
    figure()


def radii(work: Path) -> None:
    """spectral_radius.json: the largest |eigenvalue| of each W (the rate a
    long product of W.T settles to) beside its largest singular value."""
    from rnn_gpu.checkpoint import load_checkpoint

    rows = {}
    for init in ("uniform", "orthogonal"):
        for step, path in ((0, work / f"{init}-step0.npz"), (STEPS, work / init / "checkpoint.npz")):
            params = load_checkpoint(path).params
            rows[f"{init}-step{step}"] = [
                {"layer": k, "spectral_radius": float(np.abs(np.linalg.eigvals(W)).max()),
                 "largest_singular_value": float(np.linalg.norm(W, 2))}
                for k in range(1, LAYERS + 1) for W in [params[layer_names(k)[1]].astype(np.float64)]]
    (HERE / "spectral_radius.json").write_text(json.dumps(rows, indent=1) + "\n")


def figure() -> None:
    """comparison.png: the four measurements, step 0 and the end side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, step in zip(axes, (0, STEPS), strict=True):
        for init, style in (("uniform", "-"), ("orthogonal", "--")):
            report = json.loads((HERE / f"{init}-step{step}.json").read_text())
            for layer, colour in zip(report["layers"], ("tab:blue", "tab:orange"), strict=False):
                g = np.array([np.nan if v is None else v for v in layer["grad_norm_by_distance"]])
                ax.plot(g, style, color=colour, linewidth=1.3,
                        label=f"{init}, layer {layer['layer']} (sigma_max {layer['largest_singular_value']:.2f}, "
                              f"saturated {layer['saturation']:.0%})")
        ax.set_yscale("log")
        ax.set_title(f"step {step}", fontsize=10)
        ax.set_xlabel("distance T - t")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("||dL_T / dh_t||, mean over 8 windows x 32 streams")
    fig.suptitle(f"2 x {HIDDEN} tanh RNN on tinyshakespeare, T = {SEQ} (AMD EPYC, 2026-12-07)", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "comparison.png", dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
