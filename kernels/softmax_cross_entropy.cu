/* The output layer's loss and gradient in one pass over the logits.
 *
 * For each row n of O (N, V): row_loss[n] = log(sum_v exp(O[n][v])) - O[n][y]
 * with y = targets[n], computed stably (the row maximum subtracted first);
 * O[n] becomes (softmax(O[n]) - onehot(y)) / N, the gradient of the mean
 * loss. Two variants, chosen per shape (rnn_gpu/kernels/runner.py):
 *
 *   softmax_cross_entropy         one thread a row: a character vocabulary,
 *                                 tens to hundreds of entries
 *   softmax_cross_entropy_groups  one block a row, its threads striding over
 *                                 the row, the maximum and the sum reduced
 *                                 through shared memory: a word vocabulary,
 *                                 thousands of entries
 */
#include "portable.h"

KERNEL void softmax_cross_entropy(GLOBAL real *O, const GLOBAL idx_t *targets, GLOBAL real *row_loss, int N,
                                  int V)
{
    for (int n = BLOCK_ID * BLOCK_SIZE + THREAD_ID; n < N; n += GRID_SIZE * BLOCK_SIZE) {
        GLOBAL real *o = O + (idx_t)n * V;
        int y = (int)targets[n];
        real m = o[0];
        for (int v = 1; v < V; ++v)
            m = fmax(m, o[v]);
        real target = o[y] - m, sum = 0;
        for (int v = 0; v < V; ++v) {
            o[v] = exp(o[v] - m);
            sum += o[v];
        }
        row_loss[n] = log(sum) - target;
        for (int v = 0; v < V; ++v)
            o[v] = (o[v] / sum - (real)(v == y)) / N;
    }
}

/* The maximum (is_max) or the sum of v over the block, returned to every
 * thread; `scratch` holds one real per thread. Any block size: each round
 * folds the upper part of what is left onto the lower. Every thread of the
 * block must call it. */
DEVICE_FN real block_reduce(SHARED_PTR real *scratch, real v, int is_max)
{
    const int t = THREAD_ID;
    scratch[t] = v;
    SYNC_BLOCK();
    for (int left = BLOCK_SIZE; left > 1;) {
        const int fold = (left + 1) / 2;
        if (t + fold < left)
            scratch[t] = is_max ? fmax(scratch[t], scratch[t + fold]) : scratch[t] + scratch[t + fold];
        SYNC_BLOCK();
        left = fold;
    }
    v = scratch[0];
    SYNC_BLOCK(); /* everyone has read it before the next call writes */
    return v;
}

/* Launched with BLOCK_SIZE reals of dynamic shared memory. */
KERNEL void softmax_cross_entropy_groups(GLOBAL real *O, const GLOBAL idx_t *targets, GLOBAL real *row_loss, int N,
                                         int V DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    for (int n = BLOCK_ID; n < N; n += GRID_SIZE) {
        GLOBAL real *o = O + (idx_t)n * V;
        const int y = (int)targets[n];
        const real target = o[y]; /* read before the first barrier: nothing is written until after it */
        real m = o[0];
        for (int v = THREAD_ID; v < V; v += BLOCK_SIZE)
            m = fmax(m, o[v]);
        m = block_reduce(dynamic_shared, m, 1);
        real sum = 0;
        for (int v = THREAD_ID; v < V; v += BLOCK_SIZE) {
            const real e = exp(o[v] - m);
            o[v] = e;
            sum += e;
        }
        sum = block_reduce(dynamic_shared, sum, 0);
        for (int v = THREAD_ID; v < V; v += BLOCK_SIZE)
            o[v] = (o[v] / sum - (real)(v == y)) / N;
        if (THREAD_ID == 0)
            row_loss[n] = log(sum) - (target - m);
    }
}
