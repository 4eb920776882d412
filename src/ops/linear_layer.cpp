#include "ops/linear_layer.h"

#include "ops/linear.h"

namespace k5::ops {

DType LinearLayer::input_dtype(Precision precision) const {
  if (is_int8()) return precision == Precision::bf16 ? DType::BF16 : DType::F32;
  return weight.dtype() == DType::BF16 ? DType::BF16 : DType::F32;
}

Tensor linear(Context& ctx, const Tensor& x, const LinearLayer& layer) {
  if (layer.is_int8()) return linear_int8(ctx, x, layer.int8, layer.bias_or_null());
  return linear(ctx, x, layer.weight, layer.bias_or_null());
}

}  // namespace k5::ops
