/* The tanh recurrence of a vanilla RNN, forward and backward through time,
 * with the whole time loop inside the kernel.
 *
 *   forward:  Y[t] = tanh(X[t] + Y[t-1] @ W.T),             Y[-1] = init
 *   backward: Y[t] = (1 - Hs[t]^2) * (X[t] + Y[t+1] @ W),   Y[T]  = init (zeros)
 *
 * Arrays are row-major: X, Y, Hs (T, B, H); W (H, H); init (B, H). The
 * backward pass walks time in reverse: step s is time t = T-1-s.
 *
 * One step is a small matrix product: for a tile of batch rows and a slice
 * of `width` output units, sum over the H inputs. The kernels compute it
 * with the same step code:
 *   - the block's threads form (lane, group, part): a lane carries
 *     TILE_UNITS units, a group TILE_ROWS rows, a part a share of the inputs
 *     (`accumulate_tile`, registers only). Weights and states are read from
 *     shared memory four at a time, so inputs are padded with zeros to a
 *     multiple of 4 (ROUND_UP4);
 *   - the parts' partial sums meet in shared memory, where each output is
 *     summed and finished element-wise (`finish_outputs`).
 *
 *   recurrence_small   for small H: each thread keeps its share of W in
 *                      registers; a block owns batch rows and their states.
 *                      Its parts meet in `finish_outputs` too.
 *   recurrence_tiled   each block owns batch rows and all H units, with W and
 *                      its rows' states on-chip; blocks never talk.
 *   recurrence_units   each block owns a slice of units and of batch rows,
 *                      its columns of W on-chip; blocks exchange states
 *                      through global memory and meet at a grid-wide barrier
 *                      after each step of [s_begin, s_end). Launched
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

/* A block-wide sweep over a rows x cols grid without a division per
 * element: each thread starts at (r, c) and steps by (r_step, c_step). With
 * at least as many threads as columns, a thread keeps one column and steps
 * over rows; otherwise it steps over columns of every row. */
typedef struct {
    int r, r_step, c, c_step;
} Sweep;

DEVICE_FN Sweep sweep_start(int cols)
{
    Sweep w;
    if (BLOCK_SIZE >= cols) {
        w.r_step = BLOCK_SIZE / cols;
        w.r = THREAD_ID / cols;
        w.c = THREAD_ID % cols;
        w.c_step = cols;
        if (w.r >= w.r_step) /* the remainder threads of the last partial row */
            w.c = cols;
    } else {
        w.r = 0, w.r_step = 1, w.c = THREAD_ID, w.c_step = BLOCK_SIZE;
    }
    return w;
}

/* Copies a rows x cols grid: value = LOAD (of r and c), then STORE(r, c,
 * value). COPY_BATCH loads go out before the first store, so their memory
 * latencies overlap instead of adding up. With skip, the thread's first
 * batch (its first column's first COPY_BATCH rows) is left out: the caller
 * copies it. */
#define COPY_BATCH 8
#define SWEEP_COPY(rows, cols, skip, LOAD, STORE)                                            \
    {                                                                                        \
        Sweep w_ = sweep_start(cols);                                                        \
        for (int c = w_.c; c < (cols); c += w_.c_step)                                       \
            for (int r0_ = w_.r + ((skip) && c == w_.c ? w_.r_step * COPY_BATCH : 0); r0_ < (rows); \
                 r0_ += w_.r_step * COPY_BATCH) {                                            \
                real value_[COPY_BATCH];                                                     \
                UNROLL for (int j_ = 0; j_ < COPY_BATCH; ++j_) {                             \
                    int r = r0_ + j_ * w_.r_step;                                            \
                    value_[j_] = r < (rows) ? (LOAD) : (real)0;                              \
                }                                                                            \
                UNROLL for (int j_ = 0; j_ < COPY_BATCH; ++j_) {                             \
                    int r = r0_ + j_ * w_.r_step;                                            \
                    if (r < (rows))                                                          \
                        STORE(r, c, value_[j_]);                                             \
                }                                                                            \
            }                                                                                \
    }

/* Ms[i * stride + k] = coefficient(i, o0 + k) for i < H, k < width and
 * o0 + k < H; zero in the padding up to ROUND_UP4(H) rows and `stride`
 * columns. */
