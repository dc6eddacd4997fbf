/* Kernels that exercise portable.h's building blocks on their own, so each
 * is checked on PoCL (and compiled by NVRTC) before a recurrence variant
 * relies on it. */
#include "portable.h"

/* out[i] = the sum of x over the group of `width` consecutive threads holding x[i]. */
KERNEL void group_sum_test(GLOBAL const real *x, GLOBAL real *out, int n, int width DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    const int i = BLOCK_ID * BLOCK_SIZE + THREAD_ID;
    real v = i < n ? x[i] : (real)0;
    v = group_sum(dynamic_shared, v, width);
    if (i < n)
        out[i] = v;
}
