// GEMM through oneDNN (see bench/results/ for the library choice): float32 via dnnl_sgemm, BF16 weights via
// the matmul primitive (BF16 inputs, float32 accumulation and output). Weights stay in PyTorch's [N, K]
// layout, possibly memory-mapped; oneDNN reads them transposed without a persistent copy.
#include <dnnl.h>

#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>

#include "backends/cpu/kernels.h"
#include "backends/cpu/rows.h"

namespace k5::cpu {

namespace {

struct MatmulKey {
  int64_t m, n, k, x_stride, out_stride;
  bool has_bias;
  auto tie() const { return std::tie(m, n, k, x_stride, out_stride, has_bias); }
  bool operator<(const MatmulKey& other) const { return tie() < other.tie(); }
};

// Creating a oneDNN primitive costs milliseconds; a model calls the same few shapes over and over.
class Bf16MatmulCache {
 public:
  Bf16MatmulCache() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  void run(const MatmulKey& key, const uint16_t* x, const uint16_t* weight, const float* bias, float* out) {
    std::lock_guard lock(mutex_);
    auto found = primitives_.find(key);
    if (found == primitives_.end()) found = primitives_.emplace(key, create(key)).first;
    using tag = dnnl::memory;
    const auto& descriptor = found->second.second;
    dnnl::memory src(descriptor.src_desc(), engine_, const_cast<uint16_t*>(x));
    dnnl::memory weights(descriptor.weights_desc(), engine_, const_cast<uint16_t*>(weight));
    dnnl::memory dst(descriptor.dst_desc(), engine_, out);
    std::unordered_map<int, dnnl::memory> arguments{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (key.has_bias) arguments.emplace(DNNL_ARG_BIAS, tag(descriptor.bias_desc(), engine_, const_cast<float*>(bias)));
    found->second.first.execute(stream_, arguments);
    stream_.wait();
  }

 private:
  std::pair<dnnl::matmul, dnnl::matmul::primitive_desc> create(const MatmulKey& key) {
    using dt = dnnl::memory::data_type;
    dnnl::memory::desc src({key.m, key.k}, dt::bf16, dnnl::memory::dims{key.x_stride, 1});
    dnnl::memory::desc weights({key.k, key.n}, dt::bf16, dnnl::memory::dims{1, key.k});
    dnnl::memory::desc dst({key.m, key.n}, dt::f32, dnnl::memory::dims{key.out_stride, 1});
    dnnl::memory::desc bias({1, key.n}, dt::f32, dnnl::memory::dims{key.n, 1});
    auto descriptor = key.has_bias ? dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), engine_)
                                   : dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), engine_);
    return {dnnl::matmul(descriptor), descriptor};
  }

  std::mutex mutex_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<MatmulKey, std::pair<dnnl::matmul, dnnl::matmul::primitive_desc>> primitives_;
};

Bf16MatmulCache& bf16_matmuls() {
  static Bf16MatmulCache cache;
  return cache;
}

std::vector<float> bias_as_f32(const Tensor* bias, int64_t n) {
  if (!bias) return {};
  K5_CHECK(bias->numel() == n, "linear: bias ", bias->describe(), " does not match ", n, " output features");
  return bias->to_f32_vector();
}

}  // namespace

void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation) {
  const Rows input = rows_of(x, "linear input");
  const Rows output = rows_of(out, "linear output");
  K5_CHECK(weight.dim() == 2 && weight.is_contiguous(), "linear: weight must be a contiguous [N, K] matrix, got ",
           weight.describe());
  const int64_t n = weight.size(0), k = weight.size(1), m = input.count;
  K5_CHECK(input.width == k, "linear: input ", x.describe(), " does not match weight ", weight.describe());
  K5_CHECK(output.count == m && output.width == n, "linear: output ", out.describe(), " should be [", m, ", ", n, "]");
  if (m == 0 || n == 0) return;
  const std::vector<float> bias_values = bias_as_f32(bias, n);

  if (weight.dtype() == DType::F32) {
    K5_CHECK(dnnl_sgemm('N', 'T', m, n, k, 1.0f, input.data, input.stride, weight.data<float>(), k, 0.0f, output.data,
                        output.stride) == dnnl_success,
             "linear: oneDNN sgemm failed for ", x.describe(), " x ", weight.describe());
  } else if (weight.dtype() == DType::BF16) {
    auto scope = ctx.workspace().scope();
    auto* x_bf16 = static_cast<uint16_t*>(ctx.workspace().allocate(size_t(m * k) * 2));
    ctx.pool().parallel_for(0, m, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) convert_from_f32(input.row(r), x_bf16 + r * k, DType::BF16, size_t(k));
    });
    bf16_matmuls().run({m, n, k, k, output.stride, bias != nullptr}, x_bf16, weight.data<uint16_t>(),
                       bias_values.data(), output.data);
    if (activation == ops::Activation::none) return;
  } else {
    fail("linear: unsupported weight dtype ", weight.describe());
  }

  const bool bias_pending = weight.dtype() == DType::F32 && bias;
  if (!bias_pending && activation == ops::Activation::none) return;
  ctx.pool().parallel_for(0, m, std::max<int64_t>(1, 8192 / n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = output.row(r);
      if (bias_pending)
        for (int64_t j = 0; j < n; ++j) row[j] += bias_values[size_t(j)];
      switch (activation) {
        case ops::Activation::none: break;
        case ops::Activation::gelu_erf: unary_inplace(Unary::gelu_erf, row, n); break;
        case ops::Activation::gelu_tanh: unary_inplace(Unary::gelu_tanh, row, n); break;
        case ops::Activation::silu: unary_inplace(Unary::silu, row, n); break;
        case ops::Activation::quick_gelu: unary_inplace(Unary::quick_gelu, row, n); break;
      }
    }
  });
}

void matmul(Context&, const Tensor& a, const Tensor& b, Tensor& out) {
  const Rows left = rows_of(a, "matmul a"), right = rows_of(b, "matmul b"), result = rows_of(out, "matmul out");
  K5_CHECK(left.width == right.count && result.count == left.count && result.width == right.width, "matmul: ",
           a.describe(), " x ", b.describe(), " -> ", out.describe());
  if (result.count == 0 || result.width == 0) return;
  K5_CHECK(dnnl_sgemm('N', 'N', left.count, right.width, left.width, 1.0f, left.data, left.stride, right.data,
                      right.stride, 0.0f, result.data, result.stride) == dnnl_success,
           "matmul: oneDNN sgemm failed");
}

}  // namespace k5::cpu
