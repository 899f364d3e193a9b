#include "metrics.hpp"

#include <utility>
#include <vector>

namespace epair::daemon {

namespace {

std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// One metric family: HELP and TYPE, then its samples.
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    out_ += "# HELP " + name_ + " " + std::string(help) + "\n# TYPE " + name_ + " " + std::string(type) + "\n";
  }
  void sample(std::uint64_t value, std::string_view labels = {}) {
    out_ += name_;
    if (!labels.empty()) out_ += "{" + std::string(labels) + "}";
    out_ += " " + std::to_string(value) + "\n";
  }

 private:
  std::string& out_;
  std::string name_;
};

// An end as its samples need it: its labels, counters read once.
struct Row {
  std::string labels;
  const End* end;
  const Interface* ifp;
  InterfaceCounters counters;
};

void render_engine(std::string& out, Engine& engine, std::size_t pairs) {
  Family(out, "epair_pairs", "gauge", "Pairs epaird owns.").sample(pairs);
  Family(out, "epair_workers", "gauge", "Engine worker threads.").sample(engine.worker_count());
  const FramePool& pool = engine.pool();
  Family(out, "epair_pool_frames", "gauge", "Frame buffers in the pool.").sample(pool.config().frames);
  Family(out, "epair_pool_free_frames", "gauge", "Frame buffers free now.").sample(pool.available());
  Family(out, "epair_pool_alloc_failures_total", "counter", "Frames not read because the pool was empty.")
      .sample(pool.alloc_failures());
}

void render_interfaces(std::string& out, const std::vector<Row>& rows, const CaptureMetrics& captures) {
  auto per_end = [&](std::string_view metric, std::string_view type, std::string_view help, auto value) {
    Family family(out, metric, type, help);
    for (const Row& row : rows) family.sample(value(row), row.labels);
  };
  per_end("epair_up", "gauge", "1 when the end is UP.", [](const Row& r) { return r.ifp->is_up() ? 1u : 0u; });
  per_end("epair_carrier", "gauge", "1 when the end has carrier (its peer is UP).",
          [](const Row& r) { return r.ifp->link_state() == LinkState::kUp ? 1u : 0u; });
  per_end("epair_mtu_bytes", "gauge", "MTU of the end.", [](const Row& r) { return r.ifp->mtu(); });
  Family datapath(out, "epair_datapath_info", "gauge",
                  "1, labelled with the way the end's frames go now: tap, kernel or engine (and why).");
  for (const Row& row : rows)
    datapath.sample(1u, row.labels + ",datapath=\"" + label_value(row.end->datapath()) + "\"");
  per_end("epair_receive_packets_total", "counter", "Frames queued to the end (ipackets).",
          [](const Row& r) { return r.counters.ipackets; });
  per_end("epair_receive_bytes_total", "counter", "Bytes the end received (ibytes).",
          [](const Row& r) { return r.counters.ibytes; });
  per_end("epair_receive_multicast_packets_total", "counter", "Broadcast and multicast frames received (imcasts).",
          [](const Row& r) { return r.counters.imcasts; });
  per_end("epair_transmit_packets_total", "counter", "Frames the end transmitted (opackets).",
          [](const Row& r) { return r.counters.opackets; });
  per_end("epair_transmit_bytes_total", "counter", "Bytes the end transmitted (obytes).",
          [](const Row& r) { return r.counters.obytes; });
  per_end("epair_transmit_multicast_packets_total", "counter", "Broadcast and multicast frames sent (omcasts).",
          [](const Row& r) { return r.counters.omcasts; });
  Family dropped(out, "epair_dropped_packets_total", "counter",
                 "Frames lost, by cause: transmit_error (oerrors: end down, too big, peer not ready), queue_full "
                 "(oqdrops: the peer's receive queue was full, or the frame pool empty), no_receiver (iqdrops: "
                 "nothing behind the end took them), receive_error (ierrors: refused on input, too big for the MTU).");
  for (const Row& row : rows) {
    dropped.sample(row.counters.oerrors, row.labels + ",cause=\"transmit_error\"");
    dropped.sample(row.counters.oqdrops, row.labels + ",cause=\"queue_full\"");
    dropped.sample(row.counters.iqdrops, row.labels + ",cause=\"no_receiver\"");
    dropped.sample(row.counters.ierrors, row.labels + ",cause=\"receive_error\"");
  }
  per_end("epair_queue_frames", "gauge", "Frames waiting in the end's receive queues.",
          [](const Row& r) { return r.ifp->queued_frames(); });
  per_end("epair_queue_capacity_frames", "gauge", "Room of the end's receive queues.",
          [](const Row& r) { return r.ifp->queue_capacity(); });
  const auto count_of = [](const auto& counts, const Row& row) {
    auto it = counts.find(row.ifp->name());
    return it == counts.end() ? 0u : it->second;
  };
  per_end("epair_captures", "gauge", "Captures running on the end.",
          [&](const Row& r) { return count_of(captures.running, r); });
  per_end("epair_capture_dropped_packets_total", "counter",
          "Frames lost to captures on the end whose buffer was full (the wire lost none).",
          [&](const Row& r) { return count_of(captures.dropped, r); });
}

