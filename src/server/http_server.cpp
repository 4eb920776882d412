#include "server/http_server.h"

#include <httplib.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/system_memory.h"
#include "io/base64.h"
#include "models/crossdit/lora.h"
#include "pipelines/generation.h"
#include "pipelines/generation_output.h"
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

// Answers may quote bytes that are not UTF-8 (a tensor name in a corrupt file, say): replaced, never thrown on.
std::string json_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(json_text(body), "application/json");
}

// How errors look: k5's {"error": "one line"}, or OpenAI's {"error": {"message", "type", ...}} on its endpoints.
enum class ErrorStyle { k5, openai };
ErrorStyle error_style(const std::string& path) {
  return path.starts_with("/v1/images/") || path.starts_with("/v1/models") ? ErrorStyle::openai : ErrorStyle::k5;
}

// Messages may echo a client's text: kept to one line whatever it holds.
void send_error(httplib::Response& response, int status, std::string message, ErrorStyle style = ErrorStyle::k5) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  if (style == ErrorStyle::k5) {
    send_json(response, status, json{{"error", message}});
    return;
  }
  const char* type = status == 503 ? "service_unavailable" : status < 500 ? "invalid_request_error" : "server_error";
  send_json(response, status,
            json{{"error", json{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}});
}

// Every occurrence of `from` in `text` becomes `to`.
void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
}

