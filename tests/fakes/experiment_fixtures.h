// What scheduler tests and the scheduler bench all need from a client: uploading a blob
// through ArtifactService, and a valid spec of no-op trials over uploaded artifacts (one
// uniform parameter, maximizing "accuracy", tuner "random").
#ifndef AUTOCOMPRESS_TESTS_FAKES_EXPERIMENT_FIXTURES_H_
#define AUTOCOMPRESS_TESTS_FAKES_EXPERIMENT_FIXTURES_H_

#include <string>

#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.grpc.pb.h"

namespace autocompress::testing {

// Uploads `content` in one chunk (< 1 MiB) and returns the stored reference.
absl::StatusOr<v1::ArtifactRef> UploadBlob(v1::ArtifactService::Stub& artifacts,
                                           const std::string& content, v1::ArtifactKind kind);

// A spec the scheduler accepts; model and dataset artifacts are uploaded through
// `artifacts`. max_trials 0 = no limit.
absl::StatusOr<v1::ExperimentSpec> NoOpExperimentSpec(v1::ArtifactService::Stub& artifacts,
                                                      int concurrency, int max_trials);

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAKES_EXPERIMENT_FIXTURES_H_
