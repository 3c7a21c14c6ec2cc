// The scheduler's Prometheus metrics (see scheduler_records.h for the fields).
#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler_service/scheduler_records.h"

namespace autocompress::scheduler {
namespace {

// 50 us .. 10 s: commits and dispatches are sub-millisecond when healthy.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.00005, 0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025,
          0.005,   0.01,   0.025,  0.05,   0.1,    0.25,   0.5,     1,     2.5,    5,     10};
}

std::string StateLabel(v1::TrialState state) {
  std::string name = v1::TrialState_Name(state);
  return name.substr(sizeof("TRIAL_STATE_") - 1);
}

std::string StateLabel(v1::ExperimentState state) {
  std::string name = v1::ExperimentState_Name(state);
  return name.substr(sizeof("EXPERIMENT_STATE_") - 1);
}

}  // namespace

SchedulerMetrics::SchedulerMetrics(prometheus::Registry& registry)
    : experiments(prometheus::BuildGauge()
                      .Name("autocompress_scheduler_experiments")
                      .Help("Experiments by state")
                      .Register(registry)),
      trials(prometheus::BuildGauge()
                 .Name("autocompress_scheduler_trials")
                 .Help("Trials by state")
                 .Register(registry)),
      workers_connected(prometheus::BuildGauge()
                            .Name("autocompress_scheduler_workers_connected")
                            .Help("Workers with an open WorkerGateway session")
                            .Register(registry)
                            .Add({})),
      store_healthy(prometheus::BuildGauge()
                        .Name("autocompress_scheduler_store_healthy")
                        .Help("1 while the trial store commits, 0 while its commits fail "
                              "(retried; new work refused)")
                        .Register(registry)
                        .Add({})),
      slots(prometheus::BuildGauge()
                .Name("autocompress_scheduler_slots")
                .Help("Trial slots of connected workers by device kind (cpu, gpu) and use "
                      "(busy, free)")
                .Register(registry)),
      dispatch_latency(prometheus::BuildHistogram()
                           .Name("autocompress_scheduler_dispatch_latency_seconds")
                           .Help("Time from a trial attempt entering WAITING to its assignment")
                           .Register(registry)
                           .Add({}, LatencyBuckets())),
      commit_latency(prometheus::BuildHistogram()
                         .Name("autocompress_scheduler_store_commit_latency_seconds")
                         .Help("Time from a change to its durable commit (group commit)")
                         .Register(registry)
                         .Add({}, LatencyBuckets())),
      store_write(prometheus::BuildHistogram()
                      .Name("autocompress_scheduler_store_write_seconds")
                      .Help("Time the store takes per commit of merged changes (fsync "
                            "included, queueing excluded)")
                      .Register(registry)
                      .Add({}, LatencyBuckets())),
      metric_messages(prometheus::BuildCounter()
                          .Name("autocompress_scheduler_metric_messages_total")
                          .Help("Intermediate metric reports received from workers")
                          .Register(registry)
                          .Add({})),
      fenced_events(prometheus::BuildCounter()
                        .Name("autocompress_scheduler_fenced_events_total")
                        .Help("Trial events from an attempt that is no longer current, "
                              "acknowledged and ignored")
                        .Register(registry)
                        .Add({})),
      retries(prometheus::BuildCounter()
                  .Name("autocompress_scheduler_trial_retries_total")
                  .Help("Trial attempts re-queued, by the failure code that ended them")
                  .Register(registry)),
      worker_messages(prometheus::BuildCounter()
                          .Name("autocompress_scheduler_worker_messages_total")
                          .Help("WorkerGateway messages received, by kind")
                          .Register(registry)),
      experiment_best(prometheus::BuildGauge()
                          .Name("autocompress_scheduler_experiment_best_metric")
                          .Help("Primary objective value of each experiment's best trial, by "
                                "experiment id and metric name")
                          .Register(registry)) {
  store_healthy.Set(1);
  for (int s = v1::TrialState_MIN + 1; s <= v1::TrialState_MAX; ++s) {
    trials.Add({{"state", StateLabel(static_cast<v1::TrialState>(s))}});
  }
  for (int s = v1::ExperimentState_MIN + 1; s <= v1::ExperimentState_MAX; ++s) {
    experiments.Add({{"state", StateLabel(static_cast<v1::ExperimentState>(s))}});
  }
}

void SchedulerMetrics::TrialStateChanged(v1::TrialState from, v1::TrialState to) {
  if (from != v1::TRIAL_STATE_UNSPECIFIED) trials.Add({{"state", StateLabel(from)}}).Decrement();
  if (to != v1::TRIAL_STATE_UNSPECIFIED) trials.Add({{"state", StateLabel(to)}}).Increment();
}

void SchedulerMetrics::ExperimentStateChanged(v1::ExperimentState from, v1::ExperimentState to) {
  if (from != v1::EXPERIMENT_STATE_UNSPECIFIED) {
    experiments.Add({{"state", StateLabel(from)}}).Decrement();
  }
  if (to != v1::EXPERIMENT_STATE_UNSPECIFIED) {
    experiments.Add({{"state", StateLabel(to)}}).Increment();
  }
}

void SchedulerMetrics::BestTrialChanged(const v1::Experiment& experiment, double value) {
  experiment_best
      .Add({{"experiment", experiment.id()},
            {"metric", experiment.spec().objective().primary().metric()}})
      .Set(value);
}

}  // namespace autocompress::scheduler
