// GEMMs through cuBLASLt (the CUDA side of src/ops/linear.h). cuBLASLt is column-major, so a row-major
// out[M, N] = x[M, K] * W[N, K]^T is computed as its transpose: out^T[N, M] = W^T(as stored) * x^T, with W
// read transposed in place (PyTorch's [out_features, in_features] layout, no copy). The bias rides the GEMM
// epilogue; activations run as a separate pass because cuBLASLt's GELU epilogue is not the exact (erf) GELU
// the CPU path computes.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>

#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

// Scratch memory from the stream-ordered pool: no device-wide synchronisation per call, unlike cudaMalloc.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    if (bytes) K5_CUDA_CHECK(cudaMallocAsync(&data_, bytes, cudaStream_t(0)));
  }
  ~DeviceBuffer() {
    if (data_) cudaFreeAsync(data_, cudaStream_t(0));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
};

// One handle for the process, created on first use (a handle is per device and costs milliseconds).
// TODO(cuda): move into the Context with the stream once the Context owns device state.
cublasLtHandle_t lt_handle() {
  static const cublasLtHandle_t handle = [] {
    cublasLtHandle_t created = nullptr;
    K5_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return handle;
}

// cuBLASLt's heuristics assume 256-byte aligned pointers unless told otherwise; views into the middle of a
// tensor are less aligned.
uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment) alignment /= 2;
  return alignment;
}

// Column-major D[m, n] = op(A)[m, k] * B[k, n] (+ bias[m]), float32 accumulation and output.
struct Gemm {
  cudaDataType_t input_type;  // of A and B: CUDA_R_32F or CUDA_R_16BF
  const void* a;
  bool a_transposed;  // A is stored k x m (ld >= k) and read transposed
  int64_t lda;
  const void* b;
  int64_t ldb;
  float* d;
  int64_t ldd;
  int64_t m, n, k;
  const float* bias;  // [m] or null
};

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

// Returns false when cuBLASLt offers no algorithm for this problem (and does nothing then).
bool try_gemm(const Gemm& g) {
  using Desc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, decltype(&cublasLtMatmulDescDestroy)>;
  using Layout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, decltype(&cublasLtMatrixLayoutDestroy)>;
  using Preference =
      std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, decltype(&cublasLtMatmulPreferenceDestroy)>;

  cublasLtMatmulDesc_t raw_operation = nullptr;
  // CUBLAS_COMPUTE_32F keeps float32 GEMMs in full float32 (no TF32), as the CPU parity path.
  K5_CUBLAS_CHECK(cublasLtMatmulDescCreate(&raw_operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const Desc operation(raw_operation, &cublasLtMatmulDescDestroy);
  const cublasOperation_t transpose_a = g.a_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_b = CUBLAS_OP_N;
  K5_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(operation.get(), CUBLASLT_MATMUL_DESC_TRANSA, &transpose_a, sizeof(transpose_a)));
  K5_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(operation.get(), CUBLASLT_MATMUL_DESC_TRANSB, &transpose_b, sizeof(transpose_b)));
  if (g.bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    K5_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(operation.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    K5_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(operation.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
    K5_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(operation.get(), CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof(bias_type)));
  }

  auto layout = [](cudaDataType_t type, int64_t rows, int64_t columns, int64_t ld) {
    cublasLtMatrixLayout_t created = nullptr;
    K5_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&created, type, uint64_t(rows), uint64_t(columns), ld));
    return Layout(created, &cublasLtMatrixLayoutDestroy);
  };
  const Layout a_layout =
      g.a_transposed ? layout(g.input_type, g.k, g.m, g.lda) : layout(g.input_type, g.m, g.k, g.lda);
  const Layout b_layout = layout(g.input_type, g.k, g.n, g.ldb);
  const Layout d_layout = layout(CUDA_R_32F, g.m, g.n, g.ldd);

  cublasLtMatmulPreference_t raw_preference = nullptr;
  K5_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw_preference));
  const Preference preference(raw_preference, &cublasLtMatmulPreferenceDestroy);
  const uint64_t workspace_bytes = kWorkspaceBytes;
  K5_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &workspace_bytes, sizeof(workspace_bytes)));
  const uint32_t alignments[4] = {alignment_of(g.a), alignment_of(g.b), alignment_of(g.d), alignment_of(g.d)};
  const cublasLtMatmulPreferenceAttributes_t alignment_attributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    K5_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.get(), alignment_attributes[i], &alignments[i],
                                                         sizeof(alignments[i])));

  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(lt_handle(), operation.get(), a_layout.get(), b_layout.get(), d_layout.get(),
                                     d_layout.get(), preference.get(), 1, &heuristic, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) return false;
  K5_CHECK(status == CUBLAS_STATUS_SUCCESS,
           "cuBLASLt error: cublasLtMatmulAlgoGetHeuristic: ", cublasLtGetStatusString(status));

  const DeviceBuffer workspace(heuristic.workspaceSize);
  const float alpha = 1.0f, beta = 0.0f;
  K5_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), operation.get(), &alpha, g.a, a_layout.get(), g.b, b_layout.get(), &beta,
                                 g.d, d_layout.get(), g.d, d_layout.get(), &heuristic.algo, workspace.as<void>(),
                                 heuristic.workspaceSize, cudaStream_t(0)));
  return true;
}

