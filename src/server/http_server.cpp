#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/atomic_file.h"
#include "io/image_file.h"
#include "io/video_file.h"
#include "models/crossdit/lora.h"
#include "pipelines/generation.h"
#include "server/generation_order.h"
#include "server/job_queue.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A client's mistake: answered with `status` and the message; other exceptions are the server's (500).
struct RequestError : Error {
  RequestError(int status, const std::string& message) : Error(message), status(status) {}
  int status;
};

void send_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& response, int status, const std::string& message) {
  send_json(response, status, json{{"error", message}});
}

std::string iso_time(JobSnapshot::Clock::time_point time) {
  const std::time_t seconds = JobSnapshot::Clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  return concat(text, '.', std::string(millis < 100 ? (millis < 10 ? "00" : "0") : ""), millis, 'Z');
}

json job_json(const JobSnapshot& job) {
  json out{{"id", job.id}, {"status", job_status_name(job.status)}, {"settings", json::parse(job.summary)}};
  out["created_at"] = iso_time(job.created);
  if (job.status == JobStatus::queued) out["queue_position"] = job.queue_position;
  if (job.status != JobStatus::queued) out["started_at"] = iso_time(job.started);
  if (!job.progress.stage.empty()) {
    out["progress"] = json{{"stage", job.progress.stage}, {"done", job.progress.done}, {"total", job.progress.total}};
    if (!job.progress.detail.empty()) out["progress"]["detail"] = job.progress.detail;
  }
  if (job.stopping) out["stopping"] = true;
  if (job.status == JobStatus::succeeded || job.status == JobStatus::failed) {
    out["finished_at"] = iso_time(job.finished);
    out["seconds"] = std::chrono::duration<double>(job.finished - job.started).count();
  }
  if (job.status == JobStatus::failed) out["error"] = job.error;
  if (job.status == JobStatus::succeeded) {
    if (!job.result.expanded_prompt.empty()) out["expanded_prompt"] = job.result.expanded_prompt;
    out["result"] = json{{"url", "/v1/generations/" + job.id + "/result"}, {"content_type", job.result.content_type}};
  }
  return out;
}

const char* content_type(const std::string& format) {
  if (format == "mp4") return "video/mp4";
  if (format == "jpg") return "image/jpeg";
  if (format == "webp") return "image/webp";
  return "image/png";
}

std::string random_name() {
  std::mt19937_64 random{std::random_device{}()};
  return concat(std::hex, random());
}

