// `k5 serve`: the HTTP API of src/server/http_server.h over one model folder, until SIGINT or SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <memory>
#include <thread>

#include "cli/command.h"
#include "server/http_server.h"

namespace k5::cli {
namespace {

struct ServeOptions {
  ServerOptions server;
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body_mb = 64;
  std::vector<std::string> int8_weights;
  std::string keep_models = "auto";
};

// The first SIGINT / SIGTERM wakes the main thread through this pipe (whichever thread the signal lands on, GPU
// driver threads included); the default action is back for the next one, so a second Ctrl-C ends k5 at once.
int wake_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signal) {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  const char byte = char(signal);
  [[maybe_unused]] const ssize_t written = write(wake_pipe[1], &byte, 1);
}

int run_serve(ServeOptions& o) {
  K5_CHECK(o.port >= 0 && o.port <= 65535, "--port must be within 0..65535");
  o.server.max_body_bytes = o.max_body_mb << 20;
  o.server.int8_weights = parse_int8_weights(o.int8_weights);
  o.server.keep_models = parse_keep_models(o.keep_models);
  GenerationServer server(o.server);
  const int port = server.bind(o.host, o.port);
  K5_CHECK(pipe(wake_pipe) == 0, "cannot create a pipe");
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  // Always printed, even with -q: a script started with --port 0 reads the port from this line.
  std::fprintf(stderr, "k5 serve: listening on http://%s:%d\n", o.host.c_str(), port);

  std::atomic<bool> listener_failed{false};
  std::thread listener([&server, &listener_failed] {
    server.listen();
    if (!server.stopping()) {  // the socket failed: wake the main thread
      listener_failed = true;
      const char byte = 0;
      [[maybe_unused]] const ssize_t written = write(wake_pipe[1], &byte, 1);
    }
  });
  char signal = 0;
  while (read(wake_pipe[0], &signal, 1) < 0 && errno == EINTR) {
  }
  if (listener_failed) {
    listener.join();
    fail("the HTTP listener stopped on a socket error");
  }
  Logger(o.server.context.log_level)
      .info("k5 serve: ", signal == SIGINT ? "interrupted" : "terminated",
            "; stopping (the running job stops at its next step, queued ones are dropped)");
  server.stop();
  listener.join();
  return 0;
}

}  // namespace

K5_COMMAND("serve", "HTTP API: queued generations with progress over one model folder (see README)",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<ServeOptions>();
             ServerOptions& s = o->server;
             add_context_options(app, s.context);
             app.add_option("-m,--model", s.model,
                            "model folder (official layout: configs/*.yaml + weights/) or an official config .yaml")
                 ->required();
             app.add_option("--config", s.overrides.config,
                            "the default config when the folder has several (requests may name another)");
             app.add_option("--dit", s.overrides.dit, "DiT .safetensors (overrides the config's)");
             app.add_option("--vae", s.overrides.vae, "VAE folder (overrides the config's)");
             app.add_option("--text-encoder", s.overrides.text_encoder, "Qwen2.5-VL folder (overrides)");
             app.add_option("--text-encoder2", s.overrides.text_encoder2, "CLIP text folder (overrides)");
             add_int8_weights_option(app, o->int8_weights);
             app.add_option("--keep-models", o->keep_models,
                            "keep the models loaded between jobs: auto (default: while they take at most half of the "
                            "GPU's memory or of the RAM), on, off (load them for each job: the least memory)");
             app.add_option("--unload-after", s.unload_after_seconds,
                            "release the models kept loaded after this many seconds without a job (default 0: never)");
             app.add_option("--host", o->host, "address to listen on (default 127.0.0.1: this machine only)");
             app.add_option("--port", o->port, "port (default 8080; 0: any free one, printed)");
             app.add_option("--lora-dir", s.lora_dir,
                            "folder of LoRA adapters requests may name (default: none; requests cannot name files)");
             app.add_option("--output-dir", s.output_dir,
                            "where results live while their jobs are kept (default: a temporary folder)");
             app.add_option("--queue", s.max_queued, "waiting jobs beyond this are refused with 503 (default 8)")
                 ->check(CLI::PositiveNumber);
             app.add_option("--keep", s.max_kept, "finished jobs kept with their results (default 32)")
                 ->check(CLI::PositiveNumber);
             app.add_option("--max-body-mb", o->max_body_mb, "largest request body in MiB (default 64)")
                 ->check(CLI::Range(1, 4096));
             return [o]() { return run_serve(*o); };
           });

}  // namespace k5::cli
