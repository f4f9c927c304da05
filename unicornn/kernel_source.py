"""The CUDA source of the UnICORNN recurrence: one forward and one backward kernel.

This is the only copy of the kernel in the repository; ``cuda_kernel.py`` compiles it with NVRTC.
One thread owns one (batch, unit) column and walks it through time. For unit i, with
s = dt * sigmoid(c_i), the forward kernel applies the symplectic Euler step of the paper (eq. 3):

    z_t = z_{t-1} - s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1})
    y_t = y_{t-1} + s * z_t

from the initial state (y_0, z_0) (zeros when none is given) and writes y_t (the two state sums
are Kahan-compensated). It also saves (y, z) at the end of every chunk of ``ckpt_every`` steps
(always at t = N). The backward kernel never reads stored hidden states: starting from the saved
state of a chunk's end, it inverts the step,

    y_{t-1} = y_t - s * z_t
    z_{t-1} = z_t + s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1}),

and back-propagates through it (the paper's memory argument, Sec. 3). With ckpt_every >= N this is
exactly the 2021 scheme (start from (y_N, z_N) only); smaller chunks bound the float32 error that
reconstruction accumulates over very long sequences.

Variable lengths: sequence b takes only lengths[b] steps; past that its state stays put (so every
later chunk end holds its final state, from which its backward pass starts) and y = dL/dx = 0.
The backward pass starts its adjoints from dL/dy_n, dL/dz_n (a loss on the final state) and ends
with dL/dy_0, dL/dz_0. Both are optional (null pointers): without them the kernels compute exactly
what they computed before they existed.

Gradients of w and c are written per column (shape (batch, hidden)) and summed over the batch by
the caller, so no atomics are needed and the result is deterministic.

Speed: a thread's steps depend on each other, so each step would wait for its own load of x (and
dL/dy). Both kernels therefore issue the loads for the next PREFETCH steps before they are needed:
a ring of PREFETCH registers, refilled PREFETCH steps ahead as each step consumes its value (the
unrolled loop keeps every index static, so the ring stays in registers). PREFETCH is a compile-time
constant (NVRTC -DPREFETCH=K; 16 when not given); the arithmetic does not depend on it, so every K
computes the same bits as K = 1, which computes what the kernel did before prefetching. Chunk ends
are tracked with countdowns instead of a modulo per step.
"""

