/* The tanh recurrence of a vanilla RNN, forward and backward through time,
 * with the whole time loop inside the kernel.
 *
 *   forward:  Y[t] = tanh(X[t] + Y[t-1] @ W.T),             Y[-1] = init
 *   backward: Y[t] = (1 - Hs[t]^2) * (X[t] + Y[t+1] @ W),   Y[T]  = init (zeros)
 *
 * Arrays are row-major: X, Y, Hs (T, B, H); W (H, H); init (B, H). The
 * backward pass walks time in reverse: step s is time t = T-1-s.
 *
 * Two kernels share the step code (`step_unit_rows`):
 *   recurrence_tiled   each block owns TILE_ROWS batch rows and all H units,
 *                      W in shared memory; blocks never talk to each other.
 *   recurrence_units   each block owns a slice of units (and of batch rows),
 *                      its columns of W in shared memory; blocks exchange the
 *                      states through global memory and meet at a grid-wide
 *                      barrier after every step of [s_begin, s_end). Launched
 *                      cooperatively over all steps, or once per step, where
 *                      the kernel boundary is the barrier.
 * All loops stride, so any T, B, H is correct whatever the launch shape.
 */
#include "portable.h"

/* The weight linking input unit i to output unit o. */
DEVICE_FN real coefficient(const GLOBAL real *W, int H, int i, int o, int backward)
{
    return backward ? W[(idx_t)i * H + o] : W[(idx_t)o * H + i];
}

DEVICE_FN int time_of_step(int s, int T, int backward) { return backward ? T - 1 - s : s; }

/* The states that step s reads: init at the first step, else the output of
 * the step before. */
DEVICE_FN const GLOBAL real *previous_states(const GLOBAL real *init, const GLOBAL real *Y,
                                             int s, int T, int B, int H, int backward)
{
    if (s == 0)
        return init;
    int t_prev = backward ? T - s : s - 1;
    return Y + (idx_t)t_prev * B * H;
}

/* Ms[i * width + k] = coefficient(i, o0 + k); zero for units past H. */
DEVICE_FN void load_coefficients(SHARED_PTR real *Ms, const GLOBAL real *W, int H, int o0,
                                 int width, int backward)
{
    idx_t n = (idx_t)H * width;
    for (idx_t e = THREAD_ID; e < n; e += BLOCK_SIZE) {
        int i = (int)(e / width), o = o0 + (int)(e % width);
        Ms[e] = o < H ? coefficient(W, H, i, o, backward) : (real)0;
    }
}

/* Copies `count` rows from row r0 of src (B, H) into dst (row stride
 * `stride`), zeros for rows at or past row_end. */
DEVICE_FN void stage_rows(SHARED_PTR real *dst, int stride, const GLOBAL real *src, int r0,
                          int count, int row_end, int H)
{
    for (idx_t e = THREAD_ID; e < (idx_t)count * H; e += BLOCK_SIZE) {
        int r = (int)(e / H), i = (int)(e % H);
        dst[r * stride + i] = r0 + r < row_end ? LOAD_FROM_OTHER_BLOCKS(src + (idx_t)(r0 + r) * H + i)
                                               : (real)0;
    }
}

/* One thread's share of one step: output unit o (column k of Ms) for the
 * TILE_ROWS rows r0.. staged in `rows`. Writes Y[t] for rows below row_end
 * and leaves the new values in y. */
DEVICE_FN void step_unit_rows(const SHARED_PTR real *Ms, int width, int k, const SHARED_PTR real *rows,
                              int stride, int H, const GLOBAL real *X, const GLOBAL real *Hs,
                              GLOBAL real *Y, int t, int r0, int row_end, int B, int o, int backward,
                              real *y)
{
    UNROLL for (int r = 0; r < TILE_ROWS; ++r) y[r] = 0;
    for (int i = 0; i < H; ++i) {
        real m = Ms[i * width + k];
        UNROLL for (int r = 0; r < TILE_ROWS; ++r) y[r] += m * rows[r * stride + i];
    }
    UNROLL for (int r = 0; r < TILE_ROWS; ++r) {
        if (r0 + r < row_end) {
            idx_t at = ((idx_t)t * B + r0 + r) * H + o;
            real pre = X[at] + y[r];
            real h = backward ? Hs[at] : (real)0;
            y[r] = backward ? ((real)1 - h * h) * pre : TANH(pre);
            Y[at] = y[r];
        }
    }
}