#define STORE_COEFFICIENT(i, k, v) Ms[(i) * stride + (k)] = (v)
DEVICE_FN void load_coefficients(SHARED_PTR real *Ms, int stride, const GLOBAL real *W, int H,
                                 int o0, int width, int backward)
{
    SWEEP_COPY(ROUND_UP4(H), stride, 0,
               (r < H && c < width && o0 + c < H ? coefficient(W, H, r, o0 + c, backward) : (real)0),
               STORE_COEFFICIENT)
}

/* Where staged row r starts: rows are `stride` apart, plus four words more
 * at each group of TILE_ROWS rows, so that the groups of one warp read
 * their rows four words at a time from different banks even when the stride
 * is a multiple of 32 words. A buffer of n rows holds staged_row(n) reals. */
DEVICE_FN int staged_row(int r, int stride) { return r * stride + r / TILE_ROWS * 4; }

/* Staging: dst[staged_row(r) + c] = src[r0 + r][c0 + c] for r < count,
 * c < cols; zero for rows at or past row_end and in the padding up to
 * ROUND_UP4(cols). */
#define ROW_ELEMENT(r, c)                                                                              \
    ((r0 + (r) < row_end && (c) < cols) ? LOAD_FROM_OTHER_BLOCKS(src + (idx_t)(r0 + (r)) * H + c0 + (c)) \
                                        : (real)0)
#define STORE_ROW_ELEMENT(r, c, v) dst[staged_row(r, stride) + (c)] = (v)
DEVICE_FN void stage_rows(SHARED_PTR real *dst, int stride, const GLOBAL real *src, int H, int r0,
                          int count, int row_end, int c0, int cols)
{
    SWEEP_COPY(count, ROUND_UP4(cols), 0, ROW_ELEMENT(r, c), STORE_ROW_ELEMENT)
}

/* The thread's first batch of a staging (see SWEEP_COPY), loaded ahead:
 * its latency overlaps the sums of the chunk before. */
typedef struct {
    real v[COPY_BATCH];
} RowBatch;

/* The row of element j of the thread's first batch (in column w.c), or -1. */
DEVICE_FN int first_batch_row(Sweep w, int j, int count, int cols)
{
    int r = w.r + j * w.r_step;
    return w.c < ROUND_UP4(cols) && r < count ? r : -1;
}

DEVICE_FN RowBatch load_row_batch(const GLOBAL real *src, int H, int r0, int count, int row_end, int c0, int cols)
{
    Sweep w = sweep_start(ROUND_UP4(cols));
    RowBatch b;
    UNROLL for (int j = 0; j < COPY_BATCH; ++j) {
        int r = first_batch_row(w, j, count, cols);
        b.v[j] = r >= 0 ? ROW_ELEMENT(r, w.c) : (real)0;
    }
    return b;
}

/* stage_rows with the thread's first batch already loaded. */
DEVICE_FN void stage_rows_after(SHARED_PTR real *dst, int stride, RowBatch first, const GLOBAL real *src, int H,
                                int r0, int count, int row_end, int c0, int cols)
{
    Sweep w = sweep_start(ROUND_UP4(cols));
    UNROLL for (int j = 0; j < COPY_BATCH; ++j) {
        int r = first_batch_row(w, j, count, cols);
        if (r >= 0)
            STORE_ROW_ELEMENT(r, w.c, first.v[j]);
    }
    SWEEP_COPY(count, ROUND_UP4(cols), 1, ROW_ELEMENT(r, c), STORE_ROW_ELEMENT)
}

DEVICE_FN void zero_shared(SHARED_PTR real *dst, int n)
{
    for (int e = THREAD_ID; e < n; e += BLOCK_SIZE)
        dst[e] = 0;
}

/* The unit (column of Ms) in a lane's register u: lanes own groups of four
 * units side by side, so a warp's 128-bit loads of one row are contiguous. */
DEVICE_FN int unit_of(int lane, int lanes, int u) { return (u / 4 * lanes + lane) * 4 + u % 4; }

/* acc[r][u] += sum over i in [i_begin, i_end) of Ms[i][unit_of(lane, u)] *
 * rows[r][i - i_offset]. Registers only; the step's arithmetic. Inputs go
 * four at a time: i_begin - i_offset, i_end - i_begin, mstride and rstride
 * are multiples of 4. */
