#include "tests/fakes/experiment_fixtures.h"

#include <chrono>

#include "common/sha256.h"
#include "common/status.h"
#include "common/status_macros.h"

namespace autocompress::testing {

absl::StatusOr<v1::ArtifactRef> UploadBlob(v1::ArtifactService::Stub& artifacts,
                                           const std::string& content, v1::ArtifactKind kind) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::UploadResponse response;
  auto writer = artifacts.Upload(&context, &response);
  v1::UploadRequest header;
  header.mutable_header()->set_name("blob");
  header.mutable_header()->set_kind(kind);
  header.mutable_header()->set_sha256(Sha256Hex(content));
  header.mutable_header()->set_size_bytes(static_cast<int64_t>(content.size()));
  writer->Write(header);
  v1::UploadRequest chunk;
  chunk.set_chunk(content);
  writer->Write(chunk);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response.artifact();
}

absl::StatusOr<v1::ExperimentSpec> NoOpExperimentSpec(v1::ArtifactService::Stub& artifacts,
                                                      int concurrency, int max_trials) {
  v1::ExperimentSpec spec;
  spec.set_name("no-op trials");
  spec.set_search_space_json(R"({"lr": {"_type": "uniform", "_value": [0.001, 0.1]}})");
  spec.mutable_tuner()->set_name("random");
  v1::Objective* primary = spec.mutable_objective()->mutable_primary();
  primary->set_metric("accuracy");
  primary->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  spec.mutable_limits()->set_trial_concurrency(concurrency);
  spec.mutable_limits()->set_max_trial_number(max_trials);
  // Fake workers answer every trial alike; the baseline has tests of its own.
  spec.set_skip_baseline(true);
  ASSIGN_OR_RETURN(*spec.mutable_model(),
                   UploadBlob(artifacts, "a TorchScript model", v1::ARTIFACT_KIND_MODEL));
  v1::DatasetSpec* dataset = spec.mutable_recipe()->mutable_dataset();
  dataset->set_format(v1::DATASET_FORMAT_IDX);
  ASSIGN_OR_RETURN(*dataset->mutable_train(),
                   UploadBlob(artifacts, "training images", v1::ARTIFACT_KIND_DATASET));
  ASSIGN_OR_RETURN(*dataset->mutable_eval(),
                   UploadBlob(artifacts, "evaluation images", v1::ARTIFACT_KIND_DATASET));
  dataset->set_batch_size(32);
  spec.mutable_recipe()->mutable_optimizer()->set_name("sgd");
  spec.mutable_recipe()->mutable_optimizer()->set_learning_rate(0.01);
  spec.mutable_recipe()->set_criterion("cross_entropy");
  spec.mutable_recipe()->set_evaluator("top1_accuracy");
  spec.mutable_recipe()->set_finetune_epochs(1);
  return spec;
}

}  // namespace autocompress::testing
