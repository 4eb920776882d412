// The HTTP server's generation jobs: a first-in first-out queue run by one worker thread, because one
// generation already uses every core (or the whole GPU). Jobs report progress as they run, can be stopped at
// their next unit of work, and their result files live as long as the job is kept.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "pipelines/generation.h"

namespace k5 {

enum class JobStatus { queued, running, succeeded, failed };
const char* job_status_name(JobStatus status);

// What a finished job made: a file the queue owns from then on (deleted with the job).
struct JobResult {
  std::string file;
  std::string content_type;
  std::string expanded_prompt;  // the prompt the model saw when expansion ran, else empty
};

// Runs one job; `observer` reports progress and throws JobCancelled when the job is being removed. `id` names the
// job (its result file is named after it).
using JobWork = std::function<JobResult(const std::string& id, const GenerationObserver& observer)>;

struct JobCancelled : Error {
  JobCancelled() : Error("cancelled") {}
};
// submit() when `max_queued` jobs are already waiting.
struct QueueFull : Error {
  using Error::Error;
};

// A job as a client sees it, copied out under the queue's lock.
struct JobSnapshot {
  using Clock = std::chrono::system_clock;
  std::string id;
  JobStatus status = JobStatus::queued;
  int queue_position = 0;  // jobs ahead of it (queued jobs only)
  bool stopping = false;   // removed while running: it stops at its next unit of work, then is forgotten
  GenerationEvent progress;
  std::string error;  // failed jobs
  JobResult result;   // succeeded jobs
  Clock::time_point created, started, finished;
  std::string summary;   // the submitter's description of the job (a JSON text for the server)
  uint64_t version = 0;  // grows with every change of the above
};

// Work the worker does once no job has come for `after` since the last one ended (the server releases the models
// it keeps): on the worker's thread, so never beside a job; once per idle spell, and not before the first job.
struct IdleWork {
  std::chrono::milliseconds after{0};
  std::function<void()> work;  // empty: none; it must not throw
};

class JobQueue {
 public:
  // Finished jobs beyond `max_kept` are forgotten oldest first, with their result files.
  JobQueue(size_t max_queued, size_t max_kept, IdleWork idle = {});
  ~JobQueue();  // stops the running job, drops the queued ones and removes every result file
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Returns the new job as queued; throws QueueFull.
  JobSnapshot submit(std::string summary, JobWork work);
  std::optional<JobSnapshot> find(const std::string& id) const;
  // The job once its version differs from `seen_version`, or as it is after `timeout`; nullopt once forgotten.
  std::optional<JobSnapshot> wait_for_change(const std::string& id, uint64_t seen_version,
                                             std::chrono::milliseconds timeout) const;
  std::vector<JobSnapshot> list() const;  // in submission order
  size_t queued() const;
  // Throws QueueFull when submit() would.
  void check_room() const;

  // Forgets the job and its result file. A running job stops at its next unit of work and is forgotten then.
  enum class Removal { unknown, removed, stopping };
  Removal remove(const std::string& id);

  // Blocks until no job is queued or running (tests).
  void wait_idle() const;

 private:
  struct Job;
  void run_worker();
  void throw_if_full() const;   // with lock held
  void forget(std::string id);  // with lock held (a copy: callers pass elements it erases)
  void evict_finished();        // with lock held
  void moved_up();              // with lock held: the waiting jobs' positions changed
  JobSnapshot snapshot(const Job& job) const;

  const size_t max_queued_, max_kept_;
  const IdleWork idle_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::vector<std::string> order_;  // ids in submission order
  std::deque<std::string> waiting_;
  std::string running_;  // id of the running job, empty when idle
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace k5
