"""A soak of faults: a 2-rank MPI training run interrupted again and again, at
random moments, by SIGTERM, SIGINT, SIGHUP and SIGKILL of one rank or of the
launcher, each time resumed with --resume until it reaches its step count.
Not a test (minutes); tests/test_soak.py runs a short one.

    python -m bench.soak [--steps 1500] [--faults 40] [--seed 0] [--within-steps N] [--dir DIR]

Then it checks, and reports as one JSON object: every checkpoint written
loads; metrics.jsonl holds every step exactly once; the final parameters
are bit-identical to an uninterrupted 2-rank run (a constant rate, so the
schedule does not depend on the run's length; resuming is exact, so this
holds after SIGKILL too); a SIGKILL loses at most the steps since the last
checkpoint (`steps_lost` counts the steps logged past the checkpoint the
next attempt resumed from). Signals go to the launcher (SIGTERM, SIGINT,
which it forwards) or to the ranks (SIGHUP: MPICH's launcher does not
forward it, and dies of it).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnn_gpu.checkpoint import BEST_FILENAME, FILENAME, load_checkpoint

SIGNAL_FAULTS = ("SIGTERM", "SIGINT", "SIGHUP")
KILL_FAULTS = ("kill -9 rank", "kill -9 launcher")
JOB_TIMEOUT = 60  # seconds any one attempt may take to end once faulted


def job_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "SLURM_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def mpiexec_path() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("error: no mpiexec (pip install 'rnn_gpu[mpi]')")
    return found


def train_command(corpus: Path, out: Path, steps: int, checkpoint_every: int, resume: bool) -> list[str]:
    """The run's command; resumed, without the settings its checkpoint fixes."""
    model = ["--hidden", "128", "--batch", "8", "--seq", "32", "--val-chars", "4096", "--dtype", "float64",
             "--lr-schedule", "constant"]
    return [mpiexec_path(), "-n", "2", sys.executable, "-m", "rnn_gpu", "train", str(corpus), "--out", str(out),
            "--steps", str(steps), *(["--resume"] if resume else model), "--log-every", "1",
            "--eval-every", str(4 * checkpoint_every), "--checkpoint-every", str(checkpoint_every),
            "--backend", "numpy", "--quiet"]


def logged_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by SIGKILL mid-write: the resume rewinds past it
            steps.append(json.loads(line)["step"])
    return steps


def command_line(pid: int) -> str | None:
    """The process's command line; None when it is gone. A process listed a
    moment ago may have exited since (an attempt ends while it is faulted):
    /proc/PID then is missing (FileNotFoundError) or being torn down
    (ProcessLookupError), and the process is no candidate any more."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def last_logged_step(out: Path) -> int:
    """The last whole line's step in metrics.jsonl (0 before any)."""
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        with contextlib.suppress(ValueError, KeyError, TypeError):  # a line being written, or cut by SIGKILL
            return int(json.loads(line)["step"])
    return 0


def still_running_at_the_moment(proc: subprocess.Popen, seconds: float, out: Path, by_step: int | None) -> bool:
    """Waits for the moment to fault the attempt: `seconds` after its start,
    or sooner once metrics.jsonl logs step `by_step` (when given: a fast
    machine would otherwise run most of the steps between two faults and
    finish before the faults planned for it). False when the attempt ended
    first."""
    if by_step is None:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return True
        return False
    deadline = time.monotonic() + seconds
    while proc.poll() is None:
        if time.monotonic() >= deadline or last_logged_step(out) >= by_step:
            return True
        time.sleep(0.01)
    return False


def rank_pids(launcher: int) -> list[int]:
    """The launcher's descendants that run the trainer (those alive as they are read)."""
    found, frontier = [], [launcher]
    while frontier:
        children = subprocess.run(["pgrep", "-P", ",".join(map(str, frontier))], capture_output=True,
                                  text=True).stdout.split()
        frontier = [int(p) for p in children]
        found += frontier
    return [p for p in found if "rnn_gpu" in (command_line(p) or "")]