KERNEL void recurrence_tiled(const GLOBAL real *X, const GLOBAL real *W, const GLOBAL real *Hs,
                             const GLOBAL real *init, GLOBAL real *Y, int T, int B, int H,
                             int backward DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    SHARED_PTR real *Ms = dynamic_shared;                         /* H * H */
    SHARED_PTR real *buffers = dynamic_shared + (idx_t)H * H;     /* 2 * TILE_ROWS * H */
    load_coefficients(Ms, W, H, 0, H, backward);
    for (int r0 = BLOCK_ID * TILE_ROWS; r0 < B; r0 += GRID_SIZE * TILE_ROWS) {
        stage_rows(buffers, H, init, r0, TILE_ROWS, B, H);
        SYNC_BLOCK();
        for (int s = 0; s < T; ++s) {
            SHARED_PTR real *current = buffers + (s & 1) * TILE_ROWS * H;
            SHARED_PTR real *next = buffers + ((s + 1) & 1) * TILE_ROWS * H;
            int t = time_of_step(s, T, backward);
            for (int o = THREAD_ID; o < H; o += BLOCK_SIZE) {
                real y[TILE_ROWS];
                step_unit_rows(Ms, H, o, current, H, H, X, Hs, Y, t, r0, B, B, o, backward, y);
                UNROLL for (int r = 0; r < TILE_ROWS; ++r) next[r * H + o] = r0 + r < B ? y[r] : (real)0;
            }
            SYNC_BLOCK();
        }
    }
}

/* All blocks of the grid wait here for each other. Only valid when every
 * block is resident (a cooperative launch). state: {arrived, generation},
 * zero before the first use; it is left ready for the next. */
DEVICE_FN void grid_barrier(GLOBAL unsigned int *state, unsigned int blocks)
{
    MEMORY_FENCE();
    SYNC_BLOCK();
    if (THREAD_ID == 0) {
        volatile GLOBAL unsigned int *generation = state + 1;
        unsigned int seen = *generation;
        MEMORY_FENCE();
        if (ATOMIC_ADD(state, 1u) == blocks - 1u) {
            ATOMIC_EXCHANGE(state, 0u);
            MEMORY_FENCE();
            ATOMIC_ADD(state + 1, 1u);
        } else {
            while (*generation == seen) {
            }
        }
        MEMORY_FENCE();
    }
    SYNC_BLOCK();
}

/* Work item = (unit slice, batch slice): units [o0, o0 + width), rows
 * [b0, b0 + slice_rows). The block's threads form groups of `width`; each
 * group carries TILE_ROWS rows, so a pass stages groups * TILE_ROWS rows. */
KERNEL void recurrence_units(const GLOBAL real *X, const GLOBAL real *W, const GLOBAL real *Hs,
                             const GLOBAL real *init, GLOBAL real *Y, int T, int B, int H,
                             int backward, int s_begin, int s_end, int width, int slice_rows,
                             GLOBAL unsigned int *barrier_state DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    int stride = H + 1; /* rows of different thread groups fall in different banks */
    int groups = BLOCK_SIZE / width;
    int pass_rows = groups * TILE_ROWS;
    int k = THREAD_ID % width, group = THREAD_ID / width;
    int unit_slices = (H + width - 1) / width;
    int items = unit_slices * ((B + slice_rows - 1) / slice_rows);
    int resident = items <= GRID_SIZE;
    SHARED_PTR real *Ms = dynamic_shared;                      /* H * width */
    SHARED_PTR real *rows = dynamic_shared + (idx_t)H * width; /* pass_rows * stride */

    if (resident && BLOCK_ID < items)
        load_coefficients(Ms, W, H, (BLOCK_ID % unit_slices) * width, width, backward);
    for (int s = s_begin; s < s_end; ++s) {
        int t = time_of_step(s, T, backward);
        const GLOBAL real *prev = previous_states(init, Y, s, T, B, H, backward);
        for (int item = BLOCK_ID; item < items; item += GRID_SIZE) {
            int o0 = (item % unit_slices) * width;
            int b0 = (item / unit_slices) * slice_rows;
            int b1 = MIN(B, b0 + slice_rows);
            if (!resident) {
                SYNC_BLOCK();
                load_coefficients(Ms, W, H, o0, width, backward);
            }
            for (int p0 = b0; p0 < b1; p0 += pass_rows) {
                SYNC_BLOCK();
                stage_rows(rows, stride, prev, p0, pass_rows, b1, H);
                SYNC_BLOCK();
                if (group < groups && o0 + k < H) {
                    real y[TILE_ROWS];
                    step_unit_rows(Ms, width, k, rows + group * TILE_ROWS * stride, stride, H, X, Hs, Y, t,
                                   p0 + group * TILE_ROWS, b1, B, o0 + k, backward, y);
                }
            }
        }
        if (s + 1 < s_end)
            grid_barrier(barrier_state, (unsigned int)GRID_SIZE);
    }
}
