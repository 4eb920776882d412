// Scaled dot-product attention, dense and block-sparse (NABLA).
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

struct AttentionOptions {
  float scale = 0.0f;                // 0 = 1/sqrt(head_dim)
  bool causal = false;               // query i sees keys j <= i (+ Lk - Lq offset)
  const Tensor* key_mask = nullptr;  // [Lk] U8/BOOL, 1 = key is visible; padded keys are excluded
};

// q: [Lq, Hq, D], k and v: [Lk, Hkv, D] with Hq % Hkv == 0 (grouped-query attention), all F32 with the
// last dim contiguous (other strides free, so q/k/v may be views of one fused projection).
// out: [Lq, Hq, D] F32 contiguous. Memory-efficient: tiled with an online softmax, never an Lq x Lk matrix.
// In Precision::bf16 the products may use BF16 inputs with float32 accumulation.
void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const AttentionOptions& options = {});

// Block-sparse attention: tokens are grouped into blocks of `block_size` consecutive tokens; query block
// i of head h attends to all tokens of key block j exactly when block_mask[h, i, j] != 0 (U8/BOOL,
// [H, ceil(Lq/block), ceil(Lk/block)]). Masked blocks are never computed. Same layouts as `attention`
// (Hq == Hkv).
void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale = 0.0f);

// NABLA's choice of blocks (the official nablaT_v2) from block means q_pool, k_pool [H, n, D] (F32 contiguous):
// for each head and query block, p = softmax over key blocks of q_pool k_pool^T / sqrt(D); the key blocks, sorted by
// p ascending (ties by index), are kept from the one where the running sum of p reaches 1 - P on; then OR `sta`
// [n, n] (U8). Writes block_mask [H, n, n] U8 (all on one device) and returns how many blocks it keeps.
// Both backends do the same float32 arithmetic in the same order (scores as sequential FMAs over D, exp in double
// rounded to float, sums in key order), so they choose the same blocks (up to their math libraries' double exp,
// which may differ in the last bit: a different float once in hundreds of millions of values).
int64_t nabla_select_blocks(Context& ctx, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask);

}  // namespace k5::ops