DEVICE_FN void accumulate_tile(real *acc, const SHARED_PTR real *Ms, int mstride, int lane, int lanes,
                               const SHARED_PTR real *rows, int rstride, int i_begin, int i_end,
                               int i_offset)
{
    for (int i = i_begin; i < i_end; i += 4) {
        real4 h[TILE_ROWS];
        UNROLL for (int r = 0; r < TILE_ROWS; ++r) h[r] = LOAD4(rows + r * rstride + i - i_offset);
        UNROLL for (int j = 0; j < 4; ++j) {
            real m[TILE_UNITS];
            UNROLL for (int q = 0; q < TILE_UNITS / 4; ++q) {
                real4 v = LOAD4(Ms + (i + j) * mstride + unit_of(lane, lanes, 4 * q));
                m[4 * q] = v.x, m[4 * q + 1] = v.y, m[4 * q + 2] = v.z, m[4 * q + 3] = v.w;
            }
            UNROLL for (int r = 0; r < TILE_ROWS; ++r) {
                real hr = COMPONENT(h[r], j);
                UNROLL for (int u = 0; u < TILE_UNITS; ++u) acc[r * TILE_UNITS + u] += m[u] * hr;
            }
        }
    }
}

DEVICE_FN void store_partials(SHARED_PTR real *scratch, const real *acc, int part, int pass_rows,
                              int group, int mstride, int lane, int lanes)
{
    UNROLL for (int r = 0; r < TILE_ROWS; ++r)
        UNROLL for (int u = 0; u < TILE_UNITS; ++u)
            scratch[(part * pass_rows + group * TILE_ROWS + r) * mstride + unit_of(lane, lanes, u)] =
                acc[r * TILE_UNITS + u];
}

/* The element-wise end of a step: a pass_rows x width grid of (row, unit)
 * items, rows from p0 and units from o0; rows at or past row_end and units
 * at or past H are padding. A thread finishes the same items every step,
 * FINISH_BATCH at a time, so that their loads from device memory overlap. */
#define FINISH_BATCH 2
typedef struct {
    Sweep w;
    int per_column; /* the thread's items in each of its columns */
    int pass_rows, width, p0, row_end, o0;
} Finish;

typedef struct {
    int row[FINISH_BATCH], k[FINISH_BATCH]; /* row -1: no such item */
    int at[FINISH_BATCH];                   /* the element's index in a step's B x H; -1 for padding */
} Items;

/* A step's inputs from device memory for a batch: X[t] and, backward, Hs[t]. */
typedef struct {
    real x[FINISH_BATCH], h[FINISH_BATCH];
} Inputs;

DEVICE_FN Finish finish_grid(int pass_rows, int width, int p0, int row_end, int o0)
{
    Finish f;
    f.w = sweep_start(width);
    f.per_column = f.w.r < pass_rows ? (pass_rows - f.w.r + f.w.r_step - 1) / f.w.r_step : 0;
    f.pass_rows = pass_rows, f.width = width, f.p0 = p0, f.row_end = row_end, f.o0 = o0;
    return f;
}

DEVICE_FN int finish_count(Finish f)
{
    int columns = f.w.c < f.width ? (f.width - f.w.c + f.w.c_step - 1) / f.w.c_step : 0;
    return columns * f.per_column;
}

/* The thread's items n0 .. n0 + FINISH_BATCH - 1, in sweep order. */
DEVICE_FN Items finish_items(Finish f, int n0, int H)
{
    Items it;
    int count = finish_count(f);
    UNROLL for (int j = 0; j < FINISH_BATCH; ++j) {
        int n = n0 + j, row = -1, k = 0, at = -1;
        if (n < count) {
            k = f.w.c + n / f.per_column * f.w.c_step;
            row = f.w.r + n % f.per_column * f.w.r_step;
            if (f.p0 + row < f.row_end && f.o0 + k < H)
                at = (f.p0 + row) * H + f.o0 + k;
        }
        it.row[j] = row, it.k[j] = k, it.at[j] = at;
    }
    return it;
}

/* Nothing is read for t < 0. */
DEVICE_FN Inputs load_inputs(Items it, const GLOBAL real *X, const GLOBAL real *Hs, int t, int B, int H,
                             int backward)
{
    Inputs in;
    idx_t step = (idx_t)(t < 0 ? 0 : t) * B * H;
    const GLOBAL real *Xt = X + step, *Ht = Hs + step;
    UNROLL for (int j = 0; j < FINISH_BATCH; ++j) {
        int load = t >= 0 && it.at[j] >= 0;
        in.x[j] = load ? Xt[it.at[j]] : (real)0;
        in.h[j] = load && backward ? Ht[it.at[j]] : (real)0;
    }
    return in;
}