void run_gemm(const Gemm& g) {
  if (try_gemm(g)) return;
  // Not every type combination has a bias epilogue: then the bias is a separate pass.
  if (g.bias) {
    Gemm without_bias = g;
    without_bias.bias = nullptr;
    if (try_gemm(without_bias)) return add_bias_rows(g.bias, g.d, g.ldd, g.n, g.m);
  }
  fail("linear: cuBLASLt has no algorithm for ", g.m, "x", g.n, "x", g.k,
       g.input_type == CUDA_R_16BF ? " BF16" : " F32", " (leading dimensions ", g.lda, ", ", g.ldb, ", ", g.ldd, ")");
}

Unary unary_for(ops::Activation activation) {
  switch (activation) {
    case ops::Activation::gelu_erf:
      return Unary::gelu_erf;
    case ops::Activation::gelu_tanh:
      return Unary::gelu_tanh;
    case ops::Activation::silu:
      return Unary::silu;
    case ops::Activation::quick_gelu:
      return Unary::quick_gelu;
    case ops::Activation::none:
      break;
  }
  fail("linear: no activation to apply");
}

}  // namespace

void linear(Context&, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation) {
  // The same contract as the CPU path (src/backends/cpu/linear.cpp): BF16 activations go to the GEMM as they
  // are, F32 ones are rounded to BF16 first when the weights are BF16.
  const bool bf16_input = x.dtype() == DType::BF16;
  K5_CHECK(!bf16_input || (weight.dtype() == DType::BF16 && x.is_contiguous() && x.dim() >= 1), "linear: BF16 input ",
           x.describe(), " needs contiguous rows and BF16 weights, got ", weight.describe());
  const cpu::Rows input = bf16_input
                              ? cpu::Rows{nullptr, x.numel() / std::max<int64_t>(1, x.size(-1)), x.size(-1), x.size(-1)}
                              : cpu::rows_of(x, "linear input");
  const cpu::Rows output = cpu::rows_of(out, "linear output");
  K5_CHECK(weight.dim() == 2 && weight.is_contiguous(), "linear: weight must be a contiguous [N, K] matrix, got ",
           weight.describe());
  K5_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16, "linear: unsupported weight dtype ",
           weight.describe());
  const int64_t n = weight.size(0), k = weight.size(1), m = input.count;
  K5_CHECK(input.width == k, "linear: input ", x.describe(), " does not match weight ", weight.describe());
  K5_CHECK(output.count == m && output.width == n, "linear: output ", out.describe(), " should be [", m, ", ", n, "]");
  if (bias)
    K5_CHECK(bias->numel() == n && bias->is_contiguous() && bias->device() == Device::CUDA &&
                 (bias->dtype() == DType::F32 || bias->dtype() == DType::BF16),
             "linear: bias ", bias->describe(), " should be a contiguous F32/BF16 [", n, "] on the GPU");
  if (m == 0 || n == 0) return;
  K5_CHECK(k > 0, "linear: empty inner dimension in ", weight.describe());

  std::unique_ptr<DeviceBuffer> bias_f32;
  const float* bias_values = nullptr;
  if (bias && bias->dtype() == DType::BF16) {
    bias_f32 = std::make_unique<DeviceBuffer>(size_t(n) * sizeof(float));
    bf16_to_f32(bias->data<uint16_t>(), bias_f32->as<float>(), n);
    bias_values = bias_f32->as<float>();
  } else if (bias) {
    bias_values = bias->data<float>();
  }

  Gemm gemm{.input_type = CUDA_R_32F,
            .a = weight.raw(),
            .a_transposed = true,
            .lda = k,
            .b = input.data,
            .ldb = input.stride,
            .d = output.data,
            .ldd = output.stride,
            .m = n,
            .n = m,
            .k = k,
            .bias = bias_values};
  std::unique_ptr<DeviceBuffer> rounded;
  if (weight.dtype() == DType::BF16) {
    gemm.input_type = CUDA_R_16BF;
    if (bf16_input) {
      gemm.b = x.raw();
      gemm.ldb = k;
    } else {
      rounded = std::make_unique<DeviceBuffer>(size_t(m * k) * sizeof(uint16_t));
      round_rows_to_bf16(input.data, input.stride, rounded->as<uint16_t>(), m, k);
      gemm.b = rounded->as<void>();
      gemm.ldb = k;
    }
  }
  run_gemm(gemm);
  if (activation != ops::Activation::none)
    unary_rows(unary_for(activation), output.data, output.stride, output.data, output.stride, m, n);
}

void matmul(Context&, const Tensor& a, const Tensor& b, Tensor& out) {
  // Row-major out[M, N] = a[M, K] * b[K, N] is column-major out^T = b^T * a^T, both read as stored.
  const cpu::Rows left = cpu::rows_of(a, "matmul a"), right = cpu::rows_of(b, "matmul b"),
                  result = cpu::rows_of(out, "matmul out");
  K5_CHECK(left.width == right.count && result.count == left.count && result.width == right.width,
           "matmul: ", a.describe(), " x ", b.describe(), " -> ", out.describe());
  if (result.count == 0 || result.width == 0) return;
  K5_CHECK(left.width > 0, "matmul: empty inner dimension in ", a.describe());
  run_gemm({.input_type = CUDA_R_32F,
            .a = right.data,
            .a_transposed = false,
            .lda = right.stride,
            .b = left.data,
            .ldb = left.stride,
            .d = result.data,
            .ldd = result.stride,
            .m = right.width,
            .n = left.count,
            .k = left.width,
            .bias = nullptr});
}

}  // namespace k5::cuda