// The adapters a server offers: the .safetensors files and the folders holding one, directly in lora_dir.
std::vector<std::string> offered_loras(const std::string& lora_dir) {
  std::vector<std::string> names;
  if (lora_dir.empty()) return names;
  for (const auto& entry : fs::directory_iterator(lora_dir)) {
    const fs::path& path = entry.path();
    const bool file = entry.is_regular_file() && path.extension() == ".safetensors";
    const bool folder = entry.is_directory() &&
                        (fs::exists(path / "lora.safetensors") || fs::exists(path / "adapter_model.safetensors"));
    if (file || folder) names.push_back(path.filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

struct GenerationServer::Impl {
  ServerOptions options;
  ModelFiles default_files;
  fs::path output_dir;
  bool temporary_output = false;
  std::atomic<bool> stopping{false};
  Logger log;
  Context context;  // the worker's: only jobs use it
  httplib::Server http;
  std::unique_ptr<JobQueue> queue;  // its worker uses the members above: stopped first

  explicit Impl(const ServerOptions& o)
      : options(o),
        default_files(find_model_files(o.model, o.overrides)),
        log(o.context.log_level),
        context(o.context),
        queue(std::make_unique<JobQueue>(o.max_queued, o.max_kept)) {
    K5_CHECK(o.lora_dir.empty() || fs::is_directory(o.lora_dir), "--lora-dir ", o.lora_dir, ": not a folder");
    K5_CHECK(o.max_queued > 0 && o.max_kept > 0, "--queue and --keep must be at least 1");
    if (o.output_dir.empty()) {
      output_dir = fs::temp_directory_path() / ("k5-serve-" + random_name());
      temporary_output = true;
    } else {
      output_dir = o.output_dir;
    }
    std::error_code error;
    fs::create_directories(output_dir, error);
    K5_CHECK(fs::is_directory(output_dir), "--output-dir ", output_dir.string(), ": cannot create the folder");
    routes();
  }

  ~Impl() {
    queue.reset();
    if (temporary_output) {
      std::error_code ignored;
      fs::remove_all(output_dir, ignored);
    }
  }

  // Runs `handle`, answering its RequestError / k5::Error as a client mistake (400 unless it says) and anything
  // else as the server's failure.
  template <typename Handle>
  auto guarded(Handle handle) {
    return [this, handle](const httplib::Request& request, httplib::Response& response) {
      try {
        handle(request, response);
      } catch (const RequestError& e) {
        send_error(response, e.status, e.what());
      } catch (const QueueFull& e) {
        response.set_header("Retry-After", "10");
        send_error(response, 503, e.what());
      } catch (const Error& e) {
        send_error(response, 400, e.what());
      } catch (const std::bad_alloc&) {
        send_error(response, 500, "out of memory");
      } catch (const std::exception& e) {
        send_error(response, 500, e.what());
      }
    };
  }

  void routes() {
    http.set_payload_max_length(options.max_body_bytes);
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& response) {
          if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          if (response.status == 413)
            send_error(response, 413, concat("the request body is larger than ", options.max_body_bytes, " bytes"));
          else if (response.status == 404)
            send_error(response, 404, "no such endpoint (see README \"HTTP server\")");
          else
            send_error(response, response.status, concat("HTTP error ", response.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_logger([this](const httplib::Request& request, const httplib::Response& response) {
      log.debug(request.method, ' ', request.path, ' ', response.status);
    });
    http.Get("/health", guarded([this](const httplib::Request&, httplib::Response& response) {
               send_json(response, 200, json{{"status", "ok"}, {"queued", queue->queued()}});
             }));
    http.Get("/v1/model", guarded([this](const httplib::Request& request, httplib::Response& response) {
               describe_model(request, response);
             }));
    http.Post("/v1/generations", guarded([this](const httplib::Request& request, httplib::Response& response) {
                submit(request, response);
              }));
    http.Get("/v1/generations", guarded([this](const httplib::Request&, httplib::Response& response) {
               json all = json::array();
               for (const JobSnapshot& job : queue->list()) all.push_back(job_json(job));
               send_json(response, 200, json{{"generations", all}});
             }));
    http.Get("/v1/generations/([0-9a-f]+)",
             guarded([this](const httplib::Request& request, httplib::Response& response) {
               send_json(response, 200, job_json(find_job(request.matches[1])));
             }));
    http.Get("/v1/generations/([0-9a-f]+)/result",
             guarded([this](const httplib::Request& request, httplib::Response& response) {
               send_result(find_job(request.matches[1]), response);
             }));
    http.Delete("/v1/generations/([0-9a-f]+)",
                guarded([this](const httplib::Request& request, httplib::Response& response) {
                  const std::string id = request.matches[1];
                  switch (queue->remove(id)) {
                    case JobQueue::Removal::unknown:
                      throw RequestError(404, "no generation " + id);
                    case JobQueue::Removal::removed:
                      send_json(response, 200, json{{"id", id}, {"status", "removed"}});
                      break;
                    case JobQueue::Removal::stopping:
                      send_json(response, 202, json{{"id", id}, {"status", "stopping"}});
                      break;
                  }
                }));
  }

  JobSnapshot find_job(const std::string& id) const {
    std::optional<JobSnapshot> job = queue->find(id);
    if (!job)
      throw RequestError(404, "no generation " + id + " (finished ones are kept until " +
                                  std::to_string(options.max_kept) + " newer ones finish)");
    return *job;
  }

  ModelFiles files_for(const std::string& config) const {
    if (config.empty()) return default_files;
    ModelOverrides overrides = options.overrides;
    overrides.config = config;
    return find_model_files(options.model, overrides);
  }

  void describe_model(const httplib::Request& request, httplib::Response& response) const {
    const std::string name = request.get_param_value("config");
    K5_CHECK(name.find('/') == std::string::npos && !name.starts_with("."), "config must be a name, not a path");
    const ModelFiles files = files_for(name);
    const KandinskyConfig& config = files.config;
    const bool video = config.is_video();
    const bool edit = config.dit.instruct_type == "channel";
    json sizes = json::array();
    for (const auto& [height, width] : allowed_sizes(config)) sizes.push_back({width, height});
    json modes = json::array();
    if (video) modes.push_back("text-to-video");
    if (video && config.dit.visual_cond) modes.push_back("image-to-video");
    if (!video) modes.push_back(edit ? "image editing" : "text-to-image");
    send_json(response, 200,
              json{{"config", fs::path(config.source).stem().string()},
                   {"modes", modes},
                   {"video", video},
                   {"sizes", sizes},
                   {"steps", config.num_steps},
                   {"cfg_scale", config.guidance_weight},
                   {"magcache", !config.mag_ratios.empty()},
                   {"lora", offered_loras(options.lora_dir)},
                   {"device", context.device() == Device::CUDA ? "cuda" : "cpu"},
                   {"precision", precision_name(context.precision())}});
  }

  // Request adapter names are looked up in --lora-dir only: a client names no other file of the server.
  std::string lora_spec(const std::string& text) const {
    if (options.lora_dir.empty())
      throw RequestError(400, "this server takes no LoRA adapters (start it with --lora-dir)");
    const LoraSpec spec = parse_lora_spec(text);
    const fs::path name(spec.path);
    bool inside = !name.empty() && name.is_relative();
    for (const auto& part : name) inside = inside && part != ".." && part != ".";
    if (!inside) throw RequestError(400, "lora '" + text + "': name an adapter of the server's LoRA folder");
    const fs::path path = fs::path(options.lora_dir) / name;
    if (!fs::exists(path)) throw RequestError(400, "lora '" + spec.path + "': no such adapter on this server");
    return path.string() + text.substr(spec.path.size());  // the ":MULTIPLIER" as written
  }

  // Settles the order as `k5 generate` would. The request's adapter names become paths in --lora-dir and the
  // uploaded image a temporary file, but answers and output files name them as the client did.
  GenerationPlan plan(const GenerationOrder& order, const ModelFiles& files) const {
    GenerationRequest request = order.request;
    for (std::string& lora : request.loras) lora = lora_spec(lora);
    std::string upload;
    auto remove_upload = [&upload] {
      std::error_code ignored;
      if (!upload.empty()) fs::remove(upload, ignored);
    };
    try {
      if (!order.init_image_bytes.empty()) {
        upload = (output_dir / (".upload-" + random_name())).string();
        write_atomically(upload, [&](const std::string& path) {
          std::ofstream out(path, std::ios::binary);
          out.write(order.init_image_bytes.data(), std::streamsize(order.init_image_bytes.size()));
          K5_CHECK(out.good(), "cannot store the uploaded image in ", output_dir.string());
        });
        request.init_image = upload;
      }
      GenerationPlan settled = plan_generation(files.config, request);
      remove_upload();
      for (size_t i = 0; i < settled.loras.size(); ++i)
        settled.loras[i].given_path = parse_lora_spec(order.request.loras[i]).path;
      return settled;
    } catch (const Error& e) {
      remove_upload();
      std::string message = e.what();
      auto replace_all = [&message](const std::string& from, const std::string& to) {
        if (from.empty()) return;
        for (size_t at = 0; (at = message.find(from, at)) != std::string::npos; at += to.size())
          message.replace(at, from.size(), to);
      };
      replace_all(upload, "init_img");
      if (!options.lora_dir.empty()) replace_all((fs::path(options.lora_dir) / "").string(), "");
      throw Error(message);
    }
  }

  void submit(const httplib::Request& request, httplib::Response& response) {
    GenerationOrder order = parse_generation_order(request.body);
    if (order.random_seed) order.request.seed = std::random_device{}();  // as `k5 generate -s -1`
    const ModelFiles files = files_for(order.config);
    auto plan = std::make_shared<const GenerationPlan>(this->plan(order, files));
    if (order.format.empty()) order.format = plan->is_video() ? "mp4" : "png";
    K5_CHECK((order.format == "mp4") == plan->is_video(), "format '", order.format, "': this model makes ",
             plan->is_video() ? "videos (mp4)" : "images (png, jpg or webp)");

    json settings{{"config", fs::path(files.config.source).stem().string()},
                  {"mode", generation_mode_name(plan->mode)},
                  {"prompt", plan->prompt},
                  {"negative_prompt", plan->negative_prompt},
                  {"width", plan->width},
                  {"height", plan->height},
                  {"steps", plan->steps},
                  {"cfg_scale", plan->guidance},
                  {"scheduler_scale", plan->scheduler_scale},
                  {"seed", plan->seed},
                  {"rng", plan->rng == RngDevice::cuda ? "cuda" : "cpu"},
                  {"expand_prompt", plan->expand_prompt},
                  {"magcache", plan->magcache},
                  {"format", order.format}};
    if (plan->is_video()) settings["frames"] = plan->frames;
    if (!order.request.loras.empty()) settings["lora"] = order.request.loras;  // as named

    JobWork work = [this, plan, files, format = order.format, quality = order.quality, crf = order.crf](
                       const std::string& id, const GenerationObserver& observer) {
      context.use_on_this_thread();  // jobs run on the queue's thread
      const GenerationResult result = generate(context, files, *plan, observer);
      const std::string path = (output_dir / (id + "." + format)).string();
      const auto metadata = generation_metadata(*plan, files, context.precision(), result.expanded_prompt);
      if (format == "mp4")
        write_mp4(path, result.frames, VideoWriteOptions{24, crf, metadata});
      else
        write_image(path, result.frames.front(), metadata, quality);
      return JobResult{path, content_type(format), result.expanded_prompt};
    };
    const JobSnapshot job = queue->submit(settings.dump(), std::move(work));
    log.info("generation ", job.id, " queued: ", settings.dump());
    response.set_header("Location", "/v1/generations/" + job.id);
    send_json(response, 202, job_json(job));
  }

  void send_result(const JobSnapshot& job, httplib::Response& response) const {
    if (job.status == JobStatus::failed) throw RequestError(409, "generation " + job.id + " failed: " + job.error);
    if (job.status != JobStatus::succeeded)
      throw RequestError(409, concat("generation ", job.id, " is ", job_status_name(job.status), "; no result yet"));
    std::ifstream in(job.result.file, std::ios::binary);
    if (!in) throw RequestError(410, "generation " + job.id + ": its result was removed");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    response.set_header("Content-Disposition",
                        "inline; filename=\"k5-" + job.id + fs::path(job.result.file).extension().string() + "\"");
    response.set_content(std::move(bytes), job.result.content_type.c_str());
  }
};

GenerationServer::GenerationServer(const ServerOptions& options) : impl_(std::make_unique<Impl>(options)) {}

GenerationServer::~GenerationServer() = default;

int GenerationServer::bind(const std::string& host, int port) {
  const int bound = port == 0 ? impl_->http.bind_to_any_port(host) : (impl_->http.bind_to_port(host, port) ? port : -1);
  K5_CHECK(bound > 0, "cannot listen on ", host, ":", port, " (address in use, or not an address of this machine)");
  return bound;
}

void GenerationServer::listen() {
  impl_->log.info("serving ", fs::path(impl_->default_files.config.source).stem().string(), "; results in ",
                  impl_->output_dir.string());
  impl_->http.listen_after_bind();
}

void GenerationServer::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

bool GenerationServer::stopping() const { return impl_->stopping; }

const JobQueue& GenerationServer::jobs() const { return *impl_->queue; }

}  // namespace k5
