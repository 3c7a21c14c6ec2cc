// The v1 wire contract: every service, rpc and message that ARCHITECTURE.md names exists
// with the right streaming shape, enums follow the X_UNSPECIFIED = 0 rule, and every
// rpc, message, field and enum value carries a comment.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "autocompress/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptorSet;
using google::protobuf::MethodDescriptor;

const DescriptorPool& Pool() { return *DescriptorPool::generated_pool(); }

struct Rpc {
  std::string service;
  std::string method;
  bool client_streaming;
  bool server_streaming;
};

TEST(ProtosTest, EveryRpcOfTheArchitectureExistsWithItsStreamingShape) {
  const std::vector<Rpc> rpcs = {
      {"TunerService", "ValidateSearchSpace", false, false},
      {"TunerService", "CreateStudy", false, false},
      {"TunerService", "Suggest", false, false},
      {"TunerService", "Report", false, false},
      {"TunerService", "DeleteStudy", false, false},
      {"ExperimentService", "CreateExperiment", false, false},
      {"ExperimentService", "GetExperiment", false, false},
      {"ExperimentService", "ListExperiments", false, false},
      {"ExperimentService", "StopExperiment", false, false},
      {"ExperimentService", "ResumeExperiment", false, false},
      {"ExperimentService", "UpdateExperiment", false, false},
      {"ExperimentService", "ListTrials", false, false},
      {"ExperimentService", "GetTrial", false, false},
      {"ExperimentService", "WatchExperiment", false, true},
      {"ArtifactService", "Upload", true, false},
      {"ArtifactService", "Download", false, true},
      {"ArtifactService", "Stat", false, false},
      {"WorkerGateway", "Connect", true, true},
  };
  for (const Rpc& rpc : rpcs) {
    const MethodDescriptor* method =
        Pool().FindMethodByName("autocompress.v1." + rpc.service + "." + rpc.method);
    ASSERT_NE(method, nullptr) << rpc.service << "." << rpc.method;
    EXPECT_EQ(method->client_streaming(), rpc.client_streaming) << method->full_name();
    EXPECT_EQ(method->server_streaming(), rpc.server_streaming) << method->full_name();
  }
}

TEST(ProtosTest, MessagesOfTheArchitectureExist) {
  for (const char* name :
       {"ExperimentSpec",    "TrialSpec",     "Metric",          "MetricReport",     "TrialState",
        "ExperimentState",   "ObjectiveSpec", "TrainingRecipe",  "ExperimentLimits", "ArtifactRef",
        "Experiment",        "Trial",         "ExperimentEvent", "Observation",      "Suggestion",
        "EarlyStopDecision", "WorkerMessage", "WorkerHello",     "Heartbeat",        "TrialEvent",
        "SchedulerMessage",  "AssignTrial",   "CancelTrial",     "EventAck",         "TrialFailure",
        "WorkerDraining",    "DeviceStatus"}) {
    const std::string full = std::string("autocompress.v1.") + name;
    EXPECT_TRUE(Pool().FindMessageTypeByName(full) != nullptr ||
                Pool().FindEnumTypeByName(full) != nullptr)
        << full;
  }
  // WorkerMessage = hello | heartbeat | trial event; SchedulerMessage = assign | cancel |
  // ack (+ accepted, the answer to hello).
  const auto* worker = Pool().FindMessageTypeByName("autocompress.v1.WorkerMessage");
  for (const char* field : {"hello", "heartbeat", "trial_event", "draining"}) {
    ASSERT_NE(worker->FindFieldByName(field), nullptr) << field;
    EXPECT_NE(worker->FindFieldByName(field)->containing_oneof(), nullptr) << field;
  }
  const auto* scheduler = Pool().FindMessageTypeByName("autocompress.v1.SchedulerMessage");
  for (const char* field : {"accepted", "assign", "cancel", "ack"}) {
    ASSERT_NE(scheduler->FindFieldByName(field), nullptr) << field;
  }
}

