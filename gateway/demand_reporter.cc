// SPDX-License-Identifier: Apache-2.0
#include "gateway/demand_reporter.h"

#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "gateway/config/gateway_config.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {

absl::StatusOr<std::unique_ptr<DemandReporter>> DemandReporter::Create(
    upstream::UpstreamClient* client, DemandReporterOptions options) {
  absl::StatusOr<HostPort> hp = ParseHttpUrl(options.control_url);
  if (!hp.ok()) return hp.status();
  if (options.gateway_id.empty()) {
    std::mt19937_64 rng(std::random_device{}());
    options.gateway_id = absl::StrFormat("gw-%016x", rng());
  }
  return std::unique_ptr<DemandReporter>(new DemandReporter(
      client, std::move(options), upstream::Target{.host = hp->host, .port = hp->port}));
}

DemandReporter::DemandReporter(upstream::UpstreamClient* client, DemandReporterOptions options,
                               upstream::Target target)
    : client_(client), options_(std::move(options)), target_(std::move(target)) {}

void DemandReporter::Report(const std::map<std::string, int64_t>& held) {
  nlohmann::ordered_json deployments = nlohmann::ordered_json::object();
  for (const auto& [name, n] : held) deployments[name] = {{"held", n}};
  upstream::UpstreamRequest req;
  req.method = "POST";
  req.target = "/weft/v1/demand";
  req.headers.emplace_back("Content-Type", "application/json");
  if (!options_.bearer_token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + options_.bearer_token);
  }
  req.body = nlohmann::ordered_json{{"gateway", options_.gateway_id},
                                    {"deployments", std::move(deployments)}}
                 .dump();
  auto status = std::make_shared<int>(0);
  upstream::Callbacks cb;
  cb.on_head = [status](int s, const upstream::Headers&) { *status = s; };
  cb.on_data = [](std::string_view) {};
  cb.on_done = [counts = counts_, status](absl::Status s) {
    if (s.ok() && *status >= 200 && *status < 300) {
      counts->sent++;
    } else {
      counts->failed++;
    }
  };
  client_->Send(target_, std::move(req), std::move(cb),
                upstream::Timeouts{options_.timeout_s, options_.timeout_s, options_.timeout_s});
}

}  // namespace weft::gateway
