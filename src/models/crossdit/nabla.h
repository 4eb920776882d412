// NABLA sparse self-attention for the CrossDiT (official utils.py: fractal_flatten, fast_sta_nabla, nablaT_v2).
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/kandinsky_config.h"

namespace k5 {

constexpr int64_t kNablaBlock = 64;  // 8 x 8 spatial tokens of one frame

// The fractal token order of a patched grid [T, H, W] (H, W divisible by 8): order[new] = old row-major
// index, grouping each frame's 8x8 tiles into 64 consecutive tokens (tiles row-major, tokens row-major).
std::vector<int64_t> fractal_order(int64_t T, int64_t H, int64_t W);

// STA neighbourhood over tile blocks (Tb = T, Hb = H/8, Wb = W/8): [n, n] U8, 1 where every axis distance
// is within the window's half width.
Tensor sta_block_mask(int64_t T, int64_t Hb, int64_t Wb, int64_t wT, int64_t wH, int64_t wW);

// The per-layer block mask [heads, n, n] U8 (ops::nabla_select_blocks on the block means of q and k), on q's
// device: softmax of block-mean-pooled q k^T / sqrt(D), top-CDF kept at mass P, OR the STA mask (on q's device
// too). q, k: [S, heads, D] F32 in fractal order, S = 64 n. Returns the kept fraction.
double nabla_block_mask(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& sta, double P, Tensor& mask);

}  // namespace k5
