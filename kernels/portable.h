/* The few keywords that differ between CUDA C++ (NVRTC, nvcc) and OpenCL C,
 * so that one kernel source compiles as both.
 *
 * Compile-time defines:
 *   REAL_IS_DOUBLE  1 for double, 0 (default) for float
 *   TILE_ROWS       batch rows one thread carries in registers (default 4)
 *   TILE_UNITS      hidden units one thread carries in registers (default 4;
 *                   a multiple of 4: they are read four at a time)
 *   SMALL_K         weights one thread keeps in registers in recurrence_small (default 32)
 *   CHECK_ALIGNMENT OpenCL only: LOAD4 of a pointer not 16-byte aligned gives NaN
 *
 * Shared memory: SHARED_PTR qualifies a pointer INTO shared memory. It is
 * not CUDA's __shared__, which on a pointer would put the pointer itself in
 * shared memory. The dynamic shared buffer is an `extern __shared__` array in
 * CUDA and a `__local` kernel argument in OpenCL: kernels list
 * DYNAMIC_SHARED_ARG last in their parameters and open with
 * DYNAMIC_SHARED_DECL. The buffer starts 16-byte aligned.
 *
 * MUL_HI(a, b): the high 32 bits of the 64-bit product of two unsigned ints.
 *
 * LOAD4(p) reads four consecutive reals from shared memory as a real4 (one
 * 128-bit load in float); p must be 16-byte aligned. COMPONENT(v, j) is
 * v.x, v.y, v.z or v.w for a constant j.
 *
 * group_sum(scratch, v, width): the sum of v over this thread's group of
 * `width` consecutive threads (a power of two up to 32, groups aligned to
 * multiples of width), returned to every thread of the group. CUDA: a
 * butterfly of warp shuffles (__shfl_xor_sync), no shared memory and no
 * barrier. OpenCL: the same butterfly through `scratch` (shared, one real per
 * thread of the block) with block barriers, so the sums come out bit for bit
 * the same; every thread of the block must call it. (OpenCL sub-group
 * shuffles need cl_khr_subgroup_shuffle, which the PoCL CPU device lacks.)
 */
#ifndef RNN_GPU_PORTABLE_H
#define RNN_GPU_PORTABLE_H

#ifndef REAL_IS_DOUBLE
#define REAL_IS_DOUBLE 0
#endif
#ifndef TILE_ROWS
#define TILE_ROWS 4
#endif
#ifndef TILE_UNITS
#define TILE_UNITS 4
#endif
#ifndef SMALL_K
#define SMALL_K 32
#endif
#if TILE_UNITS % 4 != 0
#error "TILE_UNITS must be a multiple of 4"
#endif

#ifdef __OPENCL_VERSION__ /* ------------------------------------ OpenCL C */

#if REAL_IS_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
typedef double4 real4;
#else
typedef float real;
typedef float4 real4;
#endif
typedef long idx_t;

#define KERNEL __kernel
#define GLOBAL __global
#define SHARED_PTR __local
#define DEVICE_FN static inline
#define UNROLL _Pragma("unroll")
#define THREAD_ID ((int)get_local_id(0))
#define BLOCK_ID ((int)get_group_id(0))
#define BLOCK_SIZE ((int)get_local_size(0))
#define GRID_SIZE ((int)get_num_groups(0))
#define SYNC_BLOCK() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#define MEMORY_FENCE() mem_fence(CLK_GLOBAL_MEM_FENCE)
#define ATOMIC_ADD(p, v) atomic_add((volatile __global unsigned int *)(p), (v))
#define ATOMIC_EXCHANGE(p, v) atomic_xchg((volatile __global unsigned int *)(p), (v))
#define LOAD_FROM_OTHER_BLOCKS(p) (*(p))
#define TANH(x) tanh(x)
#define MUL_HI(a, b) mul_hi((uint)(a), (uint)(b))
#define DYNAMIC_SHARED_ARG , __local real *dynamic_shared
#define DYNAMIC_SHARED_DECL
#define LAUNCH_BOUNDS(threads)
#if CHECK_ALIGNMENT /* CUDA faults on a misaligned 128-bit load; here it gives NaN, which tests catch */
DEVICE_FN real4 LOAD4(const __local real *p) { return ((size_t)p & 15) ? (real4)(NAN) : vload4(0, p); }
#else
#define LOAD4(p) vload4(0, (p))
#endif

#else /* ------------------------------------------------------ CUDA C++ */

#if REAL_IS_DOUBLE
typedef double real;
typedef struct {
    double x, y, z, w;
} real4; /* CUDA's own double4 is deprecated; two 128-bit loads fill it */
#define TANH(x) tanh(x)
static __device__ __forceinline__ real4 LOAD4(const double *p)
{
    double2 a = *(const double2 *)p, b = *(const double2 *)(p + 2);
    real4 v = {a.x, a.y, b.x, b.y};
    return v;
}
#else
typedef float real;
typedef float4 real4;
#define TANH(x) tanhf(x)
#define LOAD4(p) (*(const real4 *)(p))
#endif
typedef long long idx_t;

#define KERNEL extern "C" __global__
/* The most threads a block of this kernel has: the compiler budgets registers for it. */
#define LAUNCH_BOUNDS(threads) __launch_bounds__(threads)
#define GLOBAL
#define SHARED_PTR
#define DEVICE_FN static __device__ __forceinline__
#define UNROLL _Pragma("unroll")
#define THREAD_ID ((int)threadIdx.x)
#define BLOCK_ID ((int)blockIdx.x)
#define BLOCK_SIZE ((int)blockDim.x)
#define GRID_SIZE ((int)gridDim.x)
#define SYNC_BLOCK() __syncthreads()
#define MEMORY_FENCE() __threadfence()
#define ATOMIC_ADD(p, v) atomicAdd((unsigned int *)(p), (v))
#define ATOMIC_EXCHANGE(p, v) atomicExch((unsigned int *)(p), (v))
/* Written by another block during this launch: read through L2, not L1. */
#define LOAD_FROM_OTHER_BLOCKS(p) __ldcg(p)
#define MUL_HI(a, b) __umulhi((unsigned int)(a), (unsigned int)(b))
#define DYNAMIC_SHARED_ARG
#define DYNAMIC_SHARED_DECL                                                  \
    extern __shared__ __align__(16) unsigned char dynamic_shared_bytes[];    \
    real *dynamic_shared = (real *)dynamic_shared_bytes;

#endif

#ifdef __OPENCL_VERSION__
DEVICE_FN real group_sum(__local real *scratch, real v, int width)
{
    const int t = THREAD_ID;
    for (int offset = width / 2; offset > 0; offset /= 2) {
        scratch[t] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        v += scratch[t ^ offset];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return v;
}
#else
DEVICE_FN real group_sum(real *scratch, real v, int width)
{
    (void)scratch;
    for (int offset = width / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset, width);
    return v;
}
#endif

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define ROUND_UP4(n) (((n) + 3) & ~3)
#define COMPONENT(v, j) ((j) == 0 ? (v).x : (j) == 1 ? (v).y : (j) == 2 ? (v).z : (v).w)

#endif /* RNN_GPU_PORTABLE_H */
