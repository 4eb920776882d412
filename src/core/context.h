// The execution context: owns the thread pool, the activation workspace and the logger. Model code receives
// it and passes it to every op; there is no global mutable state.
#pragma once

#include <memory>

#include "core/log.h"
#include "core/storage.h"
#include "core/thread_pool.h"
#include "core/workspace.h"

namespace k5 {

// How a model computes: fp32 is the parity mode; bf16 uses BF16 weights and matmul inputs with float32
// accumulation, norms, modulation and RoPE in float32 (as the official autocast run).
enum class Precision { fp32, bf16 };
const char* precision_name(Precision precision);
Precision parse_precision(const std::string& name);

// "cpu", "cuda" or "auto": CUDA when this build has the CUDA backend and a GPU answers, else the CPU.
Device parse_device(const std::string& name);
Device default_device();

struct ContextOptions {
  int threads = 0;  // 0 = one per core
  Device device = Device::CPU;
  Precision precision = Precision::bf16;
  LogLevel log_level = LogLevel::info;
};

class Context {
 public:
  explicit Context(const ContextOptions& options = {});

  ThreadPool& pool() { return pool_; }
  // The activation arena of a device (the CUDA one is made on first use).
  Workspace& workspace(Device device = Device::CPU);
  // Gives the workspaces' memory back between uses (an idle server); see Workspace::trim.
  void trim_workspaces();
  const Logger& log() const { return logger_; }
  Logger& log() { return logger_; }
  Device device() const { return options_.device; }
  Precision precision() const { return options_.precision; }
  int threads() const { return pool_.size(); }
  // OpenMP's team size (the GEMMs' threads) is set per thread: a thread other than the one that made the Context
  // calls this before running ops with it.
  void use_on_this_thread() const;

 private:
  ContextOptions options_;
  ThreadPool pool_;
  Workspace workspace_;
  std::unique_ptr<Workspace> cuda_workspace_;
  Logger logger_;
};

}  // namespace k5
