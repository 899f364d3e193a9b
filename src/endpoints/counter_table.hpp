// An endpoint's own counters, described once. Each kind of endpoint keeps
// a plain struct of std::uint64_t counters and one table naming every field
// of it; from that table come the live counters' snapshot, the JSON,
// epairctl's text line and the Prometheus samples, the same way for every
// kind. Adding a counter is a field and a row.
//
// Guarantees:
// - LiveCounters::add() may be called from any thread and never blocks;
//   each counter is a count on its own (relaxed), so a snapshot is a
//   consistent value of each counter, not of all of them at one instant.
// - A table names every field of its struct (checked at compile time by
//   size), so a snapshot copies them all.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace epair {

/// How one counter is shown.
struct CounterInfo {
  std::string_view key;    ///< its key in the JSON's "counters"
  std::string_view words;  ///< in the text line after its value ("too big"); empty: not there
  /// The text line's clause it belongs to: counters of a clause are joined
  /// by ", ", clauses by "; ". A clause may open with a heading
  /// ("dropped: ") on its first counter.
  int clause = 0;
  std::string_view heading;
  std::string_view metric;  ///< the Prometheus family it is a sample of; empty: none
  std::string_view label;   ///< the sample's own label (cause="too_big"); empty: none
};

/// One row of a kind's table: a field of its counters struct, and how it
/// is shown.
template <typename Counters>
struct CounterField {
  std::uint64_t Counters::*field;
  CounterInfo info;
};

/// A Prometheus family that counters of a kind are samples of.
struct MetricFamily {
  std::string_view name;
  std::string_view type;  ///< "counter" or "gauge"
  std::string_view help;
};

/// A kind's counters as the daemon renders them: a snapshot's values
/// beside their descriptions.
struct CounterTable {
  struct Row {
    const CounterInfo* info;
    std::uint64_t value;
    bool in_text;  ///< shown in the text line (a kind may leave one out by its settings)
  };
  std::vector<Row> rows;

  /// "1 sent, 2 received; dropped: 0 too big, ..."
  std::string text() const {
    std::string out;
    const CounterInfo* previous = nullptr;
    for (const Row& row : rows) {
      if (!row.in_text) continue;
      if (previous != nullptr) out += previous->clause == row.info->clause ? ", " : "; ";
      if (previous == nullptr || previous->clause != row.info->clause) out += row.info->heading;
      out += std::to_string(row.value) + " " + std::string(row.info->words);
      previous = row.info;
    }
    return out;
  }
  /// The value of the counter key; 0 when the table has none.
  std::uint64_t value(std::string_view key) const {
    for (const Row& row : rows) {
      if (row.info->key == key) return row.value;
    }
    return 0;
  }
  void hide_in_text(std::string_view key) {
    for (Row& row : rows) {
      if (row.info->key == key) row.in_text = false;
    }
  }
};

template <typename Counters>
CounterTable tabulate(const Counters& values, std::span<const CounterField<Counters>> fields) {
  CounterTable table;
  table.rows.reserve(fields.size());
  for (const CounterField<Counters>& f : fields)
    table.rows.push_back({&f.info, values.*f.field, !f.info.words.empty()});
  return table;
}

/// The live counters of one endpoint.
template <typename Counters, const auto& kFields>
class LiveCounters {
  static_assert(sizeof(Counters) == std::size(kFields) * sizeof(std::uint64_t),
                "the table must name every counter of the struct");

 public:
  void add(std::uint64_t Counters::*counter, std::uint64_t n = 1) noexcept {
    std::atomic_ref(values_.*counter).fetch_add(n, std::memory_order_relaxed);
  }
  Counters snapshot() const noexcept {
    Counters copy;
    for (const auto& f : kFields) copy.*f.field = std::atomic_ref(values_.*f.field).load(std::memory_order_relaxed);
    return copy;
  }

 private:
  // Touched through std::atomic_ref only; mutable because a snapshot's
  // atomic loads need a non-const object.
  alignas(std::atomic_ref<std::uint64_t>::required_alignment) mutable Counters values_{};
};

}  // namespace epair
