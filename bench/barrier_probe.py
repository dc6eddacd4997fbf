"""Measures grid-wide barrier designs on a GPU: N barriers in one
cooperative launch, nothing else, one block per multiprocessor."""

import cupy

from rnn_gpu.kernels import kernel_source

PROBES = r'''
#include <cooperative_groups.h>
extern "C" __global__ void cg_sync(int n, unsigned int* state) {
    cooperative_groups::grid_group g = cooperative_groups::this_grid();
    for (int i = 0; i < n; ++i) g.sync();
}
extern "C" __global__ void ours(int n, unsigned int* state) {
    for (int i = 0; i < n; ++i) grid_barrier(state, gridDim.x);
}
extern "C" __global__ void ours_no_fence(int n, unsigned int* state) {
    for (int i = 0; i < n; ++i) {
        __syncthreads();
        if (threadIdx.x == 0) {
            volatile unsigned int* c = state;
            unsigned int add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1u) : 1u;
            unsigned int before = atomicAdd(state, add);
            while (((before ^ *c) & 0x80000000u) == 0) {}
        }
        __syncthreads();
    }
}
extern "C" __global__ void empty_loop(int n, unsigned int* state) {
    for (int i = 0; i < n; ++i) __syncthreads();
}
'''

source = kernel_source() + PROBES
module = cupy.RawModule(code=source, options=("-DREAL_IS_DOUBLE=0",), enable_cooperative_groups=True)
sms = cupy.cuda.runtime.getDeviceProperties(0)["multiProcessorCount"]
state = cupy.zeros(2, dtype=cupy.uint32)
for name in ("empty_loop", "cg_sync", "ours", "ours_no_fence"):
    k = module.get_function(name)
    for threads in (32, 512):
        n = 2000
        k((sms,), (threads,), (cupy.int32(10), state))
        cupy.cuda.Device().synchronize()
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        k((sms,), (threads,), (cupy.int32(n), state))
        stop.record()
        stop.synchronize()
        per_barrier_us = cupy.cuda.get_elapsed_time(start, stop) * 1e3 / n
        print(f"{name:14} blocks={sms} threads={threads}: {per_barrier_us:.2f} us per barrier")
