#include "backends/cuda_emulated/warp_emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define K5_EMULATOR_ASAN 1
#endif

namespace k5::cuda {
alignas(1024) unsigned char shared_memory[kEmulatedSharedBytes];
}  // namespace k5::cuda

namespace k5::emulation {

namespace {

constexpr size_t kFiberStackBytes = 256 * 1024;

[[noreturn]] void fail(const std::string& message) {
  // Thrown inside a fiber it could not unwind through swapcontext: report and stop the test program.
  std::fprintf(stderr, "warp emulator: %s\n", message.c_str());
  std::abort();
}

struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t generation = 0;
};

struct PendingCopy {
  uint32_t shared_address;
  const void* global;
  bool valid;
};

// A wgmma's result, added to its accumulator registers when its group is waited for, and what its operands were at
// issue: the GPU may read them any time until then, so a change before the wait is an error.
struct PendingProduct {
  float* accumulators = nullptr;
  std::vector<float> values;
  const uint32_t* a_registers = nullptr;  // this thread's A fragment, when A comes from registers
  uint32_t a_copy[4] = {};
  // Kept by the warpgroup's first thread only: the descriptors and the shared-memory values they read.
  uint64_t a_descriptor = 0, b_descriptor = 0;
  int n = 0;
  std::vector<float> shared_operands;
};

// A thread's asynchronous operations of one kind (cp.async copies, wgmma products): those issued since the last
// commit, then the committed groups, oldest first.
template <typename Operation>
struct AsyncGroups {
  std::vector<Operation> open;
  std::vector<std::vector<Operation>> committed;

