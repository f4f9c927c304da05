"""The CUDA source of the UnICORNN recurrence: one forward and one backward kernel.

This is the only copy of the kernel in the repository; ``cuda_kernel.py`` compiles it with NVRTC.
One thread owns one (batch, unit) column and walks it through time. For unit i, with
s = dt * sigmoid(c_i), the forward kernel applies the symplectic Euler step of the paper (eq. 3):

    z_t = z_{t-1} - s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1})
    y_t = y_{t-1} + s * z_t

and writes y_t (the two state sums are Kahan-compensated). It also saves (y, z) at the end of every chunk of ``ckpt_every`` steps (always at
t = N). The backward kernel never reads stored hidden states: starting from the saved state of a
chunk's end, it inverts the step,

    y_{t-1} = y_t - s * z_t
    z_{t-1} = z_t + s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1}),

and back-propagates through it (the paper's memory argument, Sec. 3). With ckpt_every >= N this is
exactly the 2021 scheme (start from (y_N, z_N) only); smaller chunks bound the float32 error that
reconstruction accumulates over very long sequences.

Gradients of w and c are written per column (shape (batch, hidden)) and summed over the batch by
the caller, so no atomics are needed and the result is deterministic.
"""

KERNEL_SOURCE = r"""
__device__ __forceinline__ float sigmoid_exact(float v) { return 1.0f / (1.0f + expf(-v)); }

__device__ __forceinline__ bool is_chunk_end(int t, int n_steps, int ckpt_every) {
    return (t + 1) % ckpt_every == 0 || t == n_steps - 1;
}

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
    float* __restrict__ y,                // (N, batch*hidden) out
    float* __restrict__ states,           // (n_chunks, 2, batch*hidden) out: (y, z) at chunk ends
    const int n_steps, const int n_cols, const int hidden,
    const float dt, const float alpha, const int ckpt_every)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n_cols) return;
    const int unit = col % hidden;
    const float w = weight[unit];
    const float s = dt * sigmoid_exact(c[unit]);
    float hy = 0.0f, hz = 0.0f;
    float hy_lost = 0.0f, hz_lost = 0.0f;   // Kahan compensation of the two state sums
    for (int t = 0; t < n_steps; ++t) {
        const size_t at = (size_t)t * n_cols + col;
        hz = compensated_add(hz, -s * (tanhf(w * hy + x[at]) + alpha * hy), hz_lost);
        hy = compensated_add(hy, s * hz, hy_lost);
        y[at] = hy;
        if (is_chunk_end(t, n_steps, ckpt_every)) {
            const size_t k = (size_t)(t / ckpt_every) * 2 * n_cols + col;
            states[k] = hy;
            states[k + n_cols] = hz;
        }
    }
}

extern "C" __global__ void unicornn_backward(
    const float* __restrict__ x,          // (N, batch*hidden)
    const float* __restrict__ weight,     // (hidden,)
    const float* __restrict__ c,          // (hidden,)
    const float* __restrict__ states,     // (n_chunks, 2, batch*hidden) from the forward kernel
    const float* __restrict__ grad_y,     // (N, batch*hidden)
    float* __restrict__ grad_x,           // (N, batch*hidden) out
    float* __restrict__ grad_w_cols,      // (batch*hidden,) out, summed over batch by the caller
    float* __restrict__ grad_c_cols,      // (batch*hidden,) out, summed over batch by the caller
    const int n_steps, const int n_cols, const int hidden,
    const float dt, const float alpha, const int ckpt_every)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n_cols) return;
    const int unit = col % hidden;
    const float w = weight[unit];
    const float sig = sigmoid_exact(c[unit]);
    const float s = dt * sig;
    float hy = 0.0f, hz = 0.0f;   // reconstructed state (y_t, z_t)
    float ay = 0.0f, az = 0.0f;   // adjoints dL/dy_t, dL/dz_t
    float gw = 0.0f, gs = 0.0f;   // dL/dw, dL/ds for this column
    for (int t = n_steps - 1; t >= 0; --t) {
        if (is_chunk_end(t, n_steps, ckpt_every)) {
            const size_t k = (size_t)(t / ckpt_every) * 2 * n_cols + col;
            hy = states[k];
            hz = states[k + n_cols];
        }
        const size_t at = (size_t)t * n_cols + col;
        ay += grad_y[at];
        // through y_t = y_{t-1} + s * z_t
        az += s * ay;
        gs += ay * hz;
        hy -= s * hz;                                   // y_{t-1}
        // through z_t = z_{t-1} - s * f,  f = tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}
        const float th = tanhf(w * hy + x[at]);
        const float f = th + alpha * hy;
        hz += s * f;                                    // z_{t-1}
        gs -= az * f;
        const float gx = -s * az * (1.0f - th * th);    // tanh' = 1 - tanh^2
        grad_x[at] = gx;
        gw += gx * hy;
        ay += gx * w - s * alpha * az;
    }
    grad_w_cols[col] = gw;
    grad_c_cols[col] = gs * dt * sig * (1.0f - sig);   // ds/dc = dt * sigmoid'(c)
}
"""
