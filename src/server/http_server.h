// `k5 serve`: generation over HTTP. One model folder per server; requests are queued and run one at a time
// (src/server/job_queue.h), each as `k5 generate` runs it. The API (README "HTTP server"):
//   POST   /v1/generations             a JSON body (src/server/generation_order.h) -> 202 and the job
//   GET    /v1/generations             every job kept, oldest first
//   GET    /v1/generations/ID          the job: status, queue position, progress, settings, error
//   GET    /v1/generations/ID/events   the same as server-sent events, at each change until it finishes
//   GET    /v1/generations/ID/result   the picture or video, once the job succeeded
//   DELETE /v1/generations/ID          removes the job (a running one stops at its next step)
//   GET    /v1/model                   the served config: sizes, defaults, modes, LoRA adapters on offer, the
//                                      models kept loaded
//   GET    /health                     liveness and queue length
//   POST   /v1/images/generations      OpenAI's Images API (src/server/generation_order.h ImagesOrder): the same
//   POST   /v1/images/edits            jobs, answered with the images once made; errors in OpenAI's shape
//   GET    /v1/models                  the configs, as OpenAI lists models
// Errors are {"error": "one line"} (OpenAI's shape on its endpoints): 4xx for requests the server cannot run (a
// setting, the model's files or an adapter it cannot read; a full queue is 503), 500 for its own failures (out of
// memory, a file it cannot write).
#pragma once

#include <memory>
#include <string>

#include "core/context.h"
#include "pipelines/generation.h"
#include "pipelines/model_files.h"

namespace k5 {

struct ServerOptions {
  std::string model;         // as `k5 generate -m`
  ModelOverrides overrides;  // the default config and component paths
  std::string lora_dir;      // requests name adapters inside it; empty: requests cannot name adapters
  Int8Weights int8_weights;  // for every job (the operator's choice of memory, not the client's)
  KeepModels keep_models = KeepModels::automatic;  // models kept loaded between jobs
  double unload_after_seconds = 0;                 // kept models are released after this long without a job; 0: never
  std::string output_dir;    // result files; empty: a temporary folder, removed when the server ends
  size_t max_queued = 8;     // waiting jobs beyond this are refused (503)
  size_t max_kept = 32;      // finished jobs kept, with their files; older ones are forgotten
  size_t max_body_bytes = size_t(64) << 20;
  ContextOptions context;
};

class GenerationServer {
 public:
  // Finds the model's files and checks the folders before any request is taken.
  explicit GenerationServer(const ServerOptions& options);
  ~GenerationServer();
  GenerationServer(const GenerationServer&) = delete;
  GenerationServer& operator=(const GenerationServer&) = delete;

  // Binds to `host`:`port` (0: a free port) and returns the port; the error names the address.
  int bind(const std::string& host, int port);
  // Serves until stop(); call after bind.
  void listen();
  // Safe from any thread; listen() returns soon after.
  void stop();
  bool stopping() const;  // stop() was called

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace k5