/* Sums the parts' partial products of each of the thread's items, applies
 * the step's nonlinearity and writes Y[t]; with keep, also next[row][k]
 * (zero for padding). `first` is the thread's first batch (finish_items at
 * 0). On entry `ahead` holds its inputs at t; on return those at t_next,
 * loaded during this step so their latency is off the chain of dependent
 * steps (nothing is loaded for t_next < 0). */
DEVICE_FN void finish_outputs(Finish f, Items first, const SHARED_PTR real *scratch, int parts, int mstride,
                              const GLOBAL real *X, const GLOBAL real *Hs, GLOBAL real *Y, int t, int t_next,
                              int B, int H, int backward, Inputs *ahead, int keep, SHARED_PTR real *next,
                              int next_stride)
{
    int count = finish_count(f);
    GLOBAL real *Yt = Y + (idx_t)t * B * H;
    for (int n0 = 0; n0 < count; n0 += FINISH_BATCH) {
        Items it = n0 == 0 ? first : finish_items(f, n0, H);
        Inputs in = n0 == 0 ? *ahead : load_inputs(it, X, Hs, t, B, H, backward);
        if (n0 == 0)
            *ahead = load_inputs(first, X, Hs, t_next, B, H, backward);
        UNROLL for (int j = 0; j < FINISH_BATCH; ++j) {
            int row = it.row[j], k = it.k[j];
            real y = 0;
            if (it.at[j] >= 0) {
                real pre = in.x[j];
                for (int part = 0; part < parts; ++part)
                    pre += scratch[(part * f.pass_rows + row) * mstride + k];
                y = backward ? ((real)1 - in.h[j] * in.h[j]) * pre : TANH(pre);
                Yt[it.at[j]] = y;
            }
            if (keep && row >= 0)
                next[staged_row(row, next_stride) + k] = y;
        }
    }
}

/* The block's threads as (lane, group, part). */
typedef struct {
    int lanes, lane, group, part, active;
} Layout;

DEVICE_FN Layout thread_layout(int width, int groups, int parts)
{
    Layout L;
    L.lanes = (width + TILE_UNITS - 1) / TILE_UNITS;
    L.lane = THREAD_ID % L.lanes;
    L.group = (THREAD_ID / L.lanes) % groups;
    L.part = THREAD_ID / (L.lanes * groups);
    L.active = L.part < parts;
    return L;
}

/* The inputs [begin, end) of `part` among `parts` shares of n, a multiple
 * of 4: each share a multiple of 4 too. */
DEVICE_FN int share_begin(int part, int parts, int n) { return 4 * (int)((idx_t)(n / 4) * part / parts); }

KERNEL void recurrence_tiled(const GLOBAL real *X, const GLOBAL real *W, const GLOBAL real *Hs,
                             const GLOBAL real *init, GLOBAL real *Y, int T, int B, int H,
                             int backward, int groups, int parts DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    Layout L = thread_layout(H, groups, parts);
    int mstride = L.lanes * TILE_UNITS, rstride = ROUND_UP4(H), pass_rows = groups * TILE_ROWS;
    SHARED_PTR real *Ms = dynamic_shared;                                 /* rstride * mstride */
    int buffer = staged_row(pass_rows, rstride);
    SHARED_PTR real *buffers = Ms + (idx_t)rstride * mstride;             /* 2 * buffer */
    SHARED_PTR real *scratch = buffers + 2 * buffer;                      /* parts * pass_rows * mstride */
    int i_begin = share_begin(L.part, parts, rstride), i_end = share_begin(L.part + 1, parts, rstride);

    load_coefficients(Ms, mstride, W, H, 0, H, backward);
    zero_shared(buffers, 2 * buffer); /* the padding must not hold NaN: it meets zero weights */
    for (int p0 = BLOCK_ID * pass_rows; p0 < B; p0 += GRID_SIZE * pass_rows) {
        Finish f = finish_grid(pass_rows, H, p0, B, 0);
        Items first = finish_items(f, 0, H);
        Inputs ahead = load_inputs(first, X, Hs, time_of_step(0, T, backward), B, H, backward);
        SYNC_BLOCK(); /* zero_shared's threads are not the staging's: its zeros land first */
        stage_rows(buffers, rstride, init, H, p0, pass_rows, B, 0, H);
        SYNC_BLOCK();
        for (int s = 0; s < T; ++s) {
            SHARED_PTR real *current = buffers + (s & 1) * buffer;
            SHARED_PTR real *next = buffers + ((s + 1) & 1) * buffer;
            if (L.active) {
                real acc[TILE_ROWS * TILE_UNITS] = {0};
                accumulate_tile(acc, Ms, mstride, L.lane, L.lanes,
                                current + staged_row(L.group * TILE_ROWS, rstride), rstride, i_begin, i_end, 0);
                store_partials(scratch, acc, L.part, pass_rows, L.group, mstride, L.lane, L.lanes);
            }
            SYNC_BLOCK();
            finish_outputs(f, first, scratch, parts, mstride, X, Hs, Y, time_of_step(s, T, backward),
                           s + 1 < T ? time_of_step(s + 1, T, backward) : -1, B, H, backward, &ahead, 1, next,
                           rstride);
            SYNC_BLOCK();
        }
    }
}