std::string iso_time(JobSnapshot::Clock::time_point time) {
  const std::time_t seconds = JobSnapshot::Clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  return concat(text, '.', std::setfill('0'), std::setw(3), millis, 'Z');
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

// Uploaded images larger than this (either side) are refused: a queued job keeps its image.
constexpr int kMaxUploadSide = 8192;
// Requests that hold an HTTP thread for long (event streams, OpenAI-style requests waiting for their images) open at
// once; the rest of the API keeps the threads beyond these.
constexpr int kMaxLongRequests = 32;
constexpr size_t kHttpThreads = kMaxLongRequests + 8;

const char* content_type(const std::string& format) {
  if (format == "mp4") return "video/mp4";
  if (format == "jpg") return "image/jpeg";
  if (format == "webp") return "image/webp";
  return "image/png";
}

// Whether --lora would take this folder (find_lora_file).
bool is_adapter_folder(const fs::path& path) {
  try {
    find_lora_file(path.string());
    return true;
  } catch (const Error&) {
    return false;
  }
}

// The adapters a server offers: the .safetensors files directly in lora_dir, and its adapter folders.
std::vector<std::string> offered_loras(const std::string& lora_dir) {
  std::vector<std::string> names;
  if (lora_dir.empty()) return names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(lora_dir, error)) {
    const fs::path& path = entry.path();
    if (entry.is_regular_file(error) ? path.extension() == ".safetensors"
                                     : entry.is_directory(error) && is_adapter_folder(path))
      names.push_back(path.filename().string());
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
  // stop() may come before listen() has started httplib's loop, where httplib would ignore it.
  std::atomic<bool> stopping{false}, listen_started{false}, listen_returned{false};
  std::vector<std::pair<std::string, std::string>> server_paths;  // (path, what answers say instead), longest first
  Logger log;
  Context context;    // the worker's: only jobs use it
  ModelCache models;  // the worker's; GET /v1/model lists them
  httplib::Server http;
  std::atomic<int> long_requests{0};  // kMaxLongRequests
  std::unique_ptr<JobQueue> queue;  // its worker uses the members above: stopped first

  explicit Impl(const ServerOptions& o)
      : options(o),
        default_files(find_model_files(o.model, o.overrides)),
        log(o.context.log_level),
        context(o.context),
        models(o.keep_models),
        queue(std::make_unique<JobQueue>(o.max_queued, o.max_kept, release_when_idle(o))) {
    K5_CHECK(o.lora_dir.empty() || fs::is_directory(o.lora_dir), "--lora-dir ", o.lora_dir, ": not a folder");
    K5_CHECK(o.max_queued > 0 && o.max_kept > 0, "--queue and --keep must be at least 1");
    if (o.output_dir.empty()) {
      std::string pattern = (fs::temp_directory_path() / "k5-serve-XXXXXX").string();
      K5_CHECK(mkdtemp(pattern.data()), "cannot make a temporary results folder in ",
               fs::temp_directory_path().string());
      output_dir = pattern;
      temporary_output = true;
    } else {
      output_dir = o.output_dir;
      std::error_code error;
      fs::create_directories(output_dir, error);
      K5_CHECK(fs::is_directory(output_dir), "--output-dir ", output_dir.string(), ": cannot create the folder");
    }
    // Answers name the server's folders by role: a client learns nothing of its file system.
    auto hide = [this](const std::string& path, const std::string& instead) {
      server_paths.emplace_back(fs::absolute(path).lexically_normal().string(), instead);
      if (path.find('/') != std::string::npos)
        server_paths.emplace_back(path, instead);  // as given
      else
        server_paths.emplace_back(path + "/", instead + "/");  // a bare folder name, where it starts a path
    };
    if (!o.lora_dir.empty()) {
      hide((fs::path(o.lora_dir) / "").string(), "");  // adapters are named as the client named them
      hide(o.lora_dir, "<lora-dir>");
    }
    hide(output_dir.string(), "<results>");
    hide(o.model, "<model>");
    std::sort(server_paths.begin(), server_paths.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    routes();
  }

  // --unload-after: the kept models go once no job has come for that long, with the workspaces, and the memory
  // goes back to the system or the GPU's driver (for other programs).
  IdleWork release_when_idle(const ServerOptions& o) {
    constexpr int64_t kLongest = 10'000'000;  // ~4 months: a wait far beyond it would overflow the clock's arithmetic
    K5_CHECK(std::isfinite(o.unload_after_seconds) && o.unload_after_seconds >= 0 &&
                 o.unload_after_seconds <= double(kLongest),
             "--unload-after must be a number of seconds within 0..", kLongest, " (0: never)");
    if (o.unload_after_seconds == 0 || o.keep_models == KeepModels::off) return {};
    const auto after = std::chrono::milliseconds(std::max<int64_t>(1, std::llround(o.unload_after_seconds * 1000)));
    return IdleWork{after, [this, seconds = o.unload_after_seconds] {
                      const bool had_models = !models.loaded().empty();
                      models.clear();
                      context.trim_workspaces();
                      release_cached_memory(context.device());
                      if (had_models) log.info("kept models released after ", seconds, " s without a job");
                    }};
  }

  std::string client_message(std::string message) const {
    for (const auto& [path, instead] : server_paths) replace_all(message, path, instead);
    return message;
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
  auto guarded(Handle handle, ErrorStyle style = ErrorStyle::k5) {
    return [this, handle, style](const httplib::Request& request, httplib::Response& response) {
      try {
        handle(request, response);
      } catch (const RequestError& e) {
        send_error(response, e.status, client_message(e.what()), style);
      } catch (const QueueFull& e) {
        response.set_header("Retry-After", "10");
        send_error(response, 503, e.what(), style);
      } catch (const Error& e) {
        send_error(response, 400, client_message(e.what()), style);
      } catch (const std::bad_alloc&) {
        send_error(response, 500, "out of memory", style);
      } catch (const std::exception& e) {
        send_error(response, 500, client_message(e.what()), style);
      } catch (...) {
        send_error(response, 500, "internal error", style);
      }
    };
  }

  void routes() {
    // httplib bounds only bodies that state their length: chunked or compressed ones could grow without limit.
    http.set_payload_max_length(options.max_body_bytes);
    http.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
    http.set_pre_routing_handler([](const httplib::Request& request, httplib::Response& response) {
      if (request.has_header("Content-Encoding")) {
        send_error(response, 415, "compressed request bodies are not accepted", error_style(request.path));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (request.has_header("Transfer-Encoding") ||
          (request.method == "POST" && !request.has_header("Content-Length"))) {
        send_error(response, 411, "a request body needs a Content-Length (chunked bodies are not accepted)",
                   error_style(request.path));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& request,
                                                                       httplib::Response& response) {
      if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const ErrorStyle style = error_style(request.path);
      if (response.status == 413)
        send_error(response, 413, concat("the request body is larger than ", options.max_body_bytes, " bytes"), style);
      else if (response.status == 404)
        send_error(response, 404, "no such endpoint (see README \"HTTP server\")", style);
      else
        send_error(response, response.status, concat("HTTP error ", response.status), style);
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
    http.Get("/v1/generations/([0-9a-f]+)/events",
             guarded([this](const httplib::Request& request, httplib::Response& response) {
               send_events(find_job(request.matches[1]), response);
             }));
    http.Get("/v1/generations/([0-9a-f]+)/result",
             guarded([this](const httplib::Request& request, httplib::Response& response) {
               send_result(find_job(request.matches[1]), response);
             }));
    // OpenAI's Images API, for its clients: the same queue, answered when the images are made.
    http.Get("/v1/models",
             guarded(
                 [this](const httplib::Request&, httplib::Response& response) {
                   json data = json::array();
                   for (const std::string& name : config_names(options.model))
                     data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "k5"}});
                   send_json(response, 200, json{{"object", "list"}, {"data", data}});
                 },
                 ErrorStyle::openai));
    http.Post("/v1/images/generations", guarded(
                                            [this](const httplib::Request& request, httplib::Response& response) {
                                              make_images(request, parse_images_order(request.body), response);
                                            },
                                            ErrorStyle::openai));
    http.Post("/v1/images/edits",
              guarded([this](const httplib::Request& request,
                             httplib::Response& response) { make_images(request, images_edit(request), response); },
                      ErrorStyle::openai));
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

  // A request names a config of the served folder; any other name (a file of the server's working directory
  // would do for `k5 generate --config`) is refused.
  ModelFiles files_for(const std::string& config) const {
    if (config.empty()) return default_files;
    const auto names = config_names(options.model);
    if (std::find(names.begin(), names.end(), config) == names.end()) {
      std::string listed;
      for (const auto& name : names) listed += (listed.empty() ? "" : ", ") + name;
      throw RequestError(400, "no config '" + config + "' in the served model; available: " + listed);
    }
    ModelOverrides overrides = options.overrides;
    overrides.config = config;
    return find_model_files(options.model, overrides);
  }

  void describe_model(const httplib::Request& request, httplib::Response& response) const {
    const ModelFiles files = files_for(request.get_param_value("config"));
    const KandinskyConfig& config = files.config;
    const bool video = config.is_video();
    const bool edit = config.dit.instruct_type == "channel";
    json sizes = json::array();
    for (const auto& [height, width] : allowed_sizes(config)) sizes.push_back({width, height});
    json modes = json::array();
    if (video) modes.push_back(generation_mode_name(GenerationMode::t2v));
    if (video && config.dit.visual_cond) modes.push_back(generation_mode_name(GenerationMode::i2v));
    if (!video) modes.push_back(generation_mode_name(edit ? GenerationMode::i2i : GenerationMode::t2i));
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
                   {"precision", precision_name(context.precision())},
                   {"weights_int8", int8_weights_name(options.int8_weights)},
                   {"keep_models", keep_models_name(options.keep_models)},
                   {"loaded", loaded_models()}});
  }

  json loaded_models() const {
    json list = json::array();
    for (const ModelCache::Loaded& model : models.loaded())
      list.push_back({{"component", model.component}, {"name", model.name}, {"bytes", model.bytes}});
    return list;
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
    request.int8_weights = options.int8_weights;
    for (std::string& lora : request.loras) lora = lora_spec(lora);
    if (order.init_image_bytes.empty()) return named_as_requested(plan_generation(files.config, request), order);
    // plan_generation reads the image from a file: a temporary one, gone whatever happens, that errors call init_img.
    struct Upload {
      std::string path;
      ~Upload() {
        std::error_code ignored;
        if (!path.empty()) fs::remove(path, ignored);
      }
    } upload;
    try {
      std::string unique = (output_dir / ".upload-XXXXXX").string();
      const int descriptor = mkstemp(unique.data());
      if (descriptor < 0) throw RequestError(500, "cannot store the uploaded image (no temporary file)");
      close(descriptor);
      upload.path = unique;
      std::ofstream out(upload.path, std::ios::binary);
      out.write(order.init_image_bytes.data(), std::streamsize(order.init_image_bytes.size()));
      out.close();
      if (!out) throw RequestError(500, "cannot store the uploaded image (disk full?)");
      request.init_image = upload.path;
      GenerationPlan settled = plan_generation(files.config, request);
      // A queued plan holds the image as read: its size bounds the memory a queue of them takes.
      K5_CHECK(settled.original_image->width <= kMaxUploadSide && settled.original_image->height <= kMaxUploadSide,
               "init_img: ", settled.original_image->width, "x", settled.original_image->height, " is larger than ",
               kMaxUploadSide, "x", kMaxUploadSide);
      return named_as_requested(std::move(settled), order);
    } catch (const RequestError&) {
      throw;
    } catch (const Error& e) {
      std::string message = e.what();
      replace_all(message, upload.path, "init_img");
      throw Error(message);
    }
  }

  // Output metadata names the adapters as the request did, not by their place on the server.
  static GenerationPlan named_as_requested(GenerationPlan plan, const GenerationOrder& order) {
    for (size_t i = 0; i < plan.loras.size(); ++i)
      plan.loras[i].given_path = parse_lora_spec(order.request.loras[i]).path;
    return plan;
  }

  void submit(const httplib::Request& request, httplib::Response& response) {
    GenerationOrder order = parse_generation_order(request.body);
    queue->check_room();  // again when queued; refusing early spares reading images and adapters for nothing
    if (order.random_seed) order.request.seed = std::random_device{}();  // as `k5 generate -s -1`
    const JobSnapshot job = enqueue(order, {order.request.seed}).front();
    response.set_header("Location", "/v1/generations/" + job.id);
    send_json(response, 202, job_json(job));
  }

  // Settles `order` and queues it once per seed (as `k5 generate -b` runs a batch): every job is queued, or none.
  std::vector<JobSnapshot> enqueue(GenerationOrder& order, const std::vector<uint64_t>& seeds) {
    const ModelFiles files = files_for(order.config);
    const GenerationPlan settled = plan(order, files);
    if (order.format.empty()) order.format = settled.is_video() ? "mp4" : "png";
    K5_CHECK((order.format == "mp4") == settled.is_video(), "format '", order.format, "': this model makes ",
             settled.is_video() ? "videos (mp4)" : "images (png, jpg or webp)");
    std::vector<JobSnapshot> jobs;
    try {
      for (const uint64_t seed : seeds) {
        auto seeded = std::make_shared<GenerationPlan>(settled);
        seeded->seed = seed;
        jobs.push_back(enqueue_plan(std::move(seeded), files, order));
      }
    } catch (...) {
      for (const JobSnapshot& job : jobs) queue->remove(job.id);
      throw;
    }
    return jobs;
  }

  JobSnapshot enqueue_plan(std::shared_ptr<const GenerationPlan> plan, const ModelFiles& files,
                           const GenerationOrder& order) {
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
      const auto start = std::chrono::steady_clock::now();
      log.info("generation ", id, " started");
      try {
        const GenerationResult result = generate(context, files, *plan, models, observer);
        const std::string path = (output_dir / (id + "." + format)).string();
        write_generation(path, *plan, files, context.precision(), result, crf, quality);
        log.info("generation ", id, " succeeded in ", seconds_since(start), " s");
        return JobResult{path, content_type(format), result.expanded_prompt};
      } catch (const JobCancelled&) {
        log.info("generation ", id, " stopped after ", seconds_since(start), " s");
        throw;
      } catch (const std::bad_alloc&) {
        log.info("generation ", id, " failed after ", seconds_since(start), " s: out of memory");
        models.clear();  // the next job starts without the kept models
        throw;
      } catch (const std::exception& e) {
        log.info("generation ", id, " failed after ", seconds_since(start), " s: ", e.what());
        models.clear();                         // out of GPU memory beside kept models, say: the next job starts afresh
        throw Error(client_message(e.what()));  // the job's `error`, as clients read it
      }
    };
    const JobSnapshot job = queue->submit(json_text(settings), std::move(work));
    log.info("generation ", job.id, " queued: ", json_text(settings));
    return job;
  }

  // OpenAI's image edits: a multipart form with one "image" (or "image[]") file and the fields as text.
  ImagesOrder images_edit(const httplib::Request& request) const {
    K5_CHECK(request.is_multipart_form_data(), "image edits take a multipart/form-data body (image, prompt, ...)");
    std::vector<std::pair<std::string, std::string>> fields;
    std::string image;
    int images = 0;
    for (const auto& [key, part] : request.files) {
      if (key == "image" || key == "image[]") {
        ++images;
        image = part.content;
      } else if (key == "mask") {
        fail("masks are not supported: Kandinsky 5 edits the whole image from the prompt");
      } else if (key == "init_img") {
        fail("field 'init_img': the image of an edit is the 'image' file");
      } else {
        K5_CHECK(part.filename.empty(), "field '", key, "' must be text, not a file");
        fields.emplace_back(key, part.content);
      }
    }
    K5_CHECK(images == 1, images == 0 ? "an image file is required (field 'image')" : "give one image, not several");
    K5_CHECK(!image.empty(), "field 'image' is empty");
    ImagesOrder edit = parse_images_form(fields);
    edit.order.init_image_bytes = std::move(image);
    return edit;
  }

  // Queues `images.count` jobs and answers once all have finished: the images in base64 (the jobs then forgotten
  // with their files) or their URLs (the jobs kept, as others are).
  void make_images(const httplib::Request& request, ImagesOrder images, httplib::Response& response) {
    if (stopping) throw RequestError(503, "the server is stopping");
    K5_CHECK(size_t(images.count) <= std::min(options.max_queued, options.max_kept), "n ", images.count,
             ": this server queues at most ", options.max_queued, " jobs (--queue) and keeps ", options.max_kept,
             " finished ones (--keep)");
    claim_long_request("retry later, or queue with POST /v1/generations");
    struct Release {
      std::atomic<int>& count;
      ~Release() { --count; }
    } release{long_requests};
    GenerationOrder& order = images.order;
    const KandinskyConfig config = files_for(order.config).config;
    K5_CHECK(!config.is_video(), "config '", fs::path(config.source).stem().string(),
             "' makes videos: queue them with POST /v1/generations");
    queue->check_room();
    if (order.random_seed) order.request.seed = std::random_device{}();
    std::vector<uint64_t> seeds;
    for (int i = 0; i < images.count; ++i) seeds.push_back(order.request.seed + uint64_t(i));
    const std::vector<JobSnapshot> queued = enqueue(order, seeds);
    // Base64 answers carry the images: their jobs go once answered, or once this request gives up on them.
    struct Forget {
      JobQueue& queue;
      std::vector<std::string> ids;
      ~Forget() {
        for (const std::string& id : ids) queue.remove(id);
      }
    } forget{*queue, {}};
    for (const JobSnapshot& job : queued) forget.ids.push_back(job.id);
    json data = json::array();
    for (size_t i = 0; i < queued.size(); ++i) {
      const JobSnapshot job = wait_until_finished(queued[i].id);
      if (job.status == JobStatus::failed) throw RequestError(500, "generation " + job.id + " failed: " + job.error);
      json item{{"seed", seeds[i]}};
      if (images.urls) {
        const std::string host = request.get_header_value("Host");
        item["url"] = (host.empty() ? "" : "http://" + host) + "/v1/generations/" + job.id + "/result";
      } else {
        std::ifstream file(job.result.file, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        if (!file) throw RequestError(500, "generation " + job.id + ": its result cannot be read");
        item["b64_json"] = encode_base64(bytes);
      }
      if (!job.result.expanded_prompt.empty()) item["revised_prompt"] = job.result.expanded_prompt;
      data.push_back(std::move(item));
    }
    if (images.urls) forget.ids.clear();
    const json settings = json::parse(queued.front().summary);
    send_json(response, 200,
              json{{"created", std::time(nullptr)},
                   {"data", data},
                   {"output_format", settings["format"] == "jpg" ? "jpeg" : settings["format"]},
                   {"size", concat(settings["width"].get<int>(), "x", settings["height"].get<int>())}});
  }

  // One of the kMaxLongRequests slots, or a 503 with `advice`; the caller gives it back (--long_requests).
  void claim_long_request(const std::string& advice) {
    if (++long_requests > kMaxLongRequests) {
      --long_requests;
      throw RequestError(503,
                         concat("too many event streams and waiting requests open (", kMaxLongRequests, "); ", advice));
    }
  }

  // The job once it has succeeded or failed; an error if it is removed meanwhile or the server stops.
  JobSnapshot wait_until_finished(const std::string& id) const {
    std::optional<JobSnapshot> job = queue->find(id);
    while (job && job->status != JobStatus::succeeded && job->status != JobStatus::failed) {
      if (stopping) throw RequestError(503, "the server is stopping");
      job = queue->wait_for_change(id, job->version, std::chrono::milliseconds(500));
    }
    if (!job) throw RequestError(410, "generation " + id + " was removed before it finished");
    return *job;
  }

  // Server-sent events: the job (as GET /v1/generations/ID answers) each time it changes, until it has finished
  // ("event: job") or is removed ("event: removed"); a comment every ~15 s keeps proxies from closing the stream.
  // Each stream holds one of the server's HTTP threads, so their number is bounded.
  void send_events(const JobSnapshot& job, httplib::Response& response) {
    claim_long_request("poll GET /v1/generations/ID instead");
    response.set_header("Cache-Control", "no-cache");
    response.set_chunked_content_provider(
        "text/event-stream",
        [this, id = job.id, seen = std::optional<uint64_t>(), quiet_waits = 0](size_t,
                                                                               httplib::DataSink& sink) mutable {
          // httplib calls this outside its handlers' try: an exception must not leave it (false ends the stream).
          try {
            // Short waits, so that a stopping server is never held up for long.
            const std::optional<JobSnapshot> job =
                seen ? queue->wait_for_change(id, *seen, std::chrono::milliseconds(500)) : queue->find(id);
            std::string event;
            if (!job) {
              event = "event: removed\ndata: {\"id\": \"" + id + "\"}\n\n";
            } else if (job->version != seen) {
              seen = job->version;
              quiet_waits = 0;
              event = "event: job\ndata: " + json_text(job_json(*job)) + "\n\n";
            } else if (++quiet_waits == 30) {
              quiet_waits = 0;
              event = ": waiting\n\n";
            }
            if (!event.empty() && !sink.write(event.data(), event.size())) return false;
            if (!job || job->status == JobStatus::succeeded || job->status == JobStatus::failed) sink.done();
            return true;
          } catch (...) {
            return false;
          }
        },
        [this](bool) { --long_requests; });
  }

  void send_result(const JobSnapshot& job, httplib::Response& response) const {
    if (job.status == JobStatus::failed) throw RequestError(409, "generation " + job.id + " failed: " + job.error);
    if (job.status != JobStatus::succeeded)
      throw RequestError(409, concat("generation ", job.id, " is ", job_status_name(job.status), "; no result yet"));
    // Streamed from the open file, which stays readable even if the job is forgotten meanwhile.
    auto file = std::make_shared<std::ifstream>(job.result.file, std::ios::binary | std::ios::ate);
    if (!*file) throw RequestError(410, "generation " + job.id + ": its result was removed");
    const size_t size = size_t(file->tellg());
    response.set_header("Content-Disposition",
                        "inline; filename=\"k5-" + job.id + fs::path(job.result.file).extension().string() + "\"");
    response.set_content_provider(size, job.result.content_type,
                                  [file](size_t offset, size_t length, httplib::DataSink& sink) {
                                    try {  // called outside httplib's handler try
                                      std::vector<char> chunk(std::min<size_t>(length, size_t(1) << 20));
                                      file->seekg(std::streamoff(offset));
                                      file->read(chunk.data(), std::streamsize(chunk.size()));
                                      return file->gcount() > 0 && sink.write(chunk.data(), size_t(file->gcount()));
                                    } catch (...) {
                                      return false;
                                    }
                                  });
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
  impl_->listen_started = true;
  if (!impl_->stopping) {
    impl_->log.info("serving ", fs::path(impl_->default_files.config.source).stem().string(), "; results in ",
                    impl_->output_dir.string());
    impl_->http.listen_after_bind();
  }
  impl_->listen_returned = true;
}

void GenerationServer::stop() {
  impl_->stopping = true;
  // Either listen() sees `stopping` before it starts, or it has started: then httplib's stop() only takes effect
  // once httplib's loop runs (before, it does nothing), so wait for that (or for listen() to have failed).
  if (!impl_->listen_started) return;
  while (!impl_->http.is_running() && !impl_->listen_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!impl_->listen_returned) impl_->http.stop();
  while (!impl_->listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

bool GenerationServer::stopping() const { return impl_->stopping; }

}  // namespace k5
