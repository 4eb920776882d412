// `k5 serve` (src/server/http_server): generations over HTTP on the demo model folder, byte for byte what
// `k5 generate` writes; the queue, removal, LoRA adapters by name, every bad request answered with one line;
// and the command itself starting and stopping on a signal.
#include "server/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/base64.h"
#include "io/image_file.h"
#include "io/safetensors.h"
#include "io/video_file.h"
#include "models/crossdit/crossdit_weights.h"
#include "server/job_queue.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"
#include "support/random.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::demo_model;

struct Reply {
  int status = 0;
  json body;
  std::string raw, content_type;
};

// A server on a free port of this machine, listening on its own thread.
struct Served {
  test::TempDir dir{"serve"};
  std::unique_ptr<GenerationServer> server;
  std::thread listener;
  int port = 0;

  explicit Served(ServerOptions options = {}) {
    options.model = demo_model();
    if (options.overrides.config.empty()) options.overrides.config = "k5_tiny_t2i";
    options.context = test::context_options(Precision::bf16);
    if (options.output_dir.empty()) options.output_dir = (dir.path / "results").string();
    server = std::make_unique<GenerationServer>(options);
    port = server->bind("127.0.0.1", 0);
    listener = std::thread([this] { server->listen(); });
  }
  ~Served() {
    server->stop();
    listener.join();
  }

