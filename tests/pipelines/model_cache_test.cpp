// The models kept loaded between generations (src/pipelines/model_cache): each policy on stand-in models whose
// size is known, as the host memory they hold. Whole generations with kept models: tests/pipelines/generation_test.
#include "pipelines/model_cache.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/tensor.h"
#include "support/context.h"

namespace k5 {
namespace {

// A stand-in model holding `bytes` of host memory; counts its loads and remembers the parts asked for.
struct Loads {
  int count = 0;
  unsigned parts = 0;
};
ModelCache::Load stand_in(int64_t bytes, Loads& loads) {
  return [bytes, &loads](unsigned parts) -> std::shared_ptr<const void> {
    ++loads.count;
    loads.parts = parts;
    return std::make_shared<const Tensor>(Tensor::empty(DType::U8, {bytes}));
  };
}

ModelCache::Loaded info(const std::string& name) { return {"dit", name, 0}; }

std::vector<std::string> loaded_names(const ModelCache& cache) {
  std::vector<std::string> names;
  for (const auto& model : cache.loaded()) names.push_back(model.name);
  return names;
}

TEST(ModelCache, OffLoadsEachTime) {
  Context ctx = test::make_context(Precision::bf16);
  ModelCache cache(KeepModels::off);
  Loads loads;
  const auto first = cache.get(ctx, "a", "v", 0, info("a"), 100, stand_in(100, loads));
  const auto second = cache.get(ctx, "a", "v", 0, info("a"), 100, stand_in(100, loads));
  EXPECT_EQ(loads.count, 2);
  EXPECT_NE(first, second);
  EXPECT_TRUE(cache.loaded().empty());
}

TEST(ModelCache, OnKeepsOneVariantPerSlot) {
  Context ctx = test::make_context(Precision::bf16);
  ModelCache cache(KeepModels::on, /*budget_bytes=*/1);  // the budget binds `automatic` only
  Loads loads;
  const auto first = cache.get(ctx, "a", "v1", 0, info("a"), 0, stand_in(1000, loads));
  EXPECT_EQ(cache.get(ctx, "a", "v1", 0, info("a"), 0, stand_in(1000, loads)), first);
  EXPECT_EQ(loads.count, 1);
  ASSERT_EQ(cache.loaded().size(), 1u);
  EXPECT_EQ(cache.loaded()[0].bytes, 1000);  // measured as it loaded

  // Another variant replaces it; the one a caller still holds stays valid.
  const auto other = cache.get(ctx, "a", "v2", 0, info("a2"), 0, stand_in(1000, loads));
  EXPECT_NE(other, first);
  EXPECT_EQ(static_cast<const Tensor*>(first.get())->numel(), 1000);
  EXPECT_EQ(loaded_names(cache), std::vector<std::string>{"a2"});

  // A model lacking a part loads again with every part either use asked for, then serves both.
  Loads parts;
  cache.get(ctx, "b", "v", 1, info("b"), 0, stand_in(10, parts));
  const auto both = cache.get(ctx, "b", "v", 2, info("b"), 0, stand_in(10, parts));
  EXPECT_EQ(parts.count, 2);
  EXPECT_EQ(parts.parts, 3u);
  EXPECT_EQ(cache.get(ctx, "b", "v", 1, info("b"), 0, stand_in(10, parts)), both);
  EXPECT_EQ(parts.count, 2);
  EXPECT_EQ(loaded_names(cache), (std::vector<std::string>{"b", "a2"}));  // most recently used first

  cache.clear();
  EXPECT_TRUE(cache.loaded().empty());
  EXPECT_EQ(static_cast<const Tensor*>(both.get())->numel(), 10);
}

TEST(ModelCache, AutomaticReleasesTheLeastRecentlyUsedToMakeRoom) {
  Context ctx = test::make_context(Precision::bf16);
  ModelCache cache(KeepModels::automatic, /*budget_bytes=*/1000);
  Loads loads;
  cache.get(ctx, "a", "v", 0, info("a"), 400, stand_in(400, loads));
  cache.get(ctx, "b", "v", 0, info("b"), 400, stand_in(400, loads));
  EXPECT_EQ(loaded_names(cache), (std::vector<std::string>{"b", "a"}));
  // c does not fit beside both: a, used least recently, goes first.
  cache.get(ctx, "c", "v", 0, info("c"), 400, stand_in(400, loads));
  EXPECT_EQ(loaded_names(cache), (std::vector<std::string>{"c", "b"}));
  // Using b makes c the oldest; a comes back with the size it measured (its estimate says 1, wrongly).
  cache.get(ctx, "b", "v", 0, info("b"), 400, stand_in(400, loads));
  cache.get(ctx, "a", "v", 0, info("a"), 1, stand_in(400, loads));
  EXPECT_EQ(loaded_names(cache), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(loads.count, 4);

  // A model larger than the budget runs alone and is released after its use.
  const auto big = cache.get(ctx, "d", "v", 0, info("d"), 1500, stand_in(1500, loads));
  EXPECT_TRUE(cache.loaded().empty());
  EXPECT_EQ(static_cast<const Tensor*>(big.get())->numel(), 1500);
  // An estimate too small to make room is corrected by the measurement: not kept beside what is.
  cache.get(ctx, "e", "v", 0, info("e"), 400, stand_in(400, loads));
  cache.get(ctx, "f", "v", 0, info("f"), 1, stand_in(700, loads));
  EXPECT_EQ(loaded_names(cache), std::vector<std::string>{"e"});
}

TEST(ModelCache, OneBudgetForTheProcess) {
  // Two caches (two models of the C API): what one keeps counts against the other's half of memory.
  Context ctx = test::make_context(Precision::bf16);
  ModelCache first(KeepModels::automatic, 1000), second(KeepModels::automatic, 1000);
  Loads loads;
  first.get(ctx, "a", "v", 0, info("a"), 600, stand_in(600, loads));
  second.get(ctx, "b", "v", 0, info("b"), 600, stand_in(600, loads));
  EXPECT_EQ(loaded_names(first), std::vector<std::string>{"a"});
  EXPECT_TRUE(second.loaded().empty());
  first.clear();
  second.get(ctx, "b", "v", 0, info("b"), 600, stand_in(600, loads));
  EXPECT_EQ(loaded_names(second), std::vector<std::string>{"b"});
}

TEST(ModelCache, PolicyNames) {
  EXPECT_EQ(parse_keep_models("auto"), KeepModels::automatic);
  EXPECT_EQ(parse_keep_models("on"), KeepModels::on);
  EXPECT_EQ(parse_keep_models("off"), KeepModels::off);
  for (KeepModels keep : {KeepModels::off, KeepModels::on, KeepModels::automatic})
    EXPECT_EQ(parse_keep_models(keep_models_name(keep)), keep);
  try {
    parse_keep_models("always");
    FAIL() << "accepted 'always'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--keep-models 'always': choose auto, on or off"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace k5
