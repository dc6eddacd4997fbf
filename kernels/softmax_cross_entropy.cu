/* The output layer's loss and gradient in one pass over the logits.
 *
 * For each row n of O (N, V): row_loss[n] = log(sum_v exp(O[n][v])) - O[n][y]
 * with y = targets[n], computed stably (the row maximum subtracted first);
 * O[n] becomes (softmax(O[n]) - onehot(y)) / N, the gradient of the mean
 * loss. One thread a row: V is a vocabulary, tens to hundreds of entries.
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