def signal_if_alive(pid: int, signum: int) -> None:
    """A process that exited since it was listed has nothing left to fault."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def inject(proc: subprocess.Popen, fault: str, rng: random.Random) -> None:
    if fault == "SIGHUP":  # to the ranks, as a scheduler's hangup (MPICH's launcher dies of its own SIGHUP)
        for pid in rank_pids(proc.pid):
            signal_if_alive(pid, signal.SIGHUP)
    elif fault in SIGNAL_FAULTS:
        proc.send_signal(getattr(signal, fault))  # Popen signals only a launcher it has not reaped
    elif fault == "kill -9 launcher":
        proc.kill()
    else:
        ranks = rank_pids(proc.pid)
        if ranks:
            signal_if_alive(rng.choice(ranks), signal.SIGKILL)


def interrupted_while_importing(err: str) -> bool:
    """Python's own KeyboardInterrupt traceback from a SIGINT that came while
    the interpreter was still importing the package, before rnn_gpu handles
    any signal (a known limit, counted apart)."""
    blocks = err.split("Traceback (most recent call last):")
    return len(blocks) > 1 and not blocks[0].strip() and all(
        b.strip().endswith("KeyboardInterrupt") and "_get_module_details" in b for b in blocks[1:])


def checked_checkpoints(out: Path) -> int | None:
    """Loads the run's checkpoints (a damaged one raises); the latest's step."""
    if (out / BEST_FILENAME).exists():
        load_checkpoint(out / BEST_FILENAME)
    return load_checkpoint(out / FILENAME).step if (out / FILENAME).exists() else None


def run_uninterrupted(corpus: Path, out: Path, steps: int, checkpoint_every: int) -> None:
    job = subprocess.run(train_command(corpus, out, steps, checkpoint_every, False), capture_output=True, text=True,
                         env=job_env(), timeout=30 * JOB_TIMEOUT)
    if job.returncode != 0:
        raise SystemExit(f"error: the uninterrupted run failed: {job.stderr.strip()}")


def soak(corpus: Path, work: Path, steps: int, faults: int, kinds, seed: int = 0, checkpoint_every: int = 10,
         wait=(0.3, 3.0), within_steps: int | None = None) -> dict:
    """Runs the soak in `work`; returns its figures (see the module's docstring).
    Each fault comes at a random moment `wait` seconds into its attempt, start-up
    included; with `within_steps`, no later than that many steps past the
    checkpoint the attempt resumed from, so that the faults planned land before
    the run ends however fast the machine trains."""
    rng = random.Random(seed)
    out, reference = work / "soak", work / "reference"
    planned = [kinds[i % len(kinds)] for i in range(faults)]
    rng.shuffle(planned)
    injected, stderr_problems, lost, loads, attempts, survived, failure = {}, [], [], 0, 0, 0, None
    import_interrupts = 0
    after_fault = False
    while True:
        resume = (out / FILENAME).exists()
        resumed_from = checked_checkpoints(out) if resume else 0
        loads += resume
        if resumed_from == steps:  # the fault came after the last checkpoint: nothing left to run
            survived += after_fault
            break
        before = logged_steps(out)
        if after_fault and before:  # what the faulted attempt logged past the checkpoint is done again
            lost.append(max(0, max(before) - resumed_from))
        attempts += 1
        proc = subprocess.Popen(train_command(corpus, out, steps, checkpoint_every, resume), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=job_env(), start_new_session=True)
        fault = planned.pop() if planned else None
        faulted = False
        by_step = None if within_steps is None else resumed_from + within_steps
        if fault and still_running_at_the_moment(proc, rng.uniform(*wait), out, by_step):  # start-up included
            inject(proc, fault, rng)
            injected[fault] = injected.get(fault, 0) + 1
            faulted = True
        try:
            _, err = proc.communicate(timeout=JOB_TIMEOUT if faulted else 30 * JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            failure = f"attempt {attempts} did not end {JOB_TIMEOUT} s after {fault if faulted else 'starting'}: {err}"
            break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if interrupted_while_importing(err):
            import_interrupts += 1
        elif "Traceback" in err or "Abort(" in err or len(err.strip().splitlines()) > 1:
            stderr_problems.append(err)
        if not faulted and proc.returncode != 0:
            failure = err.strip()  # an attempt failed on its own: the soak found a fault it did not inject
            break
        survived += after_fault  # the attempt after a fault resumed and ran on
        after_fault = faulted
        if proc.returncode == 0 and checked_checkpoints(out) == steps:
            survived += faulted  # the fault came as the run finished
            break
    if failure is not None:
        return {"failure": failure, "by_fault": injected, "attempts": attempts}
    run_uninterrupted(corpus, reference, steps, checkpoint_every)
    a, b = load_checkpoint(out / FILENAME), load_checkpoint(reference / FILENAME)
    differing = [k for k in b.params if not np.array_equal(a.params[k], b.params[k])]
    return {"steps": steps, "checkpoint_every": checkpoint_every, "attempts": attempts,
            "faults_injected": sum(injected.values()), "by_fault": injected, "survived": survived,
            "checkpoint_loads": loads, "steps_lost": sum(lost), "most_lost_at_once": max(lost, default=0),
            "metrics_every_step_once": logged_steps(out) == list(range(1, steps + 1)),
            "parameters_bit_identical": not differing, "parameters_differing": differing,
            "stderr_problems": stderr_problems, "sigint_while_importing": import_interrupts, "failure": failure}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--faults", type=int, default=40, help="per soak (signals, then kills)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--within-steps", type=int, default=None,
                        help="fault each attempt no later than this many steps past its checkpoint")
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temporary directory)")
    args = parser.parse_args()
    from rnn_gpu.data.corpus import default_corpus

    work = args.dir or Path(tempfile.mkdtemp(prefix="rnn_gpu_soak_"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text(default_corpus(200_000)[0], encoding="utf-8")
    results = {"date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg()}
    for name, kinds in (("signals", SIGNAL_FAULTS), ("kills", KILL_FAULTS)):
        start = time.perf_counter()
        results[name] = soak(corpus, work / name, args.steps, args.faults, kinds, args.seed, args.checkpoint_every,
                             within_steps=args.within_steps)
        results[name]["seconds"] = time.perf_counter() - start
    print(json.dumps(results))
    if args.dir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