/* For small H: each thread keeps SMALL_K weights of one output unit in
 * registers for the whole launch (no shared-memory reads of W), and
 * ceil(H / SMALL_K) threads share a unit. A block owns `rows` batch rows and
 * keeps their states on-chip, padded with zeros to parts * SMALL_K. At most
 * SMALL_MAX_THREADS threads a block (H = 128 takes 512): left unbounded, the
 * compiler spends registers until fewer than that can launch. */
#define SMALL_MAX_THREADS 640
KERNEL void LAUNCH_BOUNDS(SMALL_MAX_THREADS)
    recurrence_small(const GLOBAL real *X, const GLOBAL real *W, const GLOBAL real *Hs, const GLOBAL real *init,
                     GLOBAL real *Y, int T, int B, int H, int backward, int rows DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    int parts = (H + SMALL_K - 1) / SMALL_K, padded = parts * SMALL_K;
    int o = THREAD_ID % H, part = THREAD_ID / H, i0 = part * SMALL_K;
    int active = part < parts;
    int buffer = staged_row(rows, padded);
    SHARED_PTR real *buffers = dynamic_shared;                 /* 2 * buffer */
    SHARED_PTR real *scratch = buffers + 2 * buffer;           /* parts * rows * H */
    real w[SMALL_K];
    UNROLL for (int k = 0; k < SMALL_K; ++k)
        w[k] = active && i0 + k < H ? coefficient(W, H, i0 + k, o, backward) : (real)0;
    zero_shared(buffers, 2 * buffer); /* the padding must not hold NaN: it meets zero weights */
    for (int p0 = BLOCK_ID * rows; p0 < B; p0 += GRID_SIZE * rows) {
        Finish f = finish_grid(rows, H, p0, B, 0);
        Items first = finish_items(f, 0, H);
        Inputs ahead = load_inputs(first, X, Hs, time_of_step(0, T, backward), B, H, backward);
        SYNC_BLOCK();
        stage_rows(buffers, padded, init, H, p0, rows, B, 0, H);
        SYNC_BLOCK();
        for (int s = 0; s < T; ++s) {
            SHARED_PTR real *current = buffers + (s & 1) * buffer;
            SHARED_PTR real *next = buffers + ((s + 1) & 1) * buffer;
            if (active) {
                for (int r = 0; r < rows; ++r) {
                    real acc = 0;
                    const SHARED_PTR real *h = current + staged_row(r, padded) + i0;
                    UNROLL for (int k = 0; k < SMALL_K; ++k) acc += w[k] * h[k];
                    scratch[(part * rows + r) * H + o] = acc;
                }
            }
            SYNC_BLOCK();
            finish_outputs(f, first, scratch, parts, H, X, Hs, Y, time_of_step(s, T, backward),
                           s + 1 < T ? time_of_step(s + 1, T, backward) : -1, B, H, backward, &ahead, 1, next,
                           padded);
            SYNC_BLOCK();
        }
    }
}

/* All blocks of the grid wait here for each other. Only valid when every
 * block is resident (a cooperative launch). *state starts at zero. Each
 * block adds 1, block 0 adds 2^31 - (blocks - 1): the sum of one round is
 * exactly 2^31, so the top bit flips once everyone has arrived and the
 * counter needs no reset. The block barrier orders the block's writes
 * before thread 0's fence, which publishes them to the device. */
DEVICE_FN void grid_barrier(GLOBAL unsigned int *state, unsigned int blocks)
{
    SYNC_BLOCK();
    if (THREAD_ID == 0) {
        volatile GLOBAL unsigned int *counter = state;
        unsigned int add = BLOCK_ID == 0 ? 0x80000000u - (blocks - 1u) : 1u;
        MEMORY_FENCE();
        unsigned int before = ATOMIC_ADD(state, add);
        while (((before ^ *counter) & 0x80000000u) == 0) {
        }
        MEMORY_FENCE();
    }
    SYNC_BLOCK();
}