TEST(ProtosTest, EnumsStartWithUnspecifiedZero) {
  for (const char* name :
       {"OptimizeMode", "TrialState", "ExperimentState", "Comparison", "ArtifactKind",
        "DatasetFormat", "ObservationKind", "Feasibility", "FailureCode"}) {
    const auto* e = Pool().FindEnumTypeByName(std::string("autocompress.v1.") + name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_EQ(e->FindValueByNumber(0)->name().find("_UNSPECIFIED"),
              e->FindValueByNumber(0)->name().size() - std::string("_UNSPECIFIED").size())
        << name;
  }
}

const google::protobuf::FieldDescriptor* Field(const std::string& message,
                                               const std::string& field) {
  const auto* type = Pool().FindMessageTypeByName("autocompress.v1." + message);
  return type == nullptr ? nullptr : type->FindFieldByName(field);
}

// The fields the scheduler decides by exist with their types (a message field's type is
// its message's name, a scalar's its C++ type name).
TEST(ProtosTest, TheSchedulerDecidesByTypedFields) {
  using FD = google::protobuf::FieldDescriptor;
  struct Expected {
    const char* message;
    const char* field;
    const char* type;
  };
  for (const Expected& e : std::vector<Expected>{
           {"StudyConfig", "objective", "autocompress.v1.ObjectiveSpec"},
           {"Observation", "metrics", "autocompress.v1.Metric"},
           {"Observation", "feasibility", "autocompress.v1.Feasibility"},
           {"Observation", "constraint_violation", "double"},
           {"Observation", "attempt", "int32"},
           {"SuggestRequest", "request_id", "string"},
           {"TrialFailure", "code", "autocompress.v1.FailureCode"},
           {"TrialFailure", "message", "string"},
           {"TrialFinished", "failure", "autocompress.v1.TrialFailure"},
           {"Trial", "failure", "autocompress.v1.TrialFailure"},
           {"Device", "slots", "int32"},
           {"Device", "free_memory_bytes", "int64"},
           {"WorkerHello", "cpu_threads", "int32"},
           {"Heartbeat", "devices", "autocompress.v1.DeviceStatus"},
           {"DeviceStatus", "free_memory_bytes", "int64"},
           {"ResourceSpec", "cpu_threads", "int32"},
           {"TrialSpec", "cpu_threads", "int32"},
           {"WorkerMessage", "draining", "autocompress.v1.WorkerDraining"},
           {"WorkerDraining", "handed_back", "autocompress.v1.RunningTrial"},
           {"Experiment", "running_time", "google.protobuf.Duration"},
           {"TrialMetricEvent", "final_report", "autocompress.v1.MetricReport"},
       }) {
    const FD* field = Field(e.message, e.field);
    ASSERT_NE(field, nullptr) << e.message << "." << e.field;
    const std::string type = field->message_type() != nullptr ? field->message_type()->full_name()
                             : field->enum_type() != nullptr  ? field->enum_type()->full_name()
                                                              : field->cpp_type_name();
    EXPECT_EQ(type, e.type) << e.message << "." << e.field;
  }
  for (const char* code :
       {"FAILURE_CODE_INVALID_INPUT", "FAILURE_CODE_OUT_OF_MEMORY", "FAILURE_CODE_TIMEOUT",
        "FAILURE_CODE_CRASH", "FAILURE_CODE_INFRASTRUCTURE"}) {
    EXPECT_NE(Pool().FindEnumValueByName(std::string("autocompress.v1.") + code), nullptr) << code;
  }
}

// Redundant or free-text fields the review removed stay removed (and their numbers
// reserved, so they cannot come back with another meaning).
TEST(ProtosTest, RemovedFieldsStayRemoved) {
  const std::vector<std::pair<const char*, const char*>> removed = {
      {"StudyConfig", "mode"},           {"MetricReport", "is_final"}, {"CancelTrial", "state"},
      {"Experiment", "running_seconds"}, {"TrialFinished", "error"},   {"Trial", "error"},
      {"WorkerHello", "slots"}};
  for (const auto& [message, field] : removed) {
    EXPECT_EQ(Field(message, field), nullptr) << message << "." << field;
    const auto* type = Pool().FindMessageTypeByName(std::string("autocompress.v1.") + message);
    ASSERT_NE(type, nullptr) << message;
    EXPECT_TRUE(type->IsReservedName(field)) << message << "." << field;
  }
}

// Paths in SourceCodeInfo: [4, i] message i, [4, i, 2, j] its field j, [4, i, 3, k] a
// nested message, [5, i] enum i, [5, i, 2, j] its value j, [6, i] service i,
// [6, i, 2, j] its method j (descriptor.proto field numbers).
bool Commented(const google::protobuf::SourceCodeInfo::Location& location) {
  return !location.leading_comments().empty() || !location.trailing_comments().empty();
}

TEST(ProtosTest, EveryRpcMessageFieldAndEnumValueIsCommented) {
  const std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/" +
                           std::getenv("TEST_WORKSPACE") +
                           "/protos/autocompress/v1/v1_descriptor_set.pb";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path;
  FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromIstream(&in));
  int checked = 0;
  for (const auto& file : set.file()) {
    if (file.package() != "autocompress.v1") continue;
    for (const auto& location : file.source_code_info().location()) {
      const auto& p = location.path();
      const bool element = (p.size() == 2 && (p[0] == 4 || p[0] == 5 || p[0] == 6)) ||
                           (p.size() == 4 && (p[0] == 4 || p[0] == 5 || p[0] == 6) && p[2] == 2) ||
                           (p.size() == 4 && p[0] == 4 && p[2] == 4) ||             // nested enum
                           (p.size() == 6 && p[0] == 4 && p[2] == 4 && p[4] == 2);  // its values
      if (!element) continue;
      ++checked;
      std::ostringstream where;
      where << file.name() << " path";
      for (int x : p) where << " " << x;
      EXPECT_TRUE(Commented(location)) << "missing comment at " << where.str();
    }
  }
  EXPECT_GT(checked, 200);
}

}  // namespace
}  // namespace autocompress
