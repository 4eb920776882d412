// The CrossDiT forward on the GPU (CrossDit::load(..., Device::CUDA)) against the official goldens the CPU
// tests use (tests/golden/crossdit, tools/golden/crossdit.py): dense with a padded text mask and visual
// conditioning, a non-square image, NABLA with the official windows and a sparse mask; fp32 within the
// CPU's 1e-4, bf16 within the 3e-2 budget; and MagCache's stored residual reused on the GPU.
#include "gpu_test_util.h"
#include "io/kandinsky_config.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/dit_inputs.h"

namespace k5::test {
namespace {

std::string golden(const std::string& name) { return source_path("tests/golden/crossdit/" + name); }

class CudaCrossDit : public GpuTest {
 protected:
  // Relative L2 error of the GPU velocity against the golden one.
  double error(const std::string& config_name, const std::string& weights, const std::string& case_name,
               Precision precision) {
    Context context({.threads = 2, .device = Device::CUDA, .precision = precision, .log_level = LogLevel::quiet});
    const KandinskyConfig config = load_kandinsky_config(golden(config_name + ".yaml"));
    const CrossDit dit = CrossDit::load(config, golden(weights), precision, DitAttention::automatic, Device::CUDA);
    const DitInputFile file(golden(case_name + ".safetensors"),
                            {"x", "text_embed", "pooled_text_embed", "time", "attention_mask", "velocity"});
    const Tensor velocity = dit.forward(context, read_dit_inputs(file));
    EXPECT_EQ(velocity.device(), Device::CPU);
    return relative_l2(velocity, file.float_tensor("velocity"));
  }
};

TEST_F(CudaCrossDit, DenseT2vVisualCondPaddedMaskFp32) {
  EXPECT_LE(error("t2v_cond", "weights_cond.safetensors", "t2v_cond", Precision::fp32), 1e-4);
}

TEST_F(CudaCrossDit, T2iNonSquareFp32) {
  EXPECT_LE(error("t2i", "weights_plain.safetensors", "t2i", Precision::fp32), 1e-4);
}

TEST_F(CudaCrossDit, NablaFp32) {
  EXPECT_LE(error("nabla_p90", "weights_plain.safetensors", "nabla_p90", Precision::fp32), 1e-4);
  EXPECT_LE(error("nabla_sparse", "weights_plain.safetensors", "nabla_sparse", Precision::fp32), 1e-4);
}

TEST_F(CudaCrossDit, Bf16) {
  EXPECT_LE(error("t2v_cond", "weights_cond.safetensors", "t2v_cond", Precision::bf16), 3e-2);
  EXPECT_LE(error("nabla_sparse", "weights_plain.safetensors", "nabla_sparse", Precision::bf16), 3e-2);
}

TEST_F(CudaCrossDit, MagCacheResidualOnTheGpu) {
  Context context({.threads = 2, .device = Device::CUDA, .precision = Precision::fp32, .log_level = LogLevel::quiet});
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