  void commit() {
    committed.push_back(std::move(open));
    open.clear();
  }
  // wait_group: completes every committed group but the newest `pending`.
  template <typename Complete>
  void wait(int pending, const Complete& complete) {
    while (int(committed.size()) > pending) {
      for (const Operation& operation : committed.front()) complete(operation);
      committed.erase(committed.begin());
    }
  }
  bool empty() const { return open.empty() && committed.empty(); }
  void clear() {
    open.clear();
    committed.clear();
  }
};

struct Fiber {
  ucontext_t context{};
  AsyncGroups<PendingCopy> copies;
  AsyncGroups<PendingProduct> products;
  bool fenced = false;  // a wgmma.fence since the last wait
  std::unique_ptr<char[]> stack;
  Dim3 index;
  int linear = 0;
  bool done = false;
  const uint64_t* waits_on = nullptr;  // a barrier's generation counter, until it moves on
  uint64_t waited_generation = 0;
};

// Exchange space of one warp / warpgroup for its collectives.
struct WarpSlots {
  float values[32];
  double wide_values[32];
  float wmma_a[256], wmma_b[256], wmma_d[256];  // row-major 16 x 16
  uint32_t a[32][4], b[32][2];
  float product[16 * 8];
};
struct WarpgroupSlots {
  uint32_t a[128][4];
  uint64_t descriptors[128][2];
  float product[64 * 256];
};

struct Grid {
  Dim3 shape, block_shape, block_index;
  size_t shared_bytes = 0;
  LaunchOrder order;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  ucontext_t scheduler{};
  const std::function<void()>* kernel = nullptr;
  Barrier block_barrier;
  std::vector<Barrier> warp_barriers, warpgroup_barriers;
  std::vector<WarpSlots> warp_slots;
  std::vector<WarpgroupSlots> warpgroup_slots;
#ifdef K5_EMULATOR_ASAN
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
#endif
};

Grid* grid = nullptr;

Fiber& current() {
  if (!grid || !grid->current) fail("a CUDA builtin was called outside an emulated kernel");
  return *grid->current;
}

// Switches from the running fiber back to the scheduler.
void yield_to_scheduler() {
  Fiber& fiber = current();
#ifdef K5_EMULATOR_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, grid->scheduler_stack_bottom, grid->scheduler_stack_size);
#endif
  swapcontext(&fiber.context, &grid->scheduler);
#ifdef K5_EMULATOR_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// Waits until all `expected` threads of the barrier's group have arrived. The thread that completes it runs
// `on_complete` first (with the whole group's deposits in place).
void arrive_and_wait(Barrier& barrier, const std::function<void()>& on_complete = {}) {
  const uint64_t generation = barrier.generation;
  if (++barrier.arrived == barrier.expected) {
    if (on_complete) on_complete();
    barrier.arrived = 0;
    ++barrier.generation;
    return;
  }
  Fiber& fiber = current();
  fiber.waits_on = &barrier.generation;
  fiber.waited_generation = generation;
  yield_to_scheduler();
}

void fiber_main() {
#ifdef K5_EMULATOR_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &grid->scheduler_stack_bottom, &grid->scheduler_stack_size);
#endif
  (*grid->kernel)();
  Fiber& fiber = current();
  if (!fiber.copies.empty()) fail("a thread ends with cp.async copies that no wait_group retired");
  if (!fiber.products.empty()) fail("a thread ends with wgmma products that no wait_group retired");
  fiber.done = true;
#ifdef K5_EMULATOR_ASAN
  __sanitizer_start_switch_fiber(nullptr, grid->scheduler_stack_bottom, grid->scheduler_stack_size);
#endif
  // Returning resumes uc_link: the scheduler.
}

float bf16_value(uint32_t pair, int half) {
  const uint32_t word = (half ? pair >> 16 : pair & 0xffffu) << 16;
  float value;
  std::memcpy(&value, &word, 4);
  return value;
}

float shared_bf16(uint32_t address) {
  if (address + 2 > grid->shared_bytes)
    fail("wgmma reads shared memory at " + std::to_string(address) + ", past the " +
         std::to_string(grid->shared_bytes) + " bytes of the launch");
  uint16_t bits;
  std::memcpy(&bits, cuda::shared_memory + address, 2);
  return bf16_value(bits, 0);
}

// Element (row, k) of a K-major operand in the 128-byte swizzled layout the descriptor describes.
float descriptor_element(uint64_t descriptor, int row, int k) {
  const uint32_t start = uint32_t(descriptor & 0x3fff) << 4;
  const uint32_t leading = uint32_t((descriptor >> 16) & 0x3fff) << 4;
  const uint32_t stride = uint32_t((descriptor >> 32) & 0x3fff) << 4;
  const unsigned base_offset = unsigned((descriptor >> 49) & 7), layout = unsigned(descriptor >> 62);
  if (layout != 1 || base_offset != 0 || stride != 1024 || leading != 16)
    fail("wgmma descriptor is not K-major 128-byte swizzled with 1024-byte row groups (layout " +
         std::to_string(layout) + ", LBO " + std::to_string(leading) + ", SBO " + std::to_string(stride) + ")");
  uint32_t address = start + uint32_t(row / 8) * stride + uint32_t(row % 8) * 128 + uint32_t(k) * 2;
  address ^= ((address >> 7) & 7) << 4;
  return shared_bf16(address);
}

int linear_thread() { return current().linear; }

// A fresh context that runs fiber_main on the fiber's stack and then returns to `scheduler`. Its own function:
// getcontext returns twice, which would put the caller's loop variables at risk.
__attribute__((noinline)) void start_fiber(Fiber& fiber, ucontext_t& scheduler) {
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = fiber.stack.get();
  fiber.context.uc_stack.ss_size = kFiberStackBytes;
  fiber.context.uc_link = &scheduler;
  makecontext(&fiber.context, fiber_main, 0);
}

}  // namespace

const Dim3& thread_index() { return current().index; }
const Dim3& block_index() { return grid->block_index; }
const Dim3& block_dim() { return grid->block_shape; }
const Dim3& grid_dim() { return grid->shape; }

void sync_threads() { arrive_and_wait(grid->block_barrier); }

void sync_warp() { arrive_and_wait(grid->warp_barriers[size_t(linear_thread() / 32)]); }

int lane_id() { return linear_thread() % 32; }

void wmma_m16n16k16(float* d, const float* a, const float* b, const float* c) {
  const int warp = linear_thread() / 32, lane = linear_thread() % 32;
  WarpSlots& slots = grid->warp_slots[size_t(warp)];
  std::memcpy(slots.wmma_a + 8 * lane, a, 8 * sizeof(float));
  std::memcpy(slots.wmma_b + 8 * lane, b, 8 * sizeof(float));
  std::memcpy(slots.wmma_d + 8 * lane, c, 8 * sizeof(float));
  arrive_and_wait(grid->warp_barriers[size_t(warp)], [&slots] {
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float sum = slots.wmma_d[m * 16 + n];
        for (int k = 0; k < 16; ++k) sum += slots.wmma_a[m * 16 + k] * slots.wmma_b[k * 16 + n];
        slots.wmma_d[m * 16 + n] = sum;
      }
  });
  std::memcpy(d, slots.wmma_d + 8 * lane, 8 * sizeof(float));
  arrive_and_wait(grid->warp_barriers[size_t(warp)]);  // everyone has read before the slots are reused
}