void render_impairments(std::string& out, const std::vector<Row>& rows) {
  std::vector<std::pair<const Row*, ImpairmentCounters>> impaired;
  for (const Row& row : rows) {
    if (row.ifp->impairment()) impaired.emplace_back(&row, row.ifp->impairment_counters());
  }
  Family family(out, "epair_impaired_packets_total", "counter",
                "What an end's impairment did to the frames it transmitted, by action: lost, duplicated, "
                "corrupted, reordered, dropped (at the limit; in queue_full too), delayed. Impaired ends only.");
  for (const auto& [row, c] : impaired) {
    const std::pair<const char*, std::uint64_t> actions[] = {{"lost", c.lost},           {"duplicated", c.duplicated},
                                                             {"corrupted", c.corrupted}, {"reordered", c.reordered},
                                                             {"dropped", c.dropped},     {"delayed", c.delayed}};
    for (const auto& [action, value] : actions) family.sample(value, row->labels + ",action=\"" + action + "\"");
  }
  Family held(out, "epair_impaired_held_packets", "gauge", "Frames an end's impairment holds now.");
  for (const auto& [row, c] : impaired) held.sample(c.held, row->labels);
}

// Every family of every kind of attachment, with the samples of the ends
// attached to one, from their counter tables.
void render_attachments(std::string& out, const std::vector<Row>& rows) {
  std::vector<std::pair<const Row*, CounterTable>> tables;
  for (const Row& row : rows) {
    if (auto table = row.end->counter_table()) tables.emplace_back(&row, std::move(*table));
  }
  for (std::span<const MetricFamily> families : kAttachmentMetricFamilies) {
    for (const MetricFamily& f : families) {
      Family family(out, f.name, f.type, f.help);
      for (const auto& [row, table] : tables) {
        for (const CounterTable::Row& counter : table.rows) {
          if (counter.info->metric != f.name) continue;
          const std::string_view label = counter.info->label;
          family.sample(counter.value, label.empty() ? row->labels : row->labels + "," + std::string(label));
        }
      }
    }
  }
}

void render_kernel(std::string& out, const kernel::Datapath& datapath) {
  const kernel::MapEntries entries = datapath.map_entries();
  Family family(out, "epair_kernel_map_entries", "gauge",
                "Entries in the kernel data path's maps, read from the kernel: one in each for every end on it.");
  family.sample(entries.ends, "map=\"ends\"");
  family.sample(entries.from_engine, "map=\"from_engine\"");
}

}  // namespace

std::string render_metrics(Engine& engine, const std::map<std::string, End, std::less<>>& ends,
                           const CaptureMetrics& captures, const kernel::Datapath* datapath) {
  std::string out;
  std::size_t pairs = 0;
  std::vector<Row> rows;
  for (const auto& [name, end] : ends) {
    pairs += end.ifp->side() == 'a';
    rows.push_back({"interface=\"" + label_value(name) + "\",vnet=\"" + label_value(end.ifp->vnet_name()) + "\"", &end,
                    end.ifp.get(), end.counters()});
  }
  render_engine(out, engine, pairs);
  if (datapath != nullptr) render_kernel(out, *datapath);
  render_interfaces(out, rows, captures);
  render_impairments(out, rows);
  render_attachments(out, rows);
  return out;
}

}  // namespace epair::daemon
