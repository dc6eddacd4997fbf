"""The NumPy backend's own CPU threads (rnn_gpu/backends/cpu_threads.py):
every split computation against a plain float64 reference and the plain
NumPy backend, and the region's effect on BLAS's thread count."""
import threading
import time

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from rnn_gpu.backends import cpu_threads
from rnn_gpu.backends.base import NumpyBackend
from rnn_gpu.backends.cpu_threads import CpuBackend, CpuThreads
from rnn_gpu.model import CharRNN


def blas_threads() -> list[int]:
    return [lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers]


@pytest.fixture
def tiny_parts(monkeypatch):
    """Splits even the tests' small GEMMs and recurrences."""
    monkeypatch.setattr(cpu_threads, "MIN_PART_FLOPS", 1)


def forced(threads: int) -> CpuBackend:
    """A CPU backend whose every pass runs on `threads` threads of ours."""
    be = CpuBackend(threads=threads)
    be.choose_threads = lambda shape, dtype: threads
    return be


def test_parts_cover_the_rows_once_in_order(rng):
    cpu = CpuThreads(threads=int(rng.integers(2, 6)))
    with cpu.region(cpu.threads):
        for _ in range(50):
            rows, min_rows = int(rng.integers(1, 200)), int(rng.integers(1, 40))
            parts = cpu.parts(rows, min_rows)
            assert parts[0].start == 0 and parts[-1].stop == rows
            assert all(a.stop == b.start for a, b in zip(parts[:-1], parts[1:], strict=True))
            assert len(parts) <= cpu.threads
            assert len(parts) == 1 or min(p.stop - p.start for p in parts) >= min_rows
    assert cpu.parts(100) == [slice(0, 100)]  # outside a region: one part


def test_a_region_holds_blas_at_one_thread_and_restores_it():
    before = blas_threads()
    cpu = CpuThreads(threads=2)
    with pytest.raises(RuntimeError), cpu.region(2):
        assert set(blas_threads()) == {1}
        with cpu.region(2):  # nested: the outer one stays in charge
            pass
        assert set(blas_threads()) == {1}
        raise RuntimeError
    assert blas_threads() == before
    with cpu.region(1):  # one thread of ours is OpenBLAS's own threading
        assert blas_threads() == before


def test_run_runs_every_part_on_its_own_thread_and_waits_for_all():
    cpu = CpuThreads(threads=3)
    seen = {}
    out = np.zeros(9)

    def work(part):
        time.sleep(0.02)
        seen[(part.start, part.stop)] = threading.get_ident()
        out[part] = 1

    with cpu.region(3):
        cpu.run(work, 9)
    assert sorted(seen) == [(0, 3), (3, 6), (6, 9)] and len(set(seen.values())) == 3
    assert out.all()


def test_a_failing_part_fails_the_call_after_the_others_finish():
    cpu = CpuThreads(threads=2)
    out = np.zeros(2)

    def work(part):
        if part.start == 0:
            raise ValueError("main part")
        time.sleep(0.05)
        out[part] = 1

    with cpu.region(2), pytest.raises(ValueError, match="main part"):
        cpu.run(work, 2)
    assert out[1] == 1  # the worker was done when run() raised: nothing writes later

    def worker_fails(part):
        if part.start:
            raise KeyError("worker part")

    with cpu.region(2), pytest.raises(KeyError, match="worker part"):
        cpu.run(worker_fails, 2)