size_t shared_offset(const void* pointer) {
  const auto* byte = static_cast<const unsigned char*>(pointer);
  if (byte < cuda::shared_memory || byte >= cuda::shared_memory + cuda::kEmulatedSharedBytes)
    fail("__cvta_generic_to_shared of a pointer outside shared memory");
  return size_t(byte - cuda::shared_memory);
}

template <typename T>
T exchange_xor(T value, int lane_mask, T (&values)[32]) {
  const int thread = linear_thread(), warp = thread / 32, lane = thread % 32;
  values[lane] = value;
  arrive_and_wait(grid->warp_barriers[warp]);
  const T result = values[lane ^ lane_mask];
  arrive_and_wait(grid->warp_barriers[warp]);  // everyone has read before the slots are reused
  return result;
}

float shuffle_xor(float value, int lane_mask) {
  return exchange_xor(value, lane_mask, grid->warp_slots[linear_thread() / 32].values);
}

double shuffle_xor(double value, int lane_mask) {
  return exchange_xor(value, lane_mask, grid->warp_slots[linear_thread() / 32].wide_values);
}

void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b) {
  const int thread = linear_thread(), warp = thread / 32, lane = thread % 32;
  WarpSlots& slots = grid->warp_slots[warp];
  std::memcpy(slots.a[lane], a, sizeof(slots.a[lane]));
  std::memcpy(slots.b[lane], b, sizeof(slots.b[lane]));
  arrive_and_wait(grid->warp_barriers[warp], [&slots] {
    // A[r][k]: lane 4 (r % 8) + (k % 8) / 2, register (r >= 8) + 2 (k >= 8), half k % 2.
    // B[k][n]: lane 4 n + (k % 8) / 2, register k >= 8, half k % 2.
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 8; ++n) {
        float sum = 0.0f;
        for (int k = 0; k < 16; ++k) {
          const float a_value = bf16_value(slots.a[4 * (r % 8) + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)], k % 2);
          const float b_value = bf16_value(slots.b[4 * n + (k % 8) / 2][k >= 8], k % 2);
          sum += a_value * b_value;
        }
        slots.product[r * 8 + n] = sum;
      }
  });
  // D: d[e] is row g + 8 (e / 2), column 2t + e % 2.
  const int g = lane / 4, t = lane % 4;
  for (int e = 0; e < 4; ++e) d[e] += slots.product[(g + 8 * (e / 2)) * 8 + 2 * t + e % 2];
  arrive_and_wait(grid->warp_barriers[warp]);
}

namespace {

// The shared-memory operands of a wgmma m64nNk16 (A when a_descriptor is not 0, then B), as it reads them.
std::vector<float> shared_operands(uint64_t a_descriptor, uint64_t b_descriptor, int n) {
  std::vector<float> values;
  if (a_descriptor)
    for (int row = 0; row < 64; ++row)
      for (int k = 0; k < 16; ++k) values.push_back(descriptor_element(a_descriptor, row, k));
  for (int column = 0; column < n; ++column)
    for (int k = 0; k < 16; ++k) values.push_back(descriptor_element(b_descriptor, column, k));
  return values;
}

}  // namespace

