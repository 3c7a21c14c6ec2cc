// The trial pipeline, run inside an attempt's child process (ARCHITECTURE "What a trial
// does"): decode the parameters, load the data sets and the model on the assigned
// device, compress, evaluate once (the zero-shot report, step 0), fine-tune with an
// intermediate report after every epoch (step = epoch + 1; with recipe.checkpoint_epochs
// also a checkpoint, and an attempt given one resumes after its epoch), evaluate,
// export, and
// return the final report: the evaluator's metrics plus `*_zero_shot`, sparsity,
// parameters, nonzero_parameters, model_bytes (the exported file), effective_bytes,
// dense_bytes and compression_ratio (dense / effective; compression/README.md),
// latency_ms (median of timed batch-1 forwards of the exported model after warm-up),
// train_images_per_second (fine-tuning steps alone), peak_rss_bytes, seconds per
// phase (seconds_load, seconds_compress, ...), seconds_total, and resumed_from_epoch
// when it resumed from a checkpoint.
//
// A baseline trial (TrialSpec.baseline) skips decoding, compression, the zero-shot
// evaluation and fine-tuning, and exports no files: it evaluates the model as given
// and reports the same metrics (without `*_zero_shot`).
//
// Errors become a FAILED result whose failure code says whether a retry can help:
// bad parameters, data, model, recipe or a NaN loss are INVALID_INPUT, out of memory is
// OUT_OF_MEMORY, a device this process cannot use is INFRASTRUCTURE, the rest INTERNAL.
//
// RunTrialChild is the child's main: one ChildRequest from stdin, ChildMessages to fd 3.
#ifndef AUTOCOMPRESS_WORKER_TRIAL_PIPELINE_H_
#define AUTOCOMPRESS_WORKER_TRIAL_PIPELINE_H_

#include <string>

#include "autocompress/internal/trial_child.pb.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress::worker {

// Where the pipeline says what it does; the child forwards it to the agent.
class PipelineReporter {
 public:
  virtual ~PipelineReporter() = default;
  // Entering a phase ("loading model", "fine-tuning epoch 2").
  virtual void Phase(const std::string& phase) = 0;
  virtual void Intermediate(const v1::MetricReport& report) = 0;
  // A checkpoint file written after `epoch` fine-tuning epochs (recipe.checkpoint_epochs);
  // the agent uploads it. Ignored by default.
  virtual void Checkpoint(const std::string& path, int epoch) {}
};

// Runs the attempt `request` describes; never throws.
internal::ChildResult RunTrialPipeline(const internal::ChildRequest& request,
                                       PipelineReporter& reporter);

// The --run_trial main: reads the request from `in_fd`, writes messages to `out_fd`,
// returns the process exit code (0 once a result was written).
int RunTrialChild(int in_fd, int out_fd);

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_TRIAL_PIPELINE_H_
