"""The regularisers and initialisations of recurrent nets, each alone and then
the best together, against the README's best recipe and PyTorch's nn.LSTM
and nn.RNN trained the same way: validation loss after the same seconds of
training. Not a test: a measurement.

    python -m bench.ablation CORPUS [--seconds 600] [--out bench/results/ablation-DATE]
        [--torch-quality ../shared/tools/torch_quality.py] [--only NAME,NAME]

Runs go two at a time, each on one core (OMP_NUM_THREADS=1), so that each
pair is side by side on a 2-core machine: the baseline beside PyTorch's
LSTM, then the variants two by two, then the combination of every variant
that beat the baseline by more than COMBINE_MARGIN beside PyTorch's RNN. Each run's metrics (or JSON lines)
and the load average at its start and end are kept in --out, and
`summary.json` has one row per run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# The README's best CPU recipe (docs/performance.md, "Deeper models"): what every variant changes one thing of.
BASELINE = {"layers": 2, "hidden": 384, "dropout": 0.1, "warmup": 100, "batch": 32, "seq": 64, "lr": 0.002}
VARIANTS = {
    "baseline": {},
    "locked-dropout": {"dropout_masks": "locked", "dropout": 0.2},
    "weight-drop": {"weight_drop": 0.2},
    "zoneout": {"zoneout": 0.1},
    "orthogonal": {"init": "orthogonal"},
    "unigram-bias": {"output_bias": "unigram"},
    "ar-tar": {"ar": 2.0, "tar": 1.0},
    "adamw": {"weight_decay": 0.01},
    "residual": {"residual": True},
}
COMBINE_MARGIN = 0.005  # nats: a variant joins the combination when it beats the baseline by more
TORCH = {"torch-lstm": {"cell": "lstm", "hidden": 256}, "torch-rnn": {"cell": "rnn", "hidden": 384}}


def flags(settings: dict) -> list[str]:
    out = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False:
            out += [flag, str(value)]
    return out


def ours(name: str, settings: dict, corpus: Path, out: Path, seconds: float) -> tuple[list[str], Path]:
    run = out / name
    cmd = [sys.executable, "-m", "rnn_gpu", "train", str(corpus), "--out", str(run), "--backend", "numpy",
           "--time", str(seconds), "--eval-every", "500", "--force", "--quiet", *flags({**BASELINE, **settings})]
    return cmd, run / "metrics.jsonl"


def theirs(name: str, corpus: Path, out: Path, seconds: float, script: Path) -> tuple[list[str], Path]:
    recipe = {**BASELINE, **TORCH[name]}
    cmd = [sys.executable, str(script), str(corpus), "--device", "cpu", "--cell", recipe["cell"], "--layers",
           str(recipe["layers"]), "--hidden", str(recipe["hidden"]), "--batch", str(recipe["batch"]), "--seq",
           str(recipe["seq"]), "--dropout", str(recipe["dropout"]), "--lr", str(recipe["lr"]), "--warmup",
           str(recipe["warmup"]), "--seconds", str(seconds), "--eval-every", "500"]
    return cmd, out / f"{name}.jsonl"


def result(name: str, log: Path, settings: dict) -> dict:
    """The last record of a run: steps, validation and train loss."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if name.startswith("torch"):
        final = records[-1]
        return {"steps": final["steps"], "val_loss": final["val_loss"], "train_loss": records[-2].get("train_loss"),
                "settings": TORCH[name]}
    last = records[-1]
    return {"steps": last["step"], "val_loss": last.get("val_loss"), "train_loss": last["train_loss"],
            "settings": settings}


def run_pair(jobs: list, out: Path) -> list[dict]:
    """Starts the (name, cmd, log, settings) jobs together, one core each; returns their rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load0, started, procs = os.getloadavg()[0], time.time(), []
    for name, cmd, log, _ in jobs:
        stdout = log.open("w") if name.startswith("torch") else (out / f"{name}.out").open("w")
        procs.append((subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env), stdout))
    for proc, stdout in procs:
        proc.wait()
        stdout.close()
    rows = []
    for (name, _, log, settings), (proc, _) in zip(jobs, procs, strict=True):
        row = {"name": name, "returncode": proc.returncode, "beside": [j[0] for j in jobs if j[0] != name],
               "load_start": load0, "load_end": os.getloadavg()[0], "wall_s": round(time.time() - started, 1)}
        if proc.returncode == 0:
            row.update(result(name, log, settings))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path(f"bench/results/ablation-{time.strftime('%Y-%m-%d')}"))
    parser.add_argument("--torch-quality", type=Path, default=Path("../shared/tools/torch_quality.py"))
    parser.add_argument("--only", default="", help="comma-separated variant names (default all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    jobs = [(n, *ours(n, VARIANTS[n], args.corpus, args.out, args.seconds), VARIANTS[n]) for n in names]
    lstm = ("torch-lstm", *theirs("torch-lstm", args.corpus, args.out, args.seconds, args.torch_quality), {})
    rows = run_pair([jobs[0], lstm], args.out)  # the baseline beside PyTorch's LSTM
    for i in range(1, len(jobs), 2):
        rows += run_pair(jobs[i:i + 2], args.out)
    base = next((r["val_loss"] for r in rows if r["name"] == "baseline" and r.get("val_loss")), None)
    better = [r for r in rows if base is not None and r["name"] in VARIANTS and r.get("val_loss")
              and r["val_loss"] < base - COMBINE_MARGIN]
    combined = {k: v for r in better for k, v in VARIANTS[r["name"]].items()}
    rows += run_pair([("combined", *ours("combined", combined, args.corpus, args.out, args.seconds), combined),
                      ("torch-rnn", *theirs("torch-rnn", args.corpus, args.out, args.seconds, args.torch_quality),
                       {})], args.out)
    summary = {"corpus": str(args.corpus), "seconds": args.seconds, "baseline": BASELINE, "combined": combined,
               "cpu": Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t"),
               "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