void wgmma_m64k16_bf16(float* d, int n, const uint32_t* a, uint64_t a_descriptor, uint64_t b_descriptor) {
  const int thread = linear_thread(), group = thread / 128, member = thread % 128;
  if (grid->warpgroup_barriers[group].expected != 128) fail("wgmma in a block that is not whole warpgroups");
  if (!current().fenced) fail("wgmma issued without a wgmma.fence since the last wait_group");
  WarpgroupSlots& slots = grid->warpgroup_slots[group];
  if (a) std::memcpy(slots.a[member], a, sizeof(slots.a[member]));
  slots.descriptors[member][0] = a ? 0 : a_descriptor;
  slots.descriptors[member][1] = b_descriptor;
  arrive_and_wait(grid->warpgroup_barriers[group], [&] {
    for (int other = 0; other < 128; ++other)
      if (slots.descriptors[other][0] != slots.descriptors[0][0] ||
          slots.descriptors[other][1] != slots.descriptors[0][1])
        fail("wgmma descriptors differ across the warpgroup");
    // A in registers: warp row / 16 holds rows 16w .. 16w + 15 in the m16n8k16 A layout.
    static float a_values[64][16], b_values[256][16];
    for (int row = 0; row < 64; ++row)
      for (int k = 0; k < 16; ++k) {
        const int r = row % 16;
        a_values[row][k] =
            a ? bf16_value(slots.a[32 * (row / 16) + 4 * (r % 8) + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)], k % 2)
              : descriptor_element(a_descriptor, row, k);
      }
    for (int column = 0; column < n; ++column)
      for (int k = 0; k < 16; ++k) b_values[column][k] = descriptor_element(b_descriptor, column, k);
    for (int row = 0; row < 64; ++row)
      for (int column = 0; column < n; ++column) {
        float sum = 0.0f;
        for (int k = 0; k < 16; ++k) sum += a_values[row][k] * b_values[column][k];
        slots.product[row * n + column] = sum;
      }
  });
  // D: warp w, lane 4g + t: d[4i + e] is row 16w + g + 8 (e / 2), column 8i + 2t + e % 2. Added at the wait.
  const int warp = member / 32, g = member % 32 / 4, t = member % 4;
  PendingProduct product;
  product.accumulators = d;
  product.values.resize(size_t(n / 2));
  for (int i = 0; i < n / 8; ++i)
    for (int e = 0; e < 4; ++e)
      product.values[size_t(4 * i + e)] = slots.product[(16 * warp + g + 8 * (e / 2)) * n + 8 * i + 2 * t + e % 2];
  if (a) {
    product.a_registers = a;
    std::memcpy(product.a_copy, a, sizeof(product.a_copy));
  }
  if (member == 0) {
    product.a_descriptor = a ? 0 : a_descriptor;
    product.b_descriptor = b_descriptor;
    product.n = n;
    product.shared_operands = shared_operands(product.a_descriptor, b_descriptor, n);
  }
  current().products.open.push_back(std::move(product));
  arrive_and_wait(grid->warpgroup_barriers[group]);
}

void wgmma_fence() { current().fenced = true; }

void wgmma_commit() { current().products.commit(); }

void wgmma_wait(int pending_groups) {
  Fiber& fiber = current();
  if (!fiber.products.open.empty()) fail("wgmma.wait_group with wgmma products not committed");
  fiber.products.wait(pending_groups, [](const PendingProduct& product) {
    if (product.a_registers && std::memcmp(product.a_registers, product.a_copy, sizeof(product.a_copy)) != 0)
      fail("a wgmma's A registers changed before the wait_group that retires it");
    if (!product.shared_operands.empty()) {
      const std::vector<float> now = shared_operands(product.a_descriptor, product.b_descriptor, product.n);
      if (std::memcmp(now.data(), product.shared_operands.data(), now.size() * sizeof(float)) != 0)
        fail("shared memory a wgmma reads changed before the wait_group that retires it");
    }
    for (size_t i = 0; i < product.values.size(); ++i) product.accumulators[i] += product.values[i];
  });
  fiber.fenced = false;
}

namespace {

void land(const PendingCopy& copy) {
  if (copy.valid)
    std::memcpy(cuda::shared_memory + copy.shared_address, copy.global, 16);
  else
    std::memset(cuda::shared_memory + copy.shared_address, 0, 16);
}

}  // namespace