/* Work item = (unit slice, batch slice): units [o0, o0 + width), rows
 * [b0, b0 + slice_rows). Rows go in passes of groups * TILE_ROWS; inputs
 * are staged ROUND_UP4(chunk) at a time, so any H fits. */
KERNEL void recurrence_units(const GLOBAL real *X, const GLOBAL real *W, const GLOBAL real *Hs,
                             const GLOBAL real *init, GLOBAL real *Y, int T, int B, int H,
                             int backward, int s_begin, int s_end, int width, int slice_rows,
                             int groups, int parts, int chunk,
                             GLOBAL unsigned int *barrier_state DYNAMIC_SHARED_ARG)
{
    DYNAMIC_SHARED_DECL
    Layout L = thread_layout(width, groups, parts);
    int mstride = L.lanes * TILE_UNITS, rstride = ROUND_UP4(chunk), pass_rows = groups * TILE_ROWS;
    int unit_slices = (H + width - 1) / width;
    int items = unit_slices * ((B + slice_rows - 1) / slice_rows);
    int resident = items <= GRID_SIZE;
    SHARED_PTR real *Ms = dynamic_shared;                          /* ROUND_UP4(H) * mstride */
    SHARED_PTR real *rows = Ms + (idx_t)ROUND_UP4(H) * mstride;    /* staged_row(pass_rows, rstride) */
    SHARED_PTR real *scratch = rows + staged_row(pass_rows, rstride); /* parts * pass_rows * mstride */

    if (resident && BLOCK_ID < items)
        load_coefficients(Ms, mstride, W, H, (BLOCK_ID % unit_slices) * width, width, backward);
    for (int s = s_begin; s < s_end; ++s) {
        int t = time_of_step(s, T, backward);
        const GLOBAL real *prev = previous_states(init, Y, s, T, B, H, backward);
        for (int item = BLOCK_ID; item < items; item += GRID_SIZE) {
            int o0 = (item % unit_slices) * width;
            int b0 = (item / unit_slices) * slice_rows;
            int b1 = MIN(B, b0 + slice_rows);
            if (!resident) /* no barrier needed: every read of Ms is behind the last pass's */
                load_coefficients(Ms, mstride, W, H, o0, width, backward);
            for (int p0 = b0; p0 < b1; p0 += pass_rows) {
                Finish f = finish_grid(pass_rows, width, p0, b1, o0);
                Items first = finish_items(f, 0, H);
                Inputs now = load_inputs(first, X, Hs, t, B, H, backward); /* in flight during the sums */
                real acc[TILE_ROWS * TILE_UNITS] = {0};
                RowBatch ahead; /* the first batch of the chunk after */
                for (int c0 = 0; c0 < H; c0 += rstride) { /* chunks of ROUND_UP4(chunk): aligned */
                    int cols = MIN(rstride, H - c0), padded = ROUND_UP4(cols);
                    SYNC_BLOCK();
                    if (c0 == 0)
                        stage_rows(rows, rstride, prev, H, p0, pass_rows, b1, c0, cols);
                    else
                        stage_rows_after(rows, rstride, ahead, prev, H, p0, pass_rows, b1, c0, cols);
                    SYNC_BLOCK();
                    if (c0 + rstride < H)
                        ahead = load_row_batch(prev, H, p0, pass_rows, b1, c0 + rstride, MIN(rstride, H - c0 - rstride));
                    if (L.active)
                        accumulate_tile(acc, Ms, mstride, L.lane, L.lanes,
                                        rows + staged_row(L.group * TILE_ROWS, rstride), rstride,
                                        c0 + share_begin(L.part, parts, padded),
                                        c0 + share_begin(L.part + 1, parts, padded), c0);
                }
                if (L.active)
                    store_partials(scratch, acc, L.part, pass_rows, L.group, mstride, L.lane, L.lanes);
                SYNC_BLOCK();
                finish_outputs(f, first, scratch, parts, mstride, X, Hs, Y, t, -1, B, H, backward, &now, 0, rows,
                               rstride);
            }
        }
        if (s + 1 < s_end)
            grid_barrier(barrier_state, (unsigned int)GRID_SIZE);
    }
}
