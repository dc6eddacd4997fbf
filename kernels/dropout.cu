/* Dropout masks from a counter: rnn_gpu/dropout.py defines the function
 * (and says why this one); this is the same function, bit for bit.
 *
 * For the mask on layer `layer`'s states at training step (step_hi:step_lo)
 * of a run seeded `seed`, row (t, stream) has the key
 *     (w0, w1) = Philox4x32-10(counter (t, stream, step_lo, step_hi), key (seed, layer))
 * and the unit pair j = (2j, 2j+1) the hash h = mix32(j ^ w0) ^ w1: unit 2j
 * is kept iff its low 16 bits are >= threshold, unit 2j+1 iff its high 16
 * bits are. Only 32-bit unsigned arithmetic, which CUDA and OpenCL C share.
 *
 * Arrays are (T, B, H) row-major over this process's B streams; stream b
 * of them is the global stream first_stream + b. DROPOUT_LANES threads
 * share a row: each computes the row's key once and takes every
 * DROPOUT_LANES-th unit pair, so neighbouring threads touch neighbouring
 * memory. Every loop strides: any launch shape is correct.
 */
#include "portable.h"

#define DROPOUT_LANES 32

typedef struct {
    unsigned int w0, w1;
} row_key;

/* The first two words of Random123's philox4x32_R(10, counter, key). */
DEVICE_FN row_key dropout_row_key(unsigned int t, unsigned int stream, unsigned int step_lo, unsigned int step_hi,
                                  unsigned int seed, unsigned int layer)
{
    unsigned int c0 = t, c1 = stream, c2 = step_lo, c3 = step_hi, k0 = seed, k1 = layer;
    for (int round = 0; round < 10; ++round) {
        const unsigned int hi0 = MUL_HI(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned int hi1 = MUL_HI(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    row_key key = {c0, c1};
    return key;
}

/* lowbias32: a bijective xorshift-multiply finaliser. */
DEVICE_FN unsigned int mix32(unsigned int x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

DEVICE_FN unsigned int pair_hash(row_key key, int j) { return mix32((unsigned int)j ^ key.w0) ^ key.w1; }

/* The key of row `row` = t * B + b of a (T, B, H) array. */
DEVICE_FN row_key key_of_row(int row, int B, unsigned int first_stream, unsigned int seed, unsigned int layer,
                             unsigned int step_lo, unsigned int step_hi)
{
    return dropout_row_key((unsigned int)(row / B), first_stream + (unsigned int)(row % B), step_lo, step_hi, seed,
                           layer);
}

/* y = x * mask, element by element; y may be x itself (in place). */
KERNEL void dropout_apply(const GLOBAL real *x, GLOBAL real *y, int rows, int B, int H, unsigned int first_stream,
                          unsigned int seed, unsigned int layer, unsigned int step_lo, unsigned int step_hi,
                          unsigned int threshold, real scale)
{
    const int pairs = (H + 1) / 2;
    for (idx_t i = (idx_t)BLOCK_ID * BLOCK_SIZE + THREAD_ID; i < (idx_t)rows * DROPOUT_LANES;
         i += (idx_t)GRID_SIZE * BLOCK_SIZE) {
        const int row = (int)(i / DROPOUT_LANES);
        const row_key key = key_of_row(row, B, first_stream, seed, layer, step_lo, step_hi);
        for (int j = (int)(i % DROPOUT_LANES); j < pairs; j += DROPOUT_LANES) {
            const unsigned int h = pair_hash(key, j);
            const idx_t u = (idx_t)row * H + 2 * j;
            y[u] = x[u] * ((h & 0xFFFFu) >= threshold ? scale : (real)0);
            if (2 * j + 1 < H)
                y[u + 1] = x[u + 1] * ((h >> 16) >= threshold ? scale : (real)0);
        }
    }
}

/* The hashes themselves, (T, B, ceil(H/2)): the tests compare them with NumPy's. */
KERNEL void dropout_hashes(GLOBAL unsigned int *out, int rows, int B, int H, unsigned int first_stream,
                           unsigned int seed, unsigned int layer, unsigned int step_lo, unsigned int step_hi)
{
    const int pairs = (H + 1) / 2;
    for (idx_t i = (idx_t)BLOCK_ID * BLOCK_SIZE + THREAD_ID; i < (idx_t)rows * DROPOUT_LANES;
         i += (idx_t)GRID_SIZE * BLOCK_SIZE) {
        const int row = (int)(i / DROPOUT_LANES);
        const row_key key = key_of_row(row, B, first_stream, seed, layer, step_lo, step_hi);
        for (int j = (int)(i % DROPOUT_LANES); j < pairs; j += DROPOUT_LANES)
            out[(idx_t)row * pairs + j] = pair_hash(key, j);
    }
}