KERNEL_SOURCE = r"""
#ifndef PREFETCH
#define PREFETCH 16
#endif

__device__ __forceinline__ float sigmoid_exact(float v) { return 1.0f / (1.0f + expf(-v)); }

// total + increment with Kahan summation: the state moves by O(s) per step, so a plain float32
// sum drops the low bits of every increment, a drift that dominates the error over 10^4 steps.
__device__ __forceinline__ float compensated_add(float total, float increment, float& lost) {
    const float step = increment - lost;
    const float sum = total + step;
    lost = (sum - total) - step;
    return sum;
}

extern "C" __global__ void unicornn_forward(
    const float* __restrict__ x,          // (N, batch*hidden), contiguous
    const float* __restrict__ weight,     // (hidden,)
    const float* __restrict__ c,          // (hidden,)
    const float* __restrict__ initial,    // (2, batch*hidden): (y_0, z_0), or null for zeros
    const int* __restrict__ lengths,      // (batch,) in [0, N], or null: every sequence runs N steps
    float* __restrict__ y,                // (N, batch*hidden) out, 0 past a sequence's length
    float* __restrict__ states,           // (n_chunks, 2, batch*hidden) out: (y, z) at chunk ends
    const int n_steps, const int n_cols, const int hidden,
    const float dt, const float alpha, const int ckpt_every)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n_cols) return;
    const int unit = col % hidden;
    const int length = lengths ? lengths[col / hidden] : n_steps;
    const float w = weight[unit];
    const float s = dt * sigmoid_exact(c[unit]);
    const float* __restrict__ x_col = x + col;
    float* __restrict__ y_col = y + col;
    float* __restrict__ state_col = states + col;
    float hy = initial ? initial[col] : 0.0f;
    float hz = initial ? initial[n_cols + col] : 0.0f;
    float hy_lost = 0.0f, hz_lost = 0.0f;   // Kahan compensation of the two state sums
    int to_chunk_end = ckpt_every;           // steps until the next saved state

    float ahead[PREFETCH];                   // x of steps t0 .. t0 + PREFETCH - 1
#pragma unroll
    for (int k = 0; k < PREFETCH; ++k) ahead[k] = k < n_steps ? x_col[(size_t)k * n_cols] : 0.0f;
    for (int t0 = 0; t0 < n_steps; t0 += PREFETCH) {
#pragma unroll
        for (int k = 0; k < PREFETCH; ++k) {
            const int t = t0 + k;
            if (t < n_steps) {
                const float x_t = ahead[k];
                if (t + PREFETCH < n_steps) ahead[k] = x_col[(size_t)(t + PREFETCH) * n_cols];
                if (t < length) {
                    hz = compensated_add(hz, -s * (tanhf(w * hy + x_t) + alpha * hy), hz_lost);
                    hy = compensated_add(hy, s * hz, hy_lost);
                }
                // past its length a sequence's state stays put (its final state) and its output is 0
                y_col[(size_t)t * n_cols] = t < length ? hy : 0.0f;
                if (--to_chunk_end == 0 || t == n_steps - 1) {
                    const size_t k_state = (size_t)(t / ckpt_every) * 2 * n_cols;
                    state_col[k_state] = hy;
                    state_col[k_state + n_cols] = hz;
                    to_chunk_end = ckpt_every;
                }
            }
        }
    }
}

extern "C" __global__ void unicornn_backward(
    const float* __restrict__ x,          // (N, batch*hidden)
    const float* __restrict__ weight,     // (hidden,)
    const float* __restrict__ c,          // (hidden,)
    const int* __restrict__ lengths,      // (batch,) as in the forward, or null
    const float* __restrict__ states,     // (n_chunks, 2, batch*hidden) from the forward kernel
    const float* __restrict__ grad_y,     // (N, batch*hidden)
    const float* __restrict__ grad_final, // (2, batch*hidden): dL/dy_n, dL/dz_n, or null for zeros
    float* __restrict__ grad_x,           // (N, batch*hidden) out, 0 past a sequence's length
    float* __restrict__ grad_w_cols,      // (batch*hidden,) out, summed over batch by the caller
    float* __restrict__ grad_c_cols,      // (batch*hidden,) out, summed over batch by the caller
    float* __restrict__ grad_initial,     // (2, batch*hidden) out: dL/dy_0, dL/dz_0
    const int n_steps, const int n_cols, const int hidden,
    const float dt, const float alpha, const int ckpt_every)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n_cols) return;
    const int unit = col % hidden;
    const int length = lengths ? lengths[col / hidden] : n_steps;
    const float w = weight[unit];
    const float sig = sigmoid_exact(c[unit]);
    const float s = dt * sig;
    const float s_alpha = s * alpha;   // per-unit constants, hoisted out of the time loop
    const float* __restrict__ x_col = x + col;
    const float* __restrict__ grad_y_col = grad_y + col;
    const float* __restrict__ state_col = states + col;
    float* __restrict__ grad_x_col = grad_x + col;
    float hy = 0.0f, hz = 0.0f;   // reconstructed state (y_t, z_t)
    // adjoints dL/dy_t, dL/dz_t, starting from the loss on the final state (y_n, z_n)
    float ay = grad_final ? grad_final[col] : 0.0f;
    float az = grad_final ? grad_final[n_cols + col] : 0.0f;
    float gw = 0.0f, gs = 0.0f;   // dL/dw, dL/ds for this column
    // The backward pass restarts from a saved state at the sequence's last step (the forward kept
    // that state in every later chunk end) and at every earlier chunk end.
    int chunk = (length - 1) / ckpt_every;
    int restart_at = length - 1;

    float x_ahead[PREFETCH], gy_ahead[PREFETCH];   // x and dL/dy of steps t0 .. t0 - PREFETCH + 1
#pragma unroll
    for (int k = 0; k < PREFETCH; ++k) {
        const int t = n_steps - 1 - k;
        x_ahead[k] = t >= 0 ? x_col[(size_t)t * n_cols] : 0.0f;
        gy_ahead[k] = t >= 0 ? grad_y_col[(size_t)t * n_cols] : 0.0f;
    }
    for (int t0 = n_steps - 1; t0 >= 0; t0 -= PREFETCH) {
#pragma unroll
        for (int k = 0; k < PREFETCH; ++k) {
            const int t = t0 - k;
            if (t >= 0) {
                const float x_t = x_ahead[k], gy_t = gy_ahead[k];
                if (t - PREFETCH >= 0) {
                    x_ahead[k] = x_col[(size_t)(t - PREFETCH) * n_cols];
                    gy_ahead[k] = grad_y_col[(size_t)(t - PREFETCH) * n_cols];
                }
                if (t >= length) {   // padding: no step was taken, nothing flows back
                    grad_x_col[(size_t)t * n_cols] = 0.0f;
                    continue;
                }
                if (t == restart_at) {
                    const size_t k_state = (size_t)chunk * 2 * n_cols;
                    hy = state_col[k_state];
                    hz = state_col[k_state + n_cols];
                    restart_at = chunk * ckpt_every - 1;   // the previous chunk's last step
                    --chunk;
                }
                ay += gy_t;
                // through y_t = y_{t-1} + s * z_t
                az += s * ay;
                gs += ay * hz;
                hy -= s * hz;                                   // y_{t-1}
                // through z_t = z_{t-1} - s * f,  f = tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}
                const float th = tanhf(w * hy + x_t);
                const float f = th + alpha * hy;
                hz += s * f;                                    // z_{t-1}
                gs -= az * f;
                const float gx = -s * az * (1.0f - th * th);    // tanh' = 1 - tanh^2
                grad_x_col[(size_t)t * n_cols] = gx;
                gw += gx * hy;
                ay += gx * w - s_alpha * az;
            }
        }
    }
    grad_w_cols[col] = gw;
    grad_c_cols[col] = gs * dt * sig * (1.0f - sig);   // ds/dc = dt * sigmoid'(c)
    grad_initial[col] = ay;
    grad_initial[n_cols + col] = az;
}
"""
