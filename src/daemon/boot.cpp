// A boot configuration applied (boot_config.hpp): the pairs it names that
// are missing are made as it says; those that exist are left alone.
#include <spdlog/spdlog.h>

#include "controller.hpp"

namespace epair::daemon {

namespace {

// The namespace a vnet setting names, when it is not there to move into.
std::optional<std::string> missing_netns(const BootSettings& settings) {
  for (const json& action : settings.actions) {
    if (action["action"] != "vnet") continue;
    const std::string target = action["value"];
    auto spec = os::parse_netns(target);
    if (spec && os::netns_id(*spec)) continue;
    if (spec && spec->pid == 0)
      return std::string("no network namespace '").append(target).append("' (ip netns add ").append(target).append(")");
    return "no process " + target + " whose namespace to take";
  }
  return std::nullopt;
}

}  // namespace

// Each pair, in the file's order:
// 1. An end of it is here already, under whatever name: the pair is left
//    alone.
// 2. A namespace that a vnet setting names is missing: that line is the
//    error, and the pair is not made.
// 3. The pair is made with its creation settings, then each end's are
//    applied; one that fails is the error, and the pair goes again, so that
//    nothing is half-made.
// A dry run stops after 2, saying what it would make.
json Controller::apply_boot_config(const BootConfig& config, bool dry_run) {
  json pairs = json::array();
  json errors = json::array();
  const auto settings_of = [](const BootPair& pair) {
    json shown = json::array();
    for (const BootSettings& one : pair.settings) {
      shown.push_back({{"variable", one.variable}, {"line", one.line}, {"end", one.end}, {"actions", one.actions}});
    }
    return shown;
  };
  for (const BootPair& pair : config.pairs) {
    json report = {{"name", pair.name}, {"line", pair.line}, {"settings", settings_of(pair)}};
    const auto failed = [&](int line, const std::string& why) {
      errors.push_back(config.file + ":" + std::to_string(line) + ": " + why);
      report["state"] = "failed";
    };
    const int unit = std::stoi(pair.name.substr(5));
    if (find(EndId{unit, 'a'}) != nullptr || find(EndId{unit, 'b'}) != nullptr) {
      report["state"] = "exists";
      pairs.push_back(std::move(report));
      continue;
    }
    for (const BootSettings& one : pair.settings) {
      if (auto why = missing_netns(one); why && !report.contains("state")) failed(one.line, one.variable + ": " + *why);
    }
    if (report.contains("state") || dry_run) {
      if (!report.contains("state")) report["state"] = "would create";
      pairs.push_back(std::move(report));
      continue;
    }
    auto created = create(pair.name);
    if (!created) {
      failed(pair.line, "cloned_interfaces: " + pair.name + ": " + created.status().message());
      pairs.push_back(std::move(report));
      continue;
    }
    for (const BootSettings& one : pair.settings) {
      auto actions = control::parse_actions(one.actions);
      Status s = actions ? configure(one.end, *actions) : actions.status();
      if (!s) {
        failed(one.line, one.variable + ": " + s.message());
        (void)destroy(pair.name + "a");
        break;
      }
    }
    if (!report.contains("state")) report["state"] = "created";
    spdlog::info("{}: {} as {} says", pair.name, report["state"].get<std::string>(), config.file);
    pairs.push_back(std::move(report));
  }
  for (const json& error : errors) spdlog::error("{}", error.get<std::string>());
  return {{"file", config.file}, {"pairs", std::move(pairs)}, {"errors", std::move(errors)}};
}

}  // namespace epair::daemon
