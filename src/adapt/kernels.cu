// Fused kernels of lore's LoRA training step on CUDA (bf16 activations, f32 arithmetic).
//
// Each kernel replaces a chain of candle's element-wise kernels and their f32 temporaries with one
// pass over memory. The composed versions in `ops.rs` are what these compute, up to where bf16
// rounding happens; `adapt-bench kernels` compares the two on the GPU. Built to PTX by build.rs
// when the `cuda` feature is on.

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float ld(const bf16 *p, size_t i) { return __bfloat162float(p[i]); }
static __device__ __forceinline__ bf16 st(float v) { return __float2bfloat16(v); }

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (max when `is_max`) over the block; every thread gets the result. blockDim.x is a multiple
// of 32, at most 1024.
static __device__ float block_reduce(float v, bool is_max) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();  // an earlier call's readers are done with `partial`
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < warps ? partial[lane] : (is_max ? -INFINITY : 0.f);
        w = is_max ? warp_max(w) : warp_sum(w);
        if (lane == 0) partial[0] = w;
    }
    __syncthreads();
    return partial[0];
}

// softmax(scores + mask) of packed causal rows. `scores` and `probs` are [b, heads, t, t]; query i
// of row r sees keys starts[r, i] ..= i (starts is [b, t]: where i's document begins). One block
// per query row.
extern "C" __global__ void lore_causal_softmax_bf16(const bf16 *scores, const uint32_t *starts,
                                                    bf16 *probs, uint32_t heads, uint32_t t) {
    const size_t row = blockIdx.x;
    const uint32_t i = row % t;
    const size_t b = row / ((size_t)heads * t);
    const uint32_t start = starts[b * t + i];
    const bf16 *s = scores + row * t;
    bf16 *p = probs + row * t;
    float m = -INFINITY;
    for (uint32_t j = start + threadIdx.x; j <= i; j += blockDim.x) m = fmaxf(m, ld(s, j));
    m = block_reduce(m, true);
    float sum = 0.f;
    for (uint32_t j = start + threadIdx.x; j <= i; j += blockDim.x) sum += expf(ld(s, j) - m);
    sum = block_reduce(sum, false);
    const float inv = 1.f / sum;
    for (uint32_t j = threadIdx.x; j < t; j += blockDim.x) {
        const float v = (j >= start && j <= i) ? expf(ld(s, j) - m) * inv : 0.f;
        p[j] = st(v);
    }
}

// The softmax's backward: ds = p · (dp − rowdot[row]), rows of length t, n elements in all.
extern "C" __global__ void lore_softmax_back_bf16(const bf16 *p, const bf16 *dp, const float *rowdot,
                                                  bf16 *ds, uint32_t t, size_t n) {
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (size_t)blockDim.x * gridDim.x) {
        ds[k] = st(ld(p, k) * (ld(dp, k) - rowdot[k / t]));
    }
}

// silu(gate) · up.
extern "C" __global__ void lore_swiglu_bf16(const bf16 *gate, const bf16 *up, bf16 *out, size_t n) {
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (size_t)blockDim.x * gridDim.x) {
        const float g = ld(gate, k);
        out[k] = st(g / (1.f + expf(-g)) * ld(up, k));
    }
}

// The gradients of silu(gate) · up: d_gate into out[0, n), d_up into out[n, 2n).
extern "C" __global__ void lore_swiglu_back_bf16(const bf16 *gate, const bf16 *up, const bf16 *d,
                                                 bf16 *out, size_t n) {
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (size_t)blockDim.x * gridDim.x) {
        const float g = ld(gate, k), u = ld(up, k), dy = ld(d, k);
        const float s = 1.f / (1.f + expf(-g));
        out[k] = st(dy * u * s * (1.f + g * (1.f - s)));
        out[n + k] = st(dy * g * s);
    }
}

// RMSNorm of rows of length h: y = bf16(x · r) · w with r = 1/sqrt(mean(x²) + eps) (the
// normalised row is rounded before the weight multiplies it, as in the composed version). One
// block per row.
extern "C" __global__ void lore_rms_norm_bf16(const bf16 *x, const bf16 *w, bf16 *y, uint32_t h,
                                              float eps) {
    const bf16 *xr = x + (size_t)blockIdx.x * h;
    bf16 *yr = y + (size_t)blockIdx.x * h;
    float ss = 0.f;
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        const float v = ld(xr, j);
        ss += v * v;
    }
    ss = block_reduce(ss, false);
    const float r = 1.f / sqrtf(ss / h + eps);
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        yr[j] = st(__bfloat162float(st(ld(xr, j) * r)) * ld(w, j));
    }
}

// RMSNorm's backward plus a residual gradient: dx = res + r · (g − n · mean(g · n)) with
// n = x · r and g = dy · w. `res` may be null. One block per row.
extern "C" __global__ void lore_rms_norm_back_bf16(const bf16 *x, const bf16 *w, const bf16 *dy,
                                                   const bf16 *res, bf16 *dx, uint32_t h, float eps) {
    const size_t off = (size_t)blockIdx.x * h;
    float ss = 0.f;
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        const float v = ld(x, off + j);
        ss += v * v;
    }
    ss = block_reduce(ss, false);
    const float r = 1.f / sqrtf(ss / h + eps);
    float dot = 0.f;
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        dot += ld(dy, off + j) * ld(w, j) * ld(x, off + j) * r;
    }
    const float mean = block_reduce(dot, false) / h;
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        const float n = ld(x, off + j) * r;
        float v = r * (ld(dy, off + j) * ld(w, j) - n * mean);
        if (res) v += ld(res, off + j);
        dx[off + j] = st(v);
    }
}

