#include "backends/cuda/gemm.h"

#include <cuda_runtime_api.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>

#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"

namespace k5::cuda {

namespace {

// cuBLASLt's heuristics assume 256-byte aligned pointers unless told otherwise; views into the middle of a
// tensor are less aligned.
uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment) alignment /= 2;
  return alignment;
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

// Everything cuBLASLt's heuristic sees of a Gemm.
struct GemmKey {
  cudaDataType_t input_type;
  bool a_transposed, b_transposed, bias, tf32;
  int64_t lda, ldb, ldd, m, n, k;
  std::array<uint32_t, 3> alignments;  // A, B, D (C is D)
  auto tie() const {
    return std::tie(input_type, a_transposed, b_transposed, bias, tf32, lda, ldb, ldd, m, n, k, alignments);
  }
  bool operator<(const GemmKey& other) const { return tie() < other.tie(); }
};

struct HeuristicAnswer {
  bool supported;  // false: cuBLASLt has no algorithm for it
  cublasLtMatmulHeuristicResult_t result;
};

std::mutex heuristics_mutex;
std::map<GemmKey, HeuristicAnswer> heuristics;  // guarded by heuristics_mutex

std::optional<HeuristicAnswer> cached_heuristic(const GemmKey& key) {
  const std::lock_guard<std::mutex> lock(heuristics_mutex);
  const auto found = heuristics.find(key);
  if (found == heuristics.end()) return std::nullopt;
  return found->second;
}

void remember_heuristic(const GemmKey& key, const HeuristicAnswer& answer) {
  const std::lock_guard<std::mutex> lock(heuristics_mutex);
  heuristics.emplace(key, answer);
}

}  // namespace

cublasLtHandle_t lt_handle() {
  static const cublasLtHandle_t handle = [] {
    cublasLtHandle_t created = nullptr;
    K5_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return handle;
}

bool try_gemm(const Gemm& g) {
  // The bias epilogue wants a 16-byte aligned vector and no heuristic preference says so: refuse a less aligned
  // one here (callers then add the bias in a separate pass) rather than fail inside cublasLtMatmul.
  if (g.bias && reinterpret_cast<uintptr_t>(g.bias) % 16 != 0) return false;
  using Desc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, decltype(&cublasLtMatmulDescDestroy)>;
  using Layout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, decltype(&cublasLtMatrixLayoutDestroy)>;
  using Preference =
      std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, decltype(&cublasLtMatmulPreferenceDestroy)>;

  cublasLtMatmulDesc_t raw_operation = nullptr;
  const bool tf32 = g.tf32 && g.input_type == CUDA_R_32F;
  K5_CUBLAS_CHECK(
      cublasLtMatmulDescCreate(&raw_operation, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const Desc operation(raw_operation, &cublasLtMatmulDescDestroy);
  const cublasOperation_t transpose_a = g.a_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t transpose_b = g.b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
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
  const Layout b_layout =
      g.b_transposed ? layout(g.input_type, g.n, g.k, g.ldb) : layout(g.input_type, g.k, g.n, g.ldb);
  const Layout d_layout = layout(CUDA_R_32F, g.m, g.n, g.ldd);

  const uint32_t alignments[4] = {alignment_of(g.a), alignment_of(g.b), alignment_of(g.d), alignment_of(g.d)};
  // The heuristic's answer depends only on the problem's description, not on the data: asked once per
  // description (it costs tens of microseconds, as much as a decoding step's small GEMMs themselves).
  const GemmKey key{g.input_type,
                    g.a_transposed,
                    g.b_transposed,
                    g.bias != nullptr,
                    tf32,
                    g.lda,
                    g.ldb,
                    g.ldd,
                    g.m,
                    g.n,
                    g.k,
                    {alignments[0], alignments[1], alignments[2]}};
  std::optional<HeuristicAnswer> answer = cached_heuristic(key);
  if (!answer) {
    cublasLtMatmulPreference_t raw_preference = nullptr;
    K5_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw_preference));
    const Preference preference(raw_preference, &cublasLtMatmulPreferenceDestroy);
    const uint64_t workspace_bytes = kWorkspaceBytes;
    K5_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &workspace_bytes, sizeof(workspace_bytes)));
    const cublasLtMatmulPreferenceAttributes_t alignment_attributes[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      K5_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.get(), alignment_attributes[i], &alignments[i],
                                                           sizeof(alignments[i])));
    HeuristicAnswer asked{};
    int found = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(lt_handle(), operation.get(), a_layout.get(), b_layout.get(), d_layout.get(),
                                       d_layout.get(), preference.get(), 1, &asked.result, &found);
    K5_CHECK(status == CUBLAS_STATUS_SUCCESS || status == CUBLAS_STATUS_NOT_SUPPORTED,
             "cuBLASLt error: cublasLtMatmulAlgoGetHeuristic: ", cublasLtGetStatusString(status));
    asked.supported = status == CUBLAS_STATUS_SUCCESS && found > 0;
    answer = asked;
    remember_heuristic(key, asked);
  }
  if (!answer->supported) return false;
  const cublasLtMatmulHeuristicResult_t& heuristic = answer->result;

  const ScratchBuffer workspace(heuristic.workspaceSize);
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  K5_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), operation.get(), &alpha, g.a, a_layout.get(), g.b, b_layout.get(), &beta,
                                 g.d, d_layout.get(), g.d, d_layout.get(), &heuristic.algo, workspace.as<void>(),
                                 heuristic.workspaceSize, cudaStream_t(0)));
  return true;
}

}  // namespace k5::cuda
