// The CrossDiT forward on the GPU (CrossDit::load(..., Device::CUDA)) through the CPU test's check
// (tests/models/crossdit/crossdit_checks.h: the goldens of tests/golden/crossdit, tools/golden/crossdit.py): dense
// with a padded text mask and visual conditioning, a non-square image, NABLA with the official windows and a
// sparse mask; fp32 within the CPU's 1e-4, bf16 within the 3e-2 budget; LoRA adapters (merged on the host, then
// uploaded; tools/golden/lora.py); int8 weights (tools/golden/dit_int8.py); and MagCache's stored residual reused
// on the GPU.
#include "gpu_test_util.h"
#include "models/crossdit/crossdit_checks.h"

namespace k5::test {
namespace {

std::string golden(const std::string& name) { return crossdit_golden(name); }

class CudaCrossDit : public GpuTest {
 protected:
  static double error(const DitCase& c, Precision precision) { return dit_error(c, precision, Device::CUDA); }
};

TEST_F(CudaCrossDit, DenseT2vVisualCondPaddedMaskFp32) { EXPECT_LE(error(kDenseT2vCond, Precision::fp32), 1e-4); }

TEST_F(CudaCrossDit, T2iNonSquareFp32) { EXPECT_LE(error(kT2iNonSquare, Precision::fp32), 1e-4); }

TEST_F(CudaCrossDit, NablaFp32) {
  EXPECT_LE(error(kNablaOfficialWindows, Precision::fp32), 1e-4);
  EXPECT_LE(error(kNablaSparse, Precision::fp32), 1e-4);
}

TEST_F(CudaCrossDit, Bf16) {
  EXPECT_LE(error(kDenseT2vCond, Precision::bf16), 3e-2);
  EXPECT_LE(error(kNablaSparse, Precision::bf16), 3e-2);
}

TEST_F(CudaCrossDit, LoraAdapters) {
  EXPECT_LE(
      lora_error({lora_golden("a"), lora_golden("b") + ":0.5"}, "velocity_a_b_half", Precision::fp32, Device::CUDA),
      1e-4);
  EXPECT_LE(lora_error({lora_golden("a")}, "velocity_a", Precision::bf16, Device::CUDA), 3e-2);
}

TEST_F(CudaCrossDit, Int8Weights) {
  EXPECT_LE(int8_error(kT2iNonSquare, Precision::fp32, Device::CUDA), 1e-4);
  EXPECT_LE(int8_error(kDenseT2vCond, Precision::bf16, Device::CUDA), 3e-2);
}

TEST_F(CudaCrossDit, MagCacheResidualOnTheGpu) {
  Context context = make_context(Precision::fp32, Device::CUDA);
  const KandinskyConfig config = load_kandinsky_config(golden("t2i.yaml"));
  const CrossDit dit =
      CrossDit::load(config, golden("weights_plain.safetensors"), Precision::fp32, DitAttention::automatic, Device::CUDA);
  const DitInputFile file(golden("t2i.safetensors"), {"x", "text_embed", "pooled_text_embed", "time", "velocity"});
  DitInputs in = read_dit_inputs(file);
  Tensor residual;
  in.visual_residual = &residual;
  const Tensor computed = dit.forward(context, in);
  ASSERT_TRUE(residual.defined());
  EXPECT_EQ(residual.device(), Device::CUDA);
  in.reuse_visual_residual = true;  // same input: adding the stored residual gives the same velocity
  EXPECT_LE(relative_l2(dit.forward(context, in), computed), 1e-5);
}

}  // namespace
}  // namespace k5::test