// Rotary embedding (the two halves of each head rotate together) from the projection's rows to
// heads, times `scale`: x is [b·t, n·d], out is [b, n, t, d], cos and sin are [b·t, d/2].
extern "C" __global__ void lore_rope_to_heads_bf16(const bf16 *x, const bf16 *cos, const bf16 *sin,
                                                   bf16 *out, uint32_t b, uint32_t t, uint32_t n,
                                                   uint32_t d, float scale) {
    const uint32_t half = d / 2;
    const size_t total = (size_t)b * t * n * half;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total;
         k += (size_t)blockDim.x * gridDim.x) {
        const uint32_t c = k % half;
        size_t rest = k / half;
        const uint32_t head = rest % n;
        const size_t tok = rest / n;  // = batch row · t + position
        const size_t bi = tok / t, ti = tok % t;
        const float co = ld(cos, tok * half + c), si = ld(sin, tok * half + c);
        const bf16 *in = x + tok * n * d + (size_t)head * d;
        bf16 *o = out + ((bi * n + head) * t + ti) * d;
        const float x1 = ld(in, c), x2 = ld(in, c + half);
        o[c] = st((x1 * co - x2 * si) * scale);
        o[c + half] = st((x2 * co + x1 * si) * scale);
    }
}

// The backward of lore_rope_to_heads: from heads [b, n, t, d] back to rows [b·t, n·d], rotated by
// the opposite angle, times `scale`.
extern "C" __global__ void lore_rope_back_to_rows_bf16(const bf16 *dy, const bf16 *cos,
                                                       const bf16 *sin, bf16 *out, uint32_t b,
                                                       uint32_t t, uint32_t n, uint32_t d,
                                                       float scale) {
    const uint32_t half = d / 2;
    const size_t total = (size_t)b * t * n * half;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total;
         k += (size_t)blockDim.x * gridDim.x) {
        const uint32_t c = k % half;
        size_t rest = k / half;
        const uint32_t head = rest % n;
        const size_t tok = rest / n;
        const size_t bi = tok / t, ti = tok % t;
        const float co = ld(cos, tok * half + c), si = ld(sin, tok * half + c);
        const bf16 *in = dy + ((bi * n + head) * t + ti) * d;
        bf16 *o = out + tok * n * d + (size_t)head * d;
        const float y1 = ld(in, c), y2 = ld(in, c + half);
        o[c] = st((y1 * co + y2 * si) * scale);
        o[c + half] = st((y2 * co - y1 * si) * scale);
    }
}

// Per row of logits ([m, v]): log Σ exp and the cross-entropy against the row's target, into
// out[2·row] and out[2·row + 1]. One block per row.
extern "C" __global__ void lore_cross_entropy_bf16(const bf16 *logits, const uint32_t *targets,
                                                   float *out, uint32_t v) {
    const bf16 *x = logits + (size_t)blockIdx.x * v;
    float m = -INFINITY;
    for (uint32_t j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, ld(x, j));
    m = block_reduce(m, true);
    float sum = 0.f;
    for (uint32_t j = threadIdx.x; j < v; j += blockDim.x) sum += expf(ld(x, j) - m);
    sum = block_reduce(sum, false);
    if (threadIdx.x == 0) {
        const float lse = m + logf(sum);
        out[2 * blockIdx.x] = lse;
        out[2 * blockIdx.x + 1] = lse - ld(x, targets[blockIdx.x]);
    }
}

// The cross-entropy's gradient: scale · (softmax − onehot(target)), from the row's log Σ exp
// (stats[2·row], from lore_cross_entropy_bf16). One block per row.
extern "C" __global__ void lore_cross_entropy_back_bf16(const bf16 *logits, const uint32_t *targets,
                                                        const float *stats, bf16 *grad, uint32_t v,
                                                        float scale) {
    const size_t off = (size_t)blockIdx.x * v;
    const float lse = stats[2 * blockIdx.x];
    const uint32_t target = targets[blockIdx.x];
    for (uint32_t j = threadIdx.x; j < v; j += blockDim.x) {
        const float p = expf(ld(logits, off + j) - lse);
        grad[off + j] = st(scale * (p - (j == target ? 1.f : 0.f)));
    }
}

// One AdamW step of an f32 parameter: from p, its gradient g and the moments m and v, the new
// parameter into out[0, n), the new moments into out[n, 2n) and out[2n, 3n). bc1 and bc2 are the
// bias corrections 1 − β^t.
extern "C" __global__ void lore_adamw_f32(const float *p, const float *g, const float *m,
                                          const float *v, float *out, size_t n, float lr, float b1,
                                          float b2, float eps, float wd, float bc1, float bc2) {
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (size_t)blockDim.x * gridDim.x) {
        const float gk = g[k];
        const float mk = b1 * m[k] + (1.f - b1) * gk;
        const float vk = b2 * v[k] + (1.f - b2) * gk * gk;
        const float step = (mk / bc1) / (sqrtf(vk / bc2) + eps);
        out[k] = p[k] * (1.f - lr * wd) - lr * step;
        out[n + k] = mk;
        out[2 * n + k] = vk;
    }
}
