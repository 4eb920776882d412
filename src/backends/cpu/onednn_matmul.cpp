#include "backends/cpu/onednn_matmul.h"

#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace k5::cpu {

namespace {

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool, int64_t, bool, bool>;

struct Entry {
  dnnl::matmul::primitive_desc descriptor;
  dnnl::matmul primitive;
};

class MatmulCache {
 public:
  MatmulCache() : engine_(dnnl::engine::kind::cpu, 0) {}

  const Entry& get(const Bf16Matmul& p) {
    const Key key{p.m, p.n, p.k, p.lda, p.ldb, p.b_transposed, p.ldc, p.bias != nullptr, p.accumulate};
    std::lock_guard lock(mutex_);
    auto found = entries_.find(key);
    if (found == entries_.end()) found = entries_.emplace(key, create(p)).first;
    return *found->second;  // entries are never erased, so the reference outlives the lock
  }
  const dnnl::engine& engine() const { return engine_; }

 private:
  std::unique_ptr<Entry> create(const Bf16Matmul& p) {
    using dt = dnnl::memory::data_type;
    using dims = dnnl::memory::dims;
    dnnl::memory::desc a({p.m, p.k}, dt::bf16, dims{p.lda, 1});
    dnnl::memory::desc b({p.k, p.n}, dt::bf16, p.b_transposed ? dims{1, p.ldb} : dims{p.ldb, 1});
    dnnl::memory::desc c({p.m, p.n}, dt::f32, dims{p.ldc, 1});
    dnnl::primitive_attr attributes;
    // Threads run the same cached primitive at once: each brings its own scratchpad (by default oneDNN
    // keeps one per primitive, which concurrent executions would share).
    attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (p.accumulate) {
      dnnl::post_ops post;
      post.append_sum(1.0f);
      attributes.set_post_ops(post);
    }
    auto descriptor = p.bias ? dnnl::matmul::primitive_desc(
                                   dnnl::matmul::desc(a, b, dnnl::memory::desc({1, p.n}, dt::f32, dims{p.n, 1}), c),
                                   attributes, engine_)
                             : dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attributes, engine_);
    return std::make_unique<Entry>(Entry{descriptor, dnnl::matmul(descriptor)});
  }

  dnnl::engine engine_;
  std::mutex mutex_;
  std::map<Key, std::unique_ptr<Entry>> entries_;
};

MatmulCache& cache() {
  static MatmulCache instance;
  return instance;
}

}  // namespace

void matmul_bf16(const Bf16Matmul& p) {
  if (p.m == 0 || p.n == 0) return;
  MatmulCache& matmuls = cache();
  const Entry& entry = matmuls.get(p);
  const auto& engine = matmuls.engine();
  dnnl::stream stream(engine);
  std::unordered_map<int, dnnl::memory> arguments{
      {DNNL_ARG_SRC, dnnl::memory(entry.descriptor.src_desc(), engine, const_cast<uint16_t*>(p.a))},
      {DNNL_ARG_WEIGHTS, dnnl::memory(entry.descriptor.weights_desc(), engine, const_cast<uint16_t*>(p.b))},
      {DNNL_ARG_DST, dnnl::memory(entry.descriptor.dst_desc(), engine, p.c)}};
  thread_local std::vector<uint8_t> scratchpad;
  const size_t scratchpad_bytes = entry.descriptor.scratchpad_desc().get_size();
  if (scratchpad.size() < scratchpad_bytes) scratchpad.resize(scratchpad_bytes);
  arguments.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(entry.descriptor.scratchpad_desc(), engine, scratchpad.data()));
  if (p.bias)
    arguments.emplace(DNNL_ARG_BIAS, dnnl::memory(entry.descriptor.bias_desc(), engine, const_cast<float*>(p.bias)));
  entry.primitive.execute(stream, arguments);
  stream.wait();
}

}  // namespace k5::cpu