void copy_16(uint32_t shared_address, const void* global, bool valid) {
  if (shared_address % 16 != 0 || shared_address + 16 > grid->shared_bytes)
    fail("cp.async to shared offset " + std::to_string(shared_address) + " (misaligned or past the launch's " +
         std::to_string(grid->shared_bytes) + " bytes)");
  if (valid && reinterpret_cast<uintptr_t>(global) % 16 != 0) fail("cp.async from a misaligned global address");
  if (grid->order.copies == CopyLanding::at_issue)
    land(PendingCopy{shared_address, global, valid});
  else
    current().copies.open.push_back({shared_address, global, valid});
}

void commit_copies() { current().copies.commit(); }

void wait_copies(int pending_groups) { current().copies.wait(pending_groups, land); }

void run_grid(Dim3 grid_shape, Dim3 block, size_t shared_bytes, LaunchOrder order,
              const std::function<void()>& kernel) {
  if (shared_bytes > cuda::kEmulatedSharedBytes) fail("a launch asks for more shared memory than a GPU block has");
  const int threads = int(block.x * block.y * block.z);
  if (threads % 32 != 0) fail("the emulator runs whole warps only");
  Grid state;
  state.shape = grid_shape;
  state.block_shape = block;
  state.shared_bytes = shared_bytes;
  state.order = order;
  state.kernel = &kernel;
  state.fibers.resize(size_t(threads));
  for (Fiber& fiber : state.fibers) fiber.stack.reset(new char[kFiberStackBytes]);
  state.warp_slots.resize(size_t(threads / 32));
  state.warpgroup_slots.resize(size_t((threads + 127) / 128));
  grid = &state;
  for (unsigned bz = 0; bz < grid_shape.z; ++bz)
    for (unsigned by = 0; by < grid_shape.y; ++by)
      for (unsigned bx = 0; bx < grid_shape.x; ++bx) {
        state.block_index = {bx, by, bz};
        state.block_barrier = {threads, 0, 0};
        state.warp_barriers.assign(size_t(threads / 32), Barrier{32, 0, 0});
        state.warpgroup_barriers.assign(size_t((threads + 127) / 128), Barrier{std::min(threads, 128), 0, 0});
#ifdef K5_EMULATOR_ASAN
        ASAN_UNPOISON_MEMORY_REGION(cuda::shared_memory, cuda::kEmulatedSharedBytes);
#endif
        std::memset(cuda::shared_memory, 0xff, shared_bytes);
#ifdef K5_EMULATOR_ASAN
        ASAN_POISON_MEMORY_REGION(cuda::shared_memory + shared_bytes, cuda::kEmulatedSharedBytes - shared_bytes);
#endif
        for (int i = 0; i < threads; ++i) {
          Fiber& fiber = state.fibers[size_t(i)];
          fiber.linear = i;
          fiber.index = {unsigned(i) % block.x, unsigned(i) / block.x % block.y, unsigned(i) / (block.x * block.y)};
          fiber.done = false;
          fiber.waits_on = nullptr;
          fiber.copies.clear();
          fiber.products.clear();
          fiber.fenced = false;
          start_fiber(fiber, state.scheduler);
        }
        // Always the first runnable thread in schedule order: one end of the block runs as far ahead as the
        // barriers let it, which is where a missing barrier shows.
        for (int remaining = threads; remaining > 0;) {
          bool ran = false;
          for (int position = 0; position < threads && !ran; ++position) {
            Fiber& fiber =
                state.fibers[size_t(order.schedule == Schedule::first_warps_ahead ? position : threads - 1 - position)];
            if (fiber.done || (fiber.waits_on && *fiber.waits_on == fiber.waited_generation)) continue;
            fiber.waits_on = nullptr;
            state.current = &fiber;
#ifdef K5_EMULATOR_ASAN
            void* fake_stack = nullptr;
            __sanitizer_start_switch_fiber(&fake_stack, fiber.stack.get(), kFiberStackBytes);
#endif
            swapcontext(&state.scheduler, &fiber.context);
#ifdef K5_EMULATOR_ASAN
            __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
            state.current = nullptr;
            ran = true;
            if (fiber.done) --remaining;
          }
          if (!ran) fail("deadlock: every remaining thread waits at a barrier the others never reach");
        }
      }
#ifdef K5_EMULATOR_ASAN
  ASAN_UNPOISON_MEMORY_REGION(cuda::shared_memory, cuda::kEmulatedSharedBytes);
#endif
  grid = nullptr;
}

}  // namespace k5::emulation
