// Whole generations on the GPU (the demo model's tiny random models): the same latents as the CPU within the bf16
// budget, and with the models kept loaded on the device (k5 serve, the C API) the same as loaded fresh.
#include "pipelines/generation.h"

#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

class CudaGeneration : public test::GpuTest {};

TEST_F(CudaGeneration, KeptModelsGiveWhatFreshOnesGive) {
  Context gpu = test::make_context(Precision::bf16, Device::CUDA);
  Context cpu = test::make_context(Precision::fp32);
  ModelCache models(KeepModels::on);
  for (const char* config : {"k5_tiny_t2v_5s", "k5_tiny_t2i"}) {
    SCOPED_TRACE(config);
    ModelOverrides overrides;
    overrides.config = config;
    const ModelFiles files = find_model_files(test::demo_model(), overrides);
    GenerationRequest request;
    request.prompt = "a red fox in the snow";
    request.steps = 2;
    request.seed = 3;
    request.rng = RngDevice::cpu;
    if (files.config.is_video()) request.frames = 5;
    request.expand_prompt = false;  // bf16 logits may pick other tokens than the fp32 CPU run's
    const GenerationPlan plain = plan_generation(files.config, request);
    EXPECT_LE(test::relative_l2(generate(gpu, files, plain).latents, generate(cpu, files, plain).latents), 5e-2);
    request.expand_prompt = true;  // Qwen2.5-VL's lm_head too, on the GPU
    const GenerationPlan plan = plan_generation(files.config, request);
    const GenerationResult fresh = generate(gpu, files, plan);
    for (int run = 0; run < 2; ++run) {
      const GenerationResult kept = generate(gpu, files, plan, models);
      EXPECT_EQ(kept.expanded_prompt, fresh.expanded_prompt);
      EXPECT_LE(test::relative_l2(kept.latents, fresh.latents), 1e-6);
    }
  }
  for (const auto& model : models.loaded()) EXPECT_GT(model.bytes, 0) << model.component << " " << model.name;
  EXPECT_EQ(models.loaded().size(), 5u);  // the text encoders, two DiTs, two VAEs
}

}  // namespace
}  // namespace k5