  Reply reply(const httplib::Result& result) const {
    EXPECT_TRUE(result) << "no answer from the server";
    if (!result) return {};
    Reply out{result->status, json(), result->body, result->get_header_value("Content-Type")};
    if (out.content_type == "application/json") out.body = json::parse(result->body);
    return out;
  }
  Reply get(const std::string& path) const {
    httplib::Client client("127.0.0.1", port);
    return reply(client.Get(path.c_str()));
  }
  Reply post(const std::string& body) const {
    httplib::Client client("127.0.0.1", port);
    return reply(client.Post("/v1/generations", body, "application/json"));
  }
  Reply remove(const std::string& id) const {
    httplib::Client client("127.0.0.1", port);
    return reply(client.Delete(("/v1/generations/" + id).c_str()));
  }
  // Polls the job until it has finished; returns its last state.
  json finished(const std::string& id) const {
    for (int i = 0; i < 6000; ++i) {
      const Reply job = get("/v1/generations/" + id);
      if (job.status != 200 || (job.body["status"] != "queued" && job.body["status"] != "running")) return job.body;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "generation " << id << " did not finish";
    return {};
  }
};

TEST(HttpServer, ImageIsWhatTheCommandLineWrites) {
  const Served served;
  const Reply submitted =
      served.post(R"({"prompt": "a cat in a hat", "steps": 2, "seed": 3, "rng": "cpu", "expand_prompt": false})");
  ASSERT_EQ(submitted.status, 202) << submitted.raw;
  const std::string id = submitted.body["id"];
  EXPECT_EQ(submitted.body["settings"]["seed"], 3);
  EXPECT_EQ(submitted.body["settings"]["width"], 128);
  EXPECT_EQ(submitted.body["settings"]["mode"], "text-to-image");
  const json job = served.finished(id);
  ASSERT_EQ(job["status"], "succeeded") << job.dump();
  EXPECT_EQ(job["progress"]["stage"], "decode");
  EXPECT_EQ(job["result"]["content_type"], "image/png");
  const Reply result = served.get(job["result"]["url"]);
  ASSERT_EQ(result.status, 200);
  EXPECT_EQ(result.content_type, "image/png");

  const test::K5Cli cli("serve-cli");
  ASSERT_EQ(cli.run("generate -m " + demo_model() +
                    " --config k5_tiny_t2i -p 'a cat in a hat' --steps 2 -s 3 --rng cpu "
                    "--no-expand-prompt -o " +
                    cli.path("cli.png")),
            0)
      << cli.err();
  EXPECT_EQ(result.raw, test::read_text(cli.path("cli.png")));  // pixels and metadata
  // The models stay loaded (--keep-models auto: these take far less than half of the RAM); the next job uses them.
  const Reply kept = served.get("/v1/model");
  EXPECT_EQ(kept.body["keep_models"], "auto");
  ASSERT_EQ(kept.body["loaded"].size(), 3u) << kept.raw;
  EXPECT_EQ(kept.body["loaded"][0]["component"], "vae");  // the last used first
  EXPECT_EQ(kept.body["loaded"][1]["name"], "kandinsky5tiny_t2i.safetensors");
  EXPECT_EQ(kept.body["loaded"][2]["component"], "text-encoders");
  const Reply again =
      served.post(R"({"prompt": "a cat in a hat", "steps": 2, "seed": 3, "rng": "cpu", "expand_prompt": false})");
  ASSERT_EQ(again.status, 202) << again.raw;
  const json second = served.finished(again.body["id"]);
  ASSERT_EQ(second["status"], "succeeded") << second.dump();
  EXPECT_EQ(served.get(second["result"]["url"]).raw, result.raw);
  EXPECT_EQ(served.remove(again.body["id"]).status, 200);

  const Reply list = served.get("/v1/generations");
  ASSERT_EQ(list.body["generations"].size(), 1u);
  EXPECT_EQ(list.body["generations"][0]["id"], id);
  EXPECT_EQ(served.get("/health").body["status"], "ok");
  const Reply model = served.get("/v1/model");
  EXPECT_EQ(model.body["config"], "k5_tiny_t2i");
  EXPECT_EQ(model.body["modes"], json::array({"text-to-image"}));
  EXPECT_EQ(model.body["sizes"][0], json::array({128, 128}));
  EXPECT_EQ(model.body["weights_int8"], "none");
  EXPECT_EQ(served.get("/v1/model?config=k5_tiny_i2v_5s").body["modes"],
            json::array({"text-to-video", "image-to-video"}));
  // Removing a finished job removes its file.
  EXPECT_EQ(served.remove(id).status, 200);
  EXPECT_EQ(served.get("/v1/generations/" + id).status, 404);
  EXPECT_TRUE(fs::is_empty(served.dir.path / "results"));
}

// --unload-after: the kept models go once no job has come for that long; the next job loads them again.
TEST(HttpServer, KeptModelsReleasedWhenIdle) {
  ServerOptions options;
  options.unload_after_seconds = 1;
  const Served served(options);
  const std::string body = R"({"prompt": "a cat", "steps": 1, "seed": 3, "expand_prompt": false})";
  const auto run = [&] {
    const Reply job = served.post(body);
    ASSERT_EQ(job.status, 202) << job.raw;
    EXPECT_EQ(served.finished(job.body["id"])["status"], "succeeded");
  };
  run();
  EXPECT_FALSE(served.get("/v1/model").body["loaded"].empty()) << "kept until the idle second has passed";
  for (int i = 0; i < 500 && !served.get("/v1/model").body["loaded"].empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(served.get("/v1/model").body["loaded"].empty());
  run();
  options.model = demo_model();
  options.overrides.config = "k5_tiny_t2i";
  options.output_dir = (served.dir.path / "other").string();
  for (const double bad : {-1.0, 1e12}) {
    options.unload_after_seconds = bad;
    try {
      GenerationServer refused(options);
      ADD_FAILURE() << "--unload-after " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--unload-after"), std::string::npos) << e.what();
    }
  }
}

TEST(HttpServer, Int8WeightsForEveryJob) {
  // The operator's --weights-int8 applies to every job: the file is the CLI's with the same option.
  ServerOptions options;
  options.int8_weights = parse_int8_weights({"dit"});
  options.keep_models = KeepModels::off;
  const Served served(options);
  EXPECT_EQ(served.get("/v1/model").body["weights_int8"], "dit");
  const Reply submitted =
      served.post(R"({"prompt": "a cat", "steps": 1, "seed": 5, "rng": "cpu", "expand_prompt": false})");
  ASSERT_EQ(submitted.status, 202) << submitted.raw;
  const json job = served.finished(submitted.body["id"]);
  ASSERT_EQ(job["status"], "succeeded") << job.dump();
  const test::K5Cli cli("serve-int8");
  ASSERT_EQ(cli.run("generate -m " + demo_model() +
                    " --config k5_tiny_t2i -p 'a cat' --steps 1 -s 5 --rng cpu --no-expand-prompt --weights-int8 dit "
                    "-o " +
                    cli.path("cli.png")),
            0)
      << cli.err();
  EXPECT_EQ(served.get(job["result"]["url"]).raw, test::read_text(cli.path("cli.png")));
  const Reply model = served.get("/v1/model");  // --keep-models off: each job loads what it needs
  EXPECT_EQ(model.body["keep_models"], "off");
  EXPECT_EQ(model.body["loaded"], json::array());
}

// The server-sent events of a job: (event name, data) pairs until the stream ends.
// `heard` (when given) is set once the first bytes have arrived.
std::vector<std::pair<std::string, json>> read_events(int port, const std::string& id,
                                                      std::atomic<bool>* heard = nullptr) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  std::string stream;
  const auto result = client.Get(("/v1/generations/" + id + "/events").c_str(), [&](const char* data, size_t size) {
    stream.append(data, size);
    if (heard) *heard = true;
    return true;
  });
  EXPECT_TRUE(result && result->status == 200);
  std::vector<std::pair<std::string, json>> events;
  for (size_t start = 0, end; (end = stream.find("\n\n", start)) != std::string::npos; start = end + 2) {
    const std::string block = stream.substr(start, end - start);
    if (block.rfind("event: ", 0) != 0) continue;  // keep-alive comments
    const size_t data = block.find("\ndata: ");
    events.emplace_back(block.substr(7, data - 7), json::parse(block.substr(data + 7)));
  }
  return events;
}

TEST(HttpServer, ProgressEvents) {
  const Served served;
  // Steps long enough (~15 ms each here) that the stream sees some, though it merges changes faster than it reads.
  const Reply submitted = served.post(R"({"prompt": "a cat", "steps": 10, "rng": "cpu", "expand_prompt": false})");
  ASSERT_EQ(submitted.status, 202) << submitted.raw;
  const auto events = read_events(served.port, submitted.body["id"]);
  ASSERT_FALSE(events.empty());
  int denoising = 0;
  for (const auto& [name, job] : events) {
    EXPECT_EQ(name, "job");
    EXPECT_EQ(job["id"], submitted.body["id"]);
    denoising += job.contains("progress") && job["progress"]["stage"] == "denoise";
  }
  EXPECT_GE(denoising, 1);
  EXPECT_EQ(events.back().second["status"], "succeeded");  // the stream ends with the finished job
  EXPECT_EQ(served.get("/v1/generations/0123abcd/events").status, 404);
}

TEST(HttpServer, VideoFromAnImageAndOtherFormats) {
  const Served served;
  const std::string image = test::read_text(test::source_path("tests/golden/pipeline/i2v.png"));
  const Reply video = served.post(json{
      {"prompt", "the cat blinks"},
      {"config", "k5_tiny_i2v_5s"},
      {"init_img", "data:image/png;base64," + encode_base64(image)},
      {"frames", 5},
      {"steps", 1},
      {"rng", "cpu"},
      {"expand_prompt", false}}.dump());
  ASSERT_EQ(video.status, 202) << video.raw;
  EXPECT_EQ(video.body["settings"]["mode"], "image-to-video");
  const Reply jpeg =
      served.post(R"({"prompt": "a cat", "steps": 1, "format": "jpg", "quality": 90, "expand_prompt": false})");
  ASSERT_EQ(jpeg.status, 202) << jpeg.raw;

  const json video_job = served.finished(video.body["id"]);
  ASSERT_EQ(video_job["status"], "succeeded") << video_job.dump();
  const Reply mp4 = served.get(video_job["result"]["url"]);
  EXPECT_EQ(mp4.content_type, "video/mp4");
  const std::string saved = (served.dir.path / "v.mp4").string();
  std::ofstream(saved, std::ios::binary) << mp4.raw;
  EXPECT_EQ(probe_video(saved).frames, 5);
  EXPECT_EQ(probe_video(saved).metadata.at("prompt"), "the cat blinks");

  const json jpeg_job = served.finished(jpeg.body["id"]);
  ASSERT_EQ(jpeg_job["status"], "succeeded") << jpeg_job.dump();
  EXPECT_EQ(served.get(jpeg_job["result"]["url"]).content_type, "image/jpeg");
}

// OpenAI's Images API: the same jobs, answered when made; the images are those of POST /v1/generations.
TEST(HttpServer, OpenAiImagesApi) {
  const Served served;
  httplib::Client client("127.0.0.1", served.port);
  client.set_read_timeout(300, 0);  // the answer comes when the images are made (httplib's default: 5 s)
  const auto post = [&](const std::string& path, const json& body) {
    return served.reply(client.Post(path.c_str(), body.dump(), "application/json"));
  };
  const Reply models = served.get("/v1/models");
  ASSERT_EQ(models.status, 200) << models.raw;
  EXPECT_EQ(models.body["object"], "list");
  EXPECT_EQ(models.body["data"][2],
            (json{{"id", "k5_tiny_t2i"}, {"object", "model"}, {"created", 0}, {"owned_by", "k5"}}));

  const json k5_fields{{"steps", 1}, {"seed", 3}, {"rng", "cpu"}, {"expand_prompt", false}};
  json body = k5_fields;
  body.update({{"prompt", "a cat"},
               {"model", "k5_tiny_t2i"},
               {"n", 2},
               {"size", "128x128"},
               {"quality", "hd"},
               {"output_format", "jpeg"},
               {"output_compression", 90},
               {"user", "someone"}});
  const Reply images = post("/v1/images/generations", body);
  ASSERT_EQ(images.status, 200) << images.raw;
  EXPECT_EQ(images.body["output_format"], "jpeg");
  EXPECT_EQ(images.body["size"], "128x128");
  ASSERT_EQ(images.body["data"].size(), 2u);
  EXPECT_EQ(images.body["data"][1]["seed"], 4);
  EXPECT_EQ(served.get("/v1/generations").body["generations"].size(), 0u) << "answered in base64: forgotten";
  // The second image is what POST /v1/generations makes with seed 4.
  json same = k5_fields;
  same.update({{"prompt", "a cat"}, {"seed", 4}, {"format", "jpg"}, {"quality", 90}});
  const Reply queued = served.post(same.dump());
  ASSERT_EQ(queued.status, 202) << queued.raw;
  const json job = served.finished(queued.body["id"]);
  ASSERT_EQ(job["status"], "succeeded") << job.dump();
  EXPECT_EQ(decode_base64(images.body["data"][1]["b64_json"].get<std::string>(), "b64_json"),
            served.get(job["result"]["url"]).raw);

  // URLs instead: the jobs stay, as others do.
  body = k5_fields;
  body.update({{"prompt", "a cat"}, {"response_format", "url"}});
  const Reply linked = post("/v1/images/generations", body);
  ASSERT_EQ(linked.status, 200) << linked.raw;
  const std::string url = linked.body["data"][0]["url"];
  const std::string prefix = "http://127.0.0.1:" + std::to_string(served.port) + "/v1/generations/";
  ASSERT_EQ(url.rfind(prefix, 0), 0u) << url;
  const Reply png = served.get(url.substr(prefix.size() - std::string("/v1/generations/").size()));
  EXPECT_EQ(png.status, 200);
  EXPECT_EQ(png.content_type, "image/png");
  EXPECT_EQ(served.get("/v1/generations").body["generations"].size(), 2u);

  // Edits: a multipart form with the image; the result is the image-to-image job's of POST /v1/generations.
  const std::string image = test::read_text(test::source_path("tests/golden/pipeline/i2v.png"));
  const auto edit = [&](httplib::MultipartFormDataItems items) {
    items.push_back({"prompt", "make it blue", "", ""});
    items.push_back({"model", "k5_tiny_i2i", "", ""});
    for (const auto& [key, value] : k5_fields.items())
      items.push_back({key, value.is_string() ? value.get<std::string>() : value.dump(), "", ""});
    return served.reply(client.Post("/v1/images/edits", items));
  };
  const Reply edited = edit({{"image", image, "cat.png", "image/png"}});
  ASSERT_EQ(edited.status, 200) << edited.raw;
  json as_job = k5_fields;
  as_job.update({{"prompt", "make it blue"}, {"config", "k5_tiny_i2i"}, {"init_img", encode_base64(image)}});
  const json edit_job = served.finished(served.post(as_job.dump()).body["id"]);
  ASSERT_EQ(edit_job["status"], "succeeded") << edit_job.dump();
  EXPECT_EQ(decode_base64(edited.body["data"][0]["b64_json"].get<std::string>(), "b64_json"),
            served.get(edit_job["result"]["url"]).raw);

  // Errors in OpenAI's shape.
  const auto refused = [&](const Reply& reply, const std::string& expected) {
    EXPECT_EQ(reply.status, 400) << reply.raw;
    EXPECT_EQ(reply.body["error"]["type"], "invalid_request_error") << reply.raw;
    EXPECT_NE(reply.body["error"]["message"].get<std::string>().find(expected), std::string::npos) << reply.raw;
  };
  const std::vector<std::pair<json, std::string>> bad{
      {{{"prompt", ""}}, "prompt"},
      {{{"prompt", "a cat"}, {"size", "big"}}, "WIDTHxHEIGHT"},
      {{{"prompt", "a cat"}, {"size", "100x100"}}, "128x128"},
      {{{"prompt", "a cat"}, {"n", 11}}, "'n'"},
      {{{"prompt", "a cat"}, {"n", 9}}, "--queue"},
      {{{"prompt", "a cat"}, {"model", "nope"}}, "no config 'nope'"},
      {{{"prompt", "a cat"}, {"model", "k5_tiny_t2v_5s"}}, "makes videos"},
      {{{"prompt", "a cat"}, {"response_format", "xml"}}, "response_format"},
      {{{"prompt", "a cat"}, {"output_format", "gif"}}, "output_format"},
      {{{"prompt", "a cat"}, {"model", "k5_tiny_t2i"}, {"config", "k5_tiny_t2i"}}, "not both"},
      {{{"prompt", "a cat"}, {"colour", "red"}}, "unknown field 'colour'"},
  };
  for (const auto& [request, expected] : bad) refused(post("/v1/images/generations", request), expected);
  refused(edit({{"image", image, "cat.png", "image/png"}, {"mask", image, "mask.png", "image/png"}}), "masks");
  refused(edit({}), "image file is required");
  refused(edit({{"image", image, "cat.png", "image/png"}, {"init_img", encode_base64(image), "", ""}}), "'image' file");
  refused(edit({{"image", image, "a.png", "image/png"}, {"image[]", image, "b.png", "image/png"}}), "one image");
  refused(edit({{"image", image, "cat.png", "image/png"}, {"steps", "many", "", ""}}), "'steps' must be a number");
  refused(post("/v1/images/edits", {{"prompt", "a cat"}}), "multipart");
  const Reply unknown = post("/v1/images/variations", {{"prompt", "a cat"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body["error"]["type"], "invalid_request_error") << unknown.raw;
  EXPECT_EQ(served.get("/v1/models/k5_tiny_t2i").body["error"]["type"], "invalid_request_error");
}

TEST(HttpServer, BadRequestsGetOneLine) {
  ServerOptions options;
  options.max_body_bytes = 4096;
  const Served served(options);
  const std::string corrupt_png = encode_base64("\x89PNG\r\n\x1a\n not really a png");
  const std::vector<std::tuple<std::string, int, std::string>> cases{
      {"{\"prompt\": \"a\"", 400, "not JSON"},
      {R"({"prompt": "a", "colour": "red"})", 400, "unknown field 'colour'"},
      {R"({"prompt": "a", "width": 100, "height": 100})", 400, "choose one of (WxH) 128x128"},
      {R"({"prompt": "a", "format": "mp4"})", 400, "makes images (png, jpg or webp)"},
      {R"({"prompt": "a", "config": "k5_tiny_t2v_5s", "format": "png"})", 400, "makes videos (mp4)"},
      {R"({"prompt": "a", "config": "k5_nothing"})", 400, "no config 'k5_nothing'"},
      {R"({"prompt": "a", "lora": ["style"]})", 400, "takes no LoRA adapters"},
      {R"({"prompt": "a", "duration": 5})", 400, "makes images"},
      {R"({"prompt": "a", "config": "k5_tiny_i2v_5s", "init_img": ")" + corrupt_png + "\"}", 400, "init_img"},
      {"{\"prompt\": \"" + std::string(5000, 'a') + "\"}", 413, "larger than 4096 bytes"},
  };
  for (const auto& [body, status, message] : cases) {
    const Reply reply = served.post(body);
    EXPECT_EQ(reply.status, status) << body.substr(0, 200) << " -> " << reply.raw;
    const std::string error = reply.body.value("error", "");
    EXPECT_NE(error.find(message), std::string::npos) << body.substr(0, 200) << " -> " << reply.raw;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_EQ(error.find(".upload-"), std::string::npos) << error;  // the uploaded image's temporary name stays inside
    EXPECT_EQ(error.find(demo_model()), std::string::npos) << error;
    EXPECT_EQ(error.find(served.dir.path.string()), std::string::npos) << error;
  }
  // Bodies must state their length (httplib bounds no other kind) and come uncompressed.
  httplib::Client client("127.0.0.1", served.port);
  const auto chunked = client.Post(
      "/v1/generations",
      [](size_t, httplib::DataSink& sink) {
        sink.write("{}", 2);
        sink.done();
        return true;
      },
      "application/json");
  // The server answers before reading the body, so the client may see the connection close instead; either way no
  // job is made (checked below).
  if (chunked) {
    EXPECT_EQ(chunked->status, 411) << chunked->body;
  }
  const auto compressed = client.Post("/v1/generations", {{"Content-Encoding", "gzip"}}, "{}", "application/json");
  ASSERT_TRUE(compressed);
  EXPECT_EQ(compressed->status, 415) << compressed->body;
  // Config names are the served folder's, not files of the server's working directory; errors name no server path.
  const Reply stray = served.post(R"({"prompt": "a", "config": "CMakeCache.txt"})");
  EXPECT_EQ(stray.status, 400) << stray.raw;
  EXPECT_NE(stray.raw.find("available: k5_tiny_i2i, k5_tiny_i2v_5s, k5_tiny_t2i, k5_tiny_t2v_5s"), std::string::npos)
      << stray.raw;
  EXPECT_EQ(served.get("/v1/generations/0123abcd").status, 404);
  EXPECT_EQ(served.get("/v1/generations/0123abcd/result").status, 404);
  EXPECT_EQ(served.remove("0123abcd").status, 404);
  EXPECT_EQ(served.get("/v2/anything").status, 404);
  EXPECT_EQ(served.get("/v1/model?config=../x").status, 400);
  EXPECT_TRUE(fs::is_empty(served.dir.path / "results"));  // nothing was queued, no upload is left
  EXPECT_EQ(served.get("/v1/generations").body["generations"].size(), 0u);
}

// A LoRA adapter of every query projection of the tiny T2V DiT, in the folder the server offers.
void write_adapter(const std::string& path) {
  ModelOverrides overrides;
  overrides.config = "k5_tiny_t2v_5s";
  const KandinskyConfig config = find_model_files(demo_model(), overrides).config;
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint32_t seed = 1;
  for (const auto& [name, shape] : crossdit_parameter_shapes(config.dit)) {
    if (name.find(".to_query.weight") == std::string::npos) continue;
    const std::string layer = name.substr(0, name.size() - std::string(".weight").size());
    tensors.push_back({layer + ".lora_A.weight", test::random_tensor({4, shape[1]}, seed++, 0.3f)});
    tensors.push_back({layer + ".lora_B.weight", test::random_tensor({shape[0], 4}, seed++, 0.3f)});
  }
  save_safetensors(path, tensors);
}

TEST(HttpServer, QueueRemovalAndLoraByName) {
  test::TempDir loras("serve-lora");
  write_adapter((loras.path / "style.safetensors").string());
  ServerOptions options;
  options.overrides.config = "k5_tiny_t2v_5s";
  options.lora_dir = loras.path.string();
  options.max_queued = 1;
  const Served served(options);
  EXPECT_EQ(served.get("/v1/model").body["lora"], json::array({"style.safetensors"}));
  {
    // A file name that is not UTF-8 is listed with U+FFFD, not answered with a 500.
    std::ofstream((loras.path / "\xff.safetensors").string()) << "x";
    const Reply model = served.get("/v1/model");
    EXPECT_EQ(model.status, 200) << model.raw;
    EXPECT_EQ(model.body["lora"], json::array({"style.safetensors", "\xEF\xBF\xBD.safetensors"}));
    fs::remove(loras.path / "\xff.safetensors");
  }

  // A long job runs, one waits, a third is refused until there is room.
  // Minutes of work on a CPU: still running when removed, whatever the machine.
  const std::string slow = R"({"prompt": "a fox", "frames": 25, "steps": 1000, "rng": "cpu", "expand_prompt": false})";
  const Reply running = served.post(slow);
  ASSERT_EQ(running.status, 202) << running.raw;
  const std::string running_id = running.body["id"];
  for (int i = 0; i < 3000 && served.get("/v1/generations/" + running_id).body["status"] != "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(served.get("/v1/generations/" + running_id).body["status"], "running");
  const Reply waiting = served.post(slow);
  ASSERT_EQ(waiting.status, 202) << waiting.raw;
  EXPECT_EQ(waiting.body["queue_position"], 0);
  const Reply refused = served.post(slow);
  EXPECT_EQ(refused.status, 503) << refused.raw;
  EXPECT_NE(refused.body["error"].get<std::string>().find("queue is full"), std::string::npos);
  EXPECT_EQ(served.get("/v1/generations/" + running_id + "/result").status, 409);
  EXPECT_EQ(served.remove(waiting.body["id"]).status, 200);
  // A client following the running job's events hears of its removal.
  std::vector<std::pair<std::string, json>> events;
  std::atomic<bool> heard{false};
  std::thread follower([&] { events = read_events(served.port, running_id, &heard); });
  for (int i = 0; i < 6000 && !heard; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const Reply stopping = served.remove(running_id);
  EXPECT_EQ(stopping.status, 202);
  EXPECT_EQ(stopping.body["status"], "stopping");
  served.finished(running_id);  // stopped at its next step, then forgotten
  follower.join();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().second["status"], "running");
  EXPECT_EQ(events.back().first, "removed");
  EXPECT_EQ(served.get("/v1/generations/" + running_id).status, 404);

  // Adapters are named inside --lora-dir, nowhere else.
  for (const char* name : {"../style.safetensors", "/etc/passwd", "missing.safetensors"}) {
    const Reply reply = served.post(json{{"prompt", "a fox"}, {"lora", {name}}}.dump());
    EXPECT_EQ(reply.status, 400) << name << " -> " << reply.raw;
  }
  const Reply adapted = served.post(
      R"({"prompt": "a fox", "frames": 5, "steps": 1, "rng": "cpu", "expand_prompt": false, "lora": ["style.safetensors:0.5"]})");
  ASSERT_EQ(adapted.status, 202) << adapted.raw;
  const json job = served.finished(adapted.body["id"]);
  ASSERT_EQ(job["status"], "succeeded") << job.dump();
  EXPECT_EQ(job["settings"]["lora"], json::array({"style.safetensors:0.5"}));
  const std::string saved = (served.dir.path / "adapted.mp4").string();
  std::ofstream(saved, std::ios::binary) << served.get(job["result"]["url"]).raw;
  EXPECT_EQ(probe_video(saved).metadata.at("lora"), "style.safetensors:0.5");  // the name, not the server's path
  // A broken adapter is named as the client named it.
  save_safetensors(
      (loras.path / "broken.safetensors").string(),
      {{"visual_transformer_blocks.0.self_attention.to_query.lora_A.weight", test::random_tensor({4, 7}, 1)},
       {"visual_transformer_blocks.0.self_attention.to_query.lora_B.weight", test::random_tensor({7, 4}, 2)}});
  const Reply broken = served.post(R"({"prompt": "a fox", "lora": ["broken.safetensors"]})");
  EXPECT_EQ(broken.status, 400) << broken.raw;
  EXPECT_NE(broken.raw.find("broken.safetensors"), std::string::npos) << broken.raw;
  EXPECT_EQ(broken.raw.find(loras.path.string()), std::string::npos) << broken.raw;
}

// `k5 serve` as users run it: started with --port 0, it prints its address; SIGTERM ends it cleanly, removing
// its temporary results folder.
TEST(ServeCli, StartsAndStopsOnASignal) {
  const test::TempDir dir("serve-cli");
  const std::string log = (dir.path / "stderr").string();
  const char* configured = std::getenv("K5_BINARY");
  const std::string binary = configured ? configured : K5_BINARY;
  const std::string model = demo_model();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stderr);
    execl(binary.c_str(), binary.c_str(), "serve", "-m", model.c_str(), "--config", "k5_tiny_t2i", "--port", "0", "-t",
          "2", static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  std::string results;
  for (int i = 0; i < 3000 && (port == 0 || results.empty()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::string text = test::read_text(log);
    const size_t at = text.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 30);
    const size_t folder = text.find("results in ");
    if (folder != std::string::npos) results = text.substr(folder + 11, text.find('\n', folder) - folder - 11);
  }
  ASSERT_GT(port, 0) << test::read_text(log);
  httplib::Client client("127.0.0.1", port);
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_TRUE(fs::is_directory(results)) << results;
  kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 2000 && waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!WIFEXITED(status) && !WIFSIGNALED(status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "k5 serve did not stop on SIGTERM within 10 s";
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::read_text(log);
  EXPECT_FALSE(fs::exists(results));
  // A model folder that is not there: one line, before listening.
  const test::K5Cli cli("serve-cli");
  EXPECT_EQ(cli.run("serve -m " + cli.path("nothing") + " --port 0"), 1);
  EXPECT_NE(cli.err().find("k5: error: "), std::string::npos) << cli.err();
  EXPECT_EQ(cli.err().find("listening"), std::string::npos) << cli.err();
  EXPECT_EQ(cli.run("serve -m " + model + " --port 0 --keep-models sometimes"), 1);
  EXPECT_NE(cli.err().find("--keep-models 'sometimes': choose auto, on or off"), std::string::npos) << cli.err();
  EXPECT_EQ(cli.err().find("listening"), std::string::npos) << cli.err();
}

}  // namespace
}  // namespace k5
