#include "server/job_queue.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <random>

namespace k5 {

const char* job_status_name(JobStatus status) {
  switch (status) {
    case JobStatus::queued:
      return "queued";
    case JobStatus::running:
      return "running";
    case JobStatus::succeeded:
      return "succeeded";
    case JobStatus::failed:
      return "failed";
  }
  return "?";
}

struct JobQueue::Job {
  JobSnapshot state;  // state.stopping: removed while running
  JobWork work;       // released once run
};

namespace {

// Random ids (96 bits from the system's generator): a client holding an id from before a restart never reaches
// another job with it.
std::string new_job_id() {
  std::random_device random;
  return concat(std::hex, std::setfill('0'), std::setw(8), random(), std::setw(8), random(), std::setw(8), random());
}

void remove_file(const std::string& path) {
  if (path.empty()) return;
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
}

}  // namespace

JobQueue::JobQueue(size_t max_queued, size_t max_kept, IdleWork idle)
    : max_queued_(max_queued), max_kept_(max_kept), idle_(std::move(idle)), worker_([this] { run_worker(); }) {}

JobQueue::~JobQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!running_.empty()) jobs_.at(running_)->state.stopping = true;
  }
  changed_.notify_all();
  worker_.join();
  for (const auto& [id, job] : jobs_) remove_file(job->state.result.file);
}

JobSnapshot JobQueue::submit(std::string summary, JobWork work) {
  JobSnapshot queued;
  {
    std::lock_guard lock(mutex_);
    throw_if_full();
    std::string id;
    do id = new_job_id();
    while (jobs_.count(id));
    auto job = std::make_unique<Job>();
    job->state.id = id;
    job->state.summary = std::move(summary);
    job->state.created = JobSnapshot::Clock::now();
    job->work = std::move(work);
    jobs_.emplace(id, std::move(job));
    order_.push_back(id);
    waiting_.push_back(id);
    queued = snapshot(*jobs_.at(id));
  }
  changed_.notify_all();
  return queued;
}

JobSnapshot JobQueue::snapshot(const Job& job) const {
  JobSnapshot copy = job.state;
  if (copy.status == JobStatus::queued)
    copy.queue_position = int(std::find(waiting_.begin(), waiting_.end(), copy.id) - waiting_.begin());
  return copy;
}

std::optional<JobSnapshot> JobQueue::find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto found = jobs_.find(id);
  if (found == jobs_.end()) return std::nullopt;
  return snapshot(*found->second);
}

std::optional<JobSnapshot> JobQueue::wait_for_change(const std::string& id, uint64_t seen_version,
                                                     std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  const auto changed = [&] {
    const auto found = jobs_.find(id);
    return found == jobs_.end() || found->second->state.version != seen_version;
  };
  changed_.wait_for(lock, timeout, changed);
  const auto found = jobs_.find(id);
  if (found == jobs_.end()) return std::nullopt;
  return snapshot(*found->second);
}

std::vector<JobSnapshot> JobQueue::list() const {
  std::lock_guard lock(mutex_);
  std::vector<JobSnapshot> all;
  for (const std::string& id : order_) all.push_back(snapshot(*jobs_.at(id)));
  return all;
}

void JobQueue::throw_if_full() const {
  if (waiting_.size() >= max_queued_)
    throw QueueFull(concat("the queue is full (", max_queued_, " jobs waiting); try again later"));
}

void JobQueue::check_room() const {
  std::lock_guard lock(mutex_);
  throw_if_full();
}

size_t JobQueue::queued() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

JobQueue::Removal JobQueue::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto found = jobs_.find(id);
  if (found == jobs_.end()) return Removal::unknown;
  if (id == running_) {
    found->second->state.stopping = true;
    ++found->second->state.version;
  } else {
    forget(id);
  }
  changed_.notify_all();
  return id == running_ ? Removal::stopping : Removal::removed;
}

void JobQueue::forget(std::string id) {
  remove_file(jobs_.at(id)->state.result.file);
  jobs_.erase(id);
  order_.erase(std::find(order_.begin(), order_.end(), id));
  const auto waiting = std::find(waiting_.begin(), waiting_.end(), id);
  if (waiting != waiting_.end()) {
    waiting_.erase(waiting);
    moved_up();
  }
}

void JobQueue::moved_up() {
  for (const std::string& id : waiting_) ++jobs_.at(id)->state.version;
}

void JobQueue::evict_finished() {
  size_t finished = 0;
  for (const auto& [id, job] : jobs_) finished += job->state.status > JobStatus::running;
  for (size_t i = 0; i < order_.size() && finished > max_kept_;) {
    if (jobs_.at(order_[i])->state.status > JobStatus::running) {
      forget(order_[i]);
      --finished;
    } else {
      ++i;
    }
  }
}

void JobQueue::wait_idle() const {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return waiting_.empty() && running_.empty(); });
}

void JobQueue::run_worker() {
  std::unique_lock lock(mutex_);
  const auto has_work = [this] { return stopping_ || !waiting_.empty(); };
  bool idle_work_due = false;  // a job ended since the idle work last ran
  while (true) {
    if (idle_work_due && idle_.work) {
      if (!changed_.wait_for(lock, idle_.after, has_work)) {
        lock.unlock();
        idle_.work();
        lock.lock();
        idle_work_due = false;
        continue;
      }
    } else {
      changed_.wait(lock, has_work);
    }
    if (stopping_) return;
    idle_work_due = true;
    const std::string id = waiting_.front();
    waiting_.pop_front();
    moved_up();
    running_ = id;
    Job& job = *jobs_.at(id);
    job.state.status = JobStatus::running;
    job.state.started = JobSnapshot::Clock::now();
    ++job.state.version;
    changed_.notify_all();
    const JobWork work = std::move(job.work);
    job.work = nullptr;
    lock.unlock();

    // The observer runs on this thread between units of work: it publishes progress and stops a removed job.
    const GenerationObserver observer = [this, &job](const GenerationEvent& event) {
      {
        std::lock_guard progress_lock(mutex_);
        job.state.progress = event;
        ++job.state.version;
        if (job.state.stopping) throw JobCancelled();
      }
      changed_.notify_all();
    };
    JobStatus status = JobStatus::succeeded;
    std::string error;
    JobResult result;
    try {
      result = work(id, observer);
    } catch (const JobCancelled&) {
      // forgotten below
    } catch (const std::bad_alloc&) {
      status = JobStatus::failed;
      error = "out of memory";
    } catch (const std::exception& e) {
      status = JobStatus::failed;
      error = e.what();
    } catch (...) {
      status = JobStatus::failed;
      error = "internal error";
    }

    lock.lock();
    running_.clear();
    job.state.status = status;
    job.state.error = std::move(error);
    job.state.result = std::move(result);
    job.state.finished = JobSnapshot::Clock::now();
    ++job.state.version;
    if (job.state.stopping) forget(id);
    evict_finished();
    changed_.notify_all();
  }
}

}  // namespace k5
