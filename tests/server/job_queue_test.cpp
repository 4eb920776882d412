// The server's job queue (src/server/job_queue): first in first out on one worker, progress while running,
// removal of waiting and running jobs, a full queue, failures, and finished jobs forgotten with their files.
#include "server/job_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "support/model_folder.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

// Work that reports one step and then waits, reporting, until released (or stopped through the observer).
struct Gate {
  std::atomic<bool> open{false};
  JobWork work(const std::string& file = "") {
    return [this, file](const std::string&, const GenerationObserver& observer) {
      observer({"denoise", 1, 2, ""});
      while (!open) {
        observer({"denoise", 1, 2, ""});
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (!file.empty()) std::ofstream(file) << "result";
      return JobResult{file, "text/plain", ""};
    };
  }
};

JobStatus status_of(const JobQueue& queue, const std::string& id) { return queue.find(id).value().status; }

void wait_for(const std::function<bool()>& condition) {
  for (int i = 0; i < 5000 && !condition(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(condition());
}

TEST(JobQueue, RunsInOrderWithProgress) {
  JobQueue queue(4, 8);
  Gate first_gate, second_gate;
  const std::string first = queue.submit("{\"n\": 1}", first_gate.work()).id;
  const std::string second = queue.submit("{\"n\": 2}", second_gate.work()).id;
  EXPECT_NE(first, second);
  wait_for([&] { return queue.find(first)->progress.stage == "denoise"; });
  EXPECT_EQ(status_of(queue, first), JobStatus::running);
  EXPECT_EQ(queue.find(first)->progress.done, 1);
  EXPECT_EQ(status_of(queue, second), JobStatus::queued);
  EXPECT_EQ(queue.find(second)->queue_position, 0);
  EXPECT_EQ(queue.queued(), 1u);
  // Each report is a change a follower wakes up for; a finished job stays as it is until the timeout.
  const uint64_t seen = queue.find(first)->version;
  EXPECT_NE(queue.wait_for_change(first, seen, std::chrono::seconds(10)).value().version, seen);
  const uint64_t second_seen = queue.find(second)->version;
  first_gate.open = true;
  wait_for([&] { return status_of(queue, second) == JobStatus::running; });
  EXPECT_EQ(status_of(queue, first), JobStatus::succeeded);
  EXPECT_NE(queue.find(second)->version, second_seen);  // it moved up, then started
  const uint64_t finished = queue.find(first)->version;
  EXPECT_EQ(queue.wait_for_change(first, finished, std::chrono::milliseconds(10)).value().version, finished);
  second_gate.open = true;
  queue.wait_idle();
  const auto all = queue.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, first);
  EXPECT_EQ(all[0].summary, "{\"n\": 1}");
  EXPECT_EQ(all[1].status, JobStatus::succeeded);
  EXPECT_LE(all[0].started, all[0].finished);
  EXPECT_FALSE(queue.find("0123").has_value());
}

TEST(JobQueue, RemovingWaitingAndRunningJobs) {
  test::TempDir dir("job-queue");
  JobQueue queue(4, 8);
  Gate running_gate, waiting_gate;
  const std::string running = queue.submit("{}", running_gate.work((dir.path / "running").string())).id;
  const std::string waiting = queue.submit("{}", waiting_gate.work()).id;
  wait_for([&] { return status_of(queue, running) == JobStatus::running; });
  EXPECT_EQ(queue.remove(waiting), JobQueue::Removal::removed);
  EXPECT_FALSE(queue.find(waiting).has_value());
  EXPECT_EQ(queue.remove(running), JobQueue::Removal::stopping);
  EXPECT_TRUE(queue.find(running).value().stopping);
  queue.wait_idle();  // the observer threw at the next step: the job is forgotten without a result
  EXPECT_FALSE(queue.find(running).has_value());
  EXPECT_FALSE(fs::exists(dir.path / "running"));
  EXPECT_EQ(queue.remove(running), JobQueue::Removal::unknown);
  EXPECT_FALSE(queue.wait_for_change(running, 0, std::chrono::milliseconds(10)).has_value());
}

TEST(JobQueue, FullQueueAndFailures) {
  JobQueue queue(1, 8);
  Gate gate;
  const std::string running = queue.submit("{}", gate.work()).id;
  wait_for([&] { return status_of(queue, running) == JobStatus::running; });
  const JobWork failure = [](const std::string&, const GenerationObserver&) -> JobResult {
    fail("model: no config 'x'");
  };
  const std::string failing = queue.submit("{}", failure).id;
  EXPECT_THROW(queue.submit("{}", gate.work()), QueueFull);
  gate.open = true;
  queue.wait_idle();
  const JobSnapshot failed = queue.find(failing).value();
  EXPECT_EQ(failed.status, JobStatus::failed);
  EXPECT_EQ(failed.error, "model: no config 'x'");
}

// The idle work (the server's --unload-after) runs on the worker once a job has ended and none came for a while:
// not before the first job, not while one runs, once per idle spell.
TEST(JobQueue, IdleWorkRunsOncePerIdleSpell) {
  std::atomic<int> idle_runs{0};
  std::atomic<bool> running{false};
  std::atomic<bool> overlapped{false};
  JobQueue queue(4, 8, IdleWork{std::chrono::milliseconds(30), [&] {
                                  overlapped = overlapped || running;
                                  ++idle_runs;
                                }});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(idle_runs, 0) << "nothing to release before the first job";
  const JobWork quick = [&](const std::string&, const GenerationObserver&) {
    running = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // longer than the idle time
    running = false;
    return JobResult{};
  };
  Gate gate;
  queue.submit("a", gate.work());
  queue.submit("b", quick);  // waits behind a: no idle spell between them
  gate.open = true;
  queue.wait_idle();
  wait_for([&] { return idle_runs == 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(idle_runs, 1) << "once per idle spell";
  queue.submit("c", quick);
  wait_for([&] { return idle_runs == 2; });
  EXPECT_FALSE(overlapped);
}

TEST(JobQueue, OldFinishedJobsAreForgottenWithTheirFiles) {
  test::TempDir dir("job-queue");
  std::vector<std::string> ids, files;
  {
    Gate endless;  // outlives the queue, whose destructor stops its job
    JobQueue queue(8, 2);
    for (int i = 0; i < 4; ++i) {
      files.push_back((dir.path / std::to_string(i)).string());
      Gate gate;
      gate.open = true;
      ids.push_back(queue.submit("{}", gate.work(files.back())).id);
      queue.wait_idle();
    }
    EXPECT_FALSE(queue.find(ids[0]).has_value());
    EXPECT_FALSE(queue.find(ids[1]).has_value());
    EXPECT_FALSE(fs::exists(files[0]));
    EXPECT_FALSE(fs::exists(files[1]));
    EXPECT_EQ(queue.find(ids[3]).value().result.file, files[3]);
    EXPECT_TRUE(fs::exists(files[3]));
    // The destructor stops a running job and removes every result.
    queue.submit("{}", endless.work());
  }
  EXPECT_FALSE(fs::exists(files[2]));
  EXPECT_FALSE(fs::exists(files[3]));
}

}  // namespace
}  // namespace k5