@pytest.mark.parametrize("transposed", [False, True])
def test_split_matmul_matches_float64(rng, tiny_parts, transposed):
    cpu = CpuThreads(threads=3)
    for _ in range(5):
        M, K, N = (int(x) for x in rng.integers(1, 40, size=3))
        a = rng.standard_normal((K, M)).T if transposed else rng.standard_normal((M, K))
        b = rng.standard_normal((K, N))
        out = np.empty((M, N))
        with cpu.region(3):
            cpu.matmul(a, b, out)
        ref = np.array([[sum(a[i, k] * b[k, j] for k in range(K)) for j in range(N)] for i in range(M)])
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_recurrences_split_over_streams_match_the_plain_loop(rng, tiny_parts):
    T, B, H = 6, 7, 5  # 7 streams over 3 threads: uneven groups
    P, G = rng.uniform(-1, 1, (T, B, H)), rng.uniform(-1, 1, (T, B, H))
    W, h0 = rng.uniform(-0.5, 0.5, (H, H)), rng.uniform(-0.5, 0.5, (B, H))
    be = forced(3)
    Hs = be.recurrence_forward(P, W, h0)
    dA, dh0 = be.recurrence_backward(G, Hs, h0, W)
    h, ref_H = h0, []
    for t in range(T):
        h = np.tanh(P[t] + h @ W.T)
        ref_H.append(h)
    np.testing.assert_allclose(Hs, ref_H, rtol=1e-12, atol=1e-14)
    ref_dA, carry = np.zeros_like(G), np.zeros((B, H))
    for t in reversed(range(T)):
        ref_dA[t] = (1 - ref_H[t] ** 2) * (G[t] + carry)
        carry = ref_dA[t] @ W
    np.testing.assert_allclose(dA, ref_dA, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dh0, carry, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layers", [1, 2])
def test_a_threaded_step_equals_one_on_openblas_threads(rng, tiny_parts, layers):
    V, H, T, B = 9, 6, 5, 7
    seed = int(rng.integers(1 << 30))
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    results = []
    for be in (NumpyBackend(), forced(3)):
        model = CharRNN(V, H, be, dtype="float64", seed=seed, layers=layers)
        h0 = rng.uniform(-0.5, 0.5, model.state_shape(B)) if not results else results[0][3]
        loss, grads, dh0, h_last = model.loss_and_grads_with_h0(inputs, targets, h0)
        results.append((loss, {k: v.copy() for k, v in grads.items()}, dh0, h0, h_last))
    (l1, g1, d1, _, h1), (l2, g2, d2, _, h2) = results
    assert l2 == pytest.approx(l1, rel=1e-13)
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-11, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(d2, d1, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(h2, h1, rtol=1e-12, atol=1e-14)


class FakeProbe:
    """A probe that takes `ours` seconds inside a region of ours, else `theirs`,
    on a clock of its own that stands in for cpu_threads' `time` (perf_counter,
    sleep): what is chosen follows from the durations alone, not from how a
    busy machine oversleeps (0.01 s against 0.0102 s is within MIN_GAIN)."""

    def __init__(self, cpu, ours, theirs):
        self.cpu, self.ours, self.theirs, self.made, self.now = cpu, ours, theirs, 0, 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def make(self):
        self.made += 1
        return lambda: self.sleep(self.ours if self.cpu._count > 1 else self.theirs)


@pytest.mark.parametrize("ours, theirs, chosen", [(0.001, 0.02, 2), (0.02, 0.001, 1), (0.01, 0.0102, 1)])
def test_our_threads_are_chosen_only_where_measured_faster(monkeypatch, ours, theirs, chosen):
    monkeypatch.setattr(cpu_threads, "SPIN_SETTLE_S", 0)
    cpu = CpuThreads(threads=2)
    probe = FakeProbe(cpu, ours, theirs)
    monkeypatch.setattr(cpu_threads, "time", probe)
    assert cpu.choose("size", 2, cpu_threads.MIN_STEP_FLOPS, probe.make) == chosen
    assert cpu.choose("size", 2, cpu_threads.MIN_STEP_FLOPS, probe.make) == chosen
    assert probe.made == 1  # measured once per size


def test_small_steps_and_single_thread_blas_are_never_probed():
    def never():
        raise AssertionError("probed")

    assert CpuThreads(threads=2).choose("small", 2, cpu_threads.MIN_STEP_FLOPS - 1, never) == 1
    assert CpuThreads(threads=1).choose("one thread", 1, cpu_threads.MIN_STEP_FLOPS * 8, never) == 1
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as an MPI rank sets it
        cpu = CpuThreads()
        assert cpu.available() == 1
        assert cpu.choose("rank", cpu.available(), cpu_threads.MIN_STEP_FLOPS * 8, never) == 1


def test_kept_choices_are_used_without_measuring():
    def never():
        raise AssertionError("probed")

    cpu = CpuThreads(threads=2)
    cpu.keep([[50, 128, 1024, "<f4", 2, 2], "junk", [1], [7, "x"], [3, 0]])
    assert cpu.choose((50, 128, 1024, "<f4", 2), 2, cpu_threads.MIN_STEP_FLOPS, never) == 2
    assert cpu.chosen() == [[50, 128, 1024, "<f4", 2, 2]]


def test_a_checkpoint_keeps_the_choices(tmp_path):
    from rnn_gpu.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from rnn_gpu.data import Vocab
    from rnn_gpu.model import init_params

    chosen = [[50, 128, 1024, "<f4", 2, 2], [25, 64, 512, "<f4", 2, 1]]
    save_checkpoint(tmp_path / "c.npz", Checkpoint(init_params(3, 4, seed=0), Vocab("bytes", (97, 98, 99)), {},
                                                   cpu_threads=chosen))
    assert load_checkpoint(tmp_path / "c.npz").cpu_threads == chosen
    save_checkpoint(tmp_path / "old.npz", Checkpoint(init_params(3, 4, seed=0), Vocab("bytes", (97, 98, 99)), {}))
    assert load_checkpoint(tmp_path / "old.npz").cpu_threads is None


def test_a_resumed_run_keeps_the_choice_its_checkpoint_made(corpus_file, tmp_path, monkeypatch):
    import rnn_gpu
    from rnn_gpu.checkpoint import load_checkpoint

    monkeypatch.setattr(cpu_threads, "MIN_STEP_FLOPS", 0)  # every size is measured
    monkeypatch.setattr(cpu_threads.CpuThreads, "available", lambda self: 2)
    monkeypatch.setattr(cpu_threads.CpuThreads, "_faster", lambda self, probe, n: True)
    settings = dict(hidden=8, batch=4, seq=6, backend="numpy", eval_every=1000)
    rnn_gpu.train(corpus_file, tmp_path / "run", steps=4, **settings)
    first = load_checkpoint(tmp_path / "run").cpu_threads
    assert first and all(entry[-1] == 2 for entry in first)
    monkeypatch.setattr(cpu_threads.CpuThreads, "_faster", lambda self, probe, n: False)  # a new measurement says 1
    rnn_gpu.train(corpus_file, tmp_path / "run", resume=True, steps=8, **settings)
    after = {tuple(e[:-1]): e[-1] for e in load_checkpoint(tmp_path / "run").cpu_threads}
    assert all(after[tuple(e[:-1])] == 2 for e in first)


def test_the_reference_is_the_plain_loop(rng):
    """base.NumpyBackend: one GEMM per step and np.tanh, bit for bit, on the calling thread."""
    T, B, H = 5, 6, 7
    P = rng.uniform(-1, 1, (T, B, H)).astype(np.float32)
    W = rng.uniform(-0.5, 0.5, (H, H)).astype(np.float32)
    h = rng.uniform(-0.5, 0.5, (B, H)).astype(np.float32)
    threads_before = threading.active_count()
    Hs = NumpyBackend().recurrence_forward(P, W, h)
    assert threading.active_count() == threads_before
    WT = np.ascontiguousarray(W.T)
    for t in range(T):
        h = np.tanh(h @ WT + P[t])
        np.testing.assert_array_equal(Hs[t], h)


@pytest.mark.parametrize("threads", [1, 3])
def test_the_fast_path_matches_the_reference_in_float32(rng, tiny_parts, threads):
    T, B, H = 6, 7, 9
    P, G = rng.uniform(-1, 1, (T, B, H)).astype(np.float32), rng.uniform(-1, 1, (T, B, H)).astype(np.float32)
    W = rng.uniform(-0.5, 0.5, (H, H)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, (B, H)).astype(np.float32)
    ref, fast = NumpyBackend(), forced(threads)
    np.testing.assert_allclose(fast.recurrence_forward(P, W, h0), ref.recurrence_forward(P, W, h0), atol=2e-6)
    Hs = ref.recurrence_forward(P, W, h0)
    for got, want in zip(fast.recurrence_backward(G, Hs, h0, W), ref.recurrence_backward(G, Hs, h0, W), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 3])
def test_every_gemm_of_a_pass_runs_as_its_recurrences_chose(rng, tiny_parts, monkeypatch, threads):
    """No region in the model: the backend runs each GEMM after a recurrence
    on the threads that recurrence chose, with BLAS at one thread under ours."""
    seen = []
    split = CpuThreads.matmul

    def recording(self, a, b, out):
        seen.append((self._count, set(blas_threads())))
        return split(self, a, b, out)

    monkeypatch.setattr(CpuThreads, "matmul", recording)
    be = forced(threads)
    model = CharRNN(9, 6, be, dtype="float32", seed=int(rng.integers(1 << 30)), layers=2)
    inputs, targets = rng.integers(0, 9, (5, 7)), rng.integers(0, 9, (5, 7))
    model.loss_and_grads(inputs, targets, model.zero_state(7))
    model.loss(inputs, targets, model.zero_state(7))
    assert len(seen) > 8
    assert all(count == threads for count, _ in seen)
    if threads > 1:
        assert all(blas == {1} for _, blas in seen)
