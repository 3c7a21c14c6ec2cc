#include "common/args.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace autocompress {

std::string NormalizedName(absl::string_view name) {
  std::string key;
  for (char c : name) {
    if (c != '_' && c != '-') key.push_back(static_cast<char>(std::tolower(c)));
  }
  return key;
}

struct Args::Impl {
  std::string where;       // "tpe args" or "kwargs"
  std::string key_prefix;  // "tpe args: " or "kwargs."
  std::string owner_note;  // "" or " for l1"
  std::string owner;
  nlohmann::json object = nlohmann::json::object();
  std::set<std::string> used;

  const nlohmann::json* Find(absl::string_view key) {
    used.insert(std::string(key));
    auto it = object.find(std::string(key));
    return it == object.end() ? nullptr : &*it;
  }
  absl::Status Bad(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(key_prefix, key, ": ", what));
  }
};

Args::Args(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Args::Args(Args&&) noexcept = default;
Args& Args::operator=(Args&&) noexcept = default;
Args::~Args() = default;

absl::StatusOr<Args> Args::Parse(absl::string_view json_text, absl::string_view owner) {
  auto impl = std::make_unique<Impl>();
  impl->owner = std::string(owner);
  impl->where = absl::StrCat(owner, " args");
  impl->key_prefix = absl::StrCat(owner, " args: ");
  return Args::ParseImpl(json_text, std::move(impl));
}

absl::StatusOr<Args> Args::ParseAt(absl::string_view json_text, absl::string_view path,
                                   absl::string_view owner) {
  auto impl = std::make_unique<Impl>();
  impl->owner = std::string(owner);
  impl->where = std::string(path);
  impl->key_prefix = absl::StrCat(path, ".");
  impl->owner_note = absl::StrCat(" for ", owner);
  return Args::ParseImpl(json_text, std::move(impl));
}

absl::StatusOr<Args> Args::ParseImpl(absl::string_view json_text, std::unique_ptr<Impl> impl) {
  if (!json_text.empty()) {
    try {
      impl->object = nlohmann::json::parse(json_text.begin(), json_text.end());
    } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number beyond double
      return absl::InvalidArgumentError(absl::StrCat(impl->where, ": not valid JSON: ", e.what()));
    }
    if (impl->object.is_null()) impl->object = nlohmann::json::object();
    if (!impl->object.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(impl->where, ": must be a JSON object"));
    }
  }
  return Args(std::move(impl));
}

absl::StatusOr<int> Args::Int(absl::string_view key, int fallback, int min, int max) {
  const nlohmann::json* v = impl_->Find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) return impl_->Bad(key, "must be an integer");
  const int64_t i = v->get<int64_t>();
  if (i < min || i > max)
    return impl_->Bad(key, absl::StrCat(i, " is outside [", min, ", ", max, "]"));
  return static_cast<int>(i);
}

absl::StatusOr<double> Args::Double(absl::string_view key, double fallback, double min,
                                    double max) {
  const nlohmann::json* v = impl_->Find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) return impl_->Bad(key, "must be a number");
  const double d = v->get<double>();
  if (!(d >= min && d <= max)) {
    return impl_->Bad(key, absl::StrCat(d, " is outside [", min, ", ", max, "]"));
  }
  return d;
}

absl::StatusOr<bool> Args::Bool(absl::string_view key, bool fallback) {
  const nlohmann::json* v = impl_->Find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return impl_->Bad(key, "must be true or false");
  return v->get<bool>();
}

absl::StatusOr<std::string> Args::OneOf(absl::string_view key, absl::string_view fallback,
                                        const std::vector<std::string>& allowed) {
  const nlohmann::json* v = impl_->Find(key);
  if (v == nullptr) return std::string(fallback);
  if (v->is_string()) {
    const std::string s = v->get<std::string>();
    for (const std::string& a : allowed) {
      if (s == a) return s;
    }
  }
  return impl_->Bad(key, absl::StrCat(v->dump(), " is not one of ", absl::StrJoin(allowed, ", ")));
}

absl::Status Args::CheckAllUsed(const std::vector<std::string>& ignored) const {
  std::vector<std::string> unknown;
  for (auto it = impl_->object.begin(); it != impl_->object.end(); ++it) {
    if (impl_->used.count(it.key()) == 0 &&
        std::find(ignored.begin(), ignored.end(), it.key()) == ignored.end()) {
      unknown.push_back(it.key());
    }
  }
  if (unknown.empty()) return absl::OkStatus();
  std::vector<std::string> known(impl_->used.begin(), impl_->used.end());
  return absl::InvalidArgumentError(absl::StrCat(
      impl_->where, ": unknown key(s) ", absl::StrJoin(unknown, ", "), impl_->owner_note,
      known.empty() ? "; it takes none" : absl::StrCat("; known: ", absl::StrJoin(known, ", "))));
}

}  // namespace autocompress
