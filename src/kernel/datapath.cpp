#include "datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "datapath_object.hpp"
#include "netns.hpp"

namespace epair::kernel {

namespace {

// Every filter epaird makes is this one of its hook, so that adopt() can
// ask for it by name.
constexpr std::uint32_t kFilterHandle = 1;
constexpr std::uint32_t kFilterPriority = 1;
// An Ethernet and a VLAN header beyond the MTU.
constexpr std::uint32_t kFrameOverMtu = 18;
// BPF_TCX_INGRESS: Linux 6.6 runs programs at a device's ingress without a
// qdisc; Debian 12's headers predate it.
constexpr auto kTcxIngress = static_cast<bpf_attach_type>(46);

Status bpf_error(int error, const std::string& what) {
  return Status{error, "kernel data path: " + what + ": " + std::strerror(error)};
}

// libbpf's warnings go to stderr, as epaird's log does; its debug chatter
// does not.
int print_warnings(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  return std::vfprintf(stderr, format, args);
}

bpf_tc_hook ingress_hook(int ifindex) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = ifindex;
  hook.attach_point = BPF_TC_INGRESS;
  return hook;
}

bpf_tc_opts filter_opts(int program_fd) {
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.prog_fd = program_fd;
  opts.handle = kFilterHandle;
  opts.priority = kFilterPriority;
  return opts;
}

Result<os::UniqueFd> take_fd(int fd, const std::string& what) {
  if (fd < 0) return bpf_error(ENOENT, what + " missing from the object");
  os::UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) return bpf_error(errno, what);
  return copy;
}

// Whether tcx can hold program_fd at the ingress of the loopback of the
// current namespace; it is taken away again.
bool probe_tcx(int program_fd) {
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  if (bpf_prog_attach(program_fd, lo, kTcxIngress, 0) != 0) return false;
  bpf_prog_detach2(program_fd, lo, kTcxIngress);
  return true;
}

// Whether tc's clsact and a cls_bpf filter can hold program_fd on the
// loopback of the current namespace, or why not; both are taken away again.
Status probe_tc(int program_fd) {
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  bpf_tc_hook hook = ingress_hook(lo);
  if (int err = bpf_tc_hook_create(&hook); err < 0 && err != -EEXIST) {
    return bpf_error(-err, "tc clsact qdisc (CONFIG_NET_SCH_INGRESS)");
  }
  bpf_tc_opts opts = filter_opts(program_fd);
  int err = bpf_tc_attach(&hook, &opts);
  hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  bpf_tc_hook_destroy(&hook);
  return err < 0 ? bpf_error(-err, "tc eBPF filter (CONFIG_NET_CLS_BPF)") : Status{};
}

// Calls visit with each key of map_fd, a map keyed by ifindex; false when
// the walk stopped on an error (errno) before the last key.
template <typename Visit>
bool for_each_key(int map_fd, Visit visit) {
  std::uint32_t key = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(map_fd, previous, &key) == 0) {
    visit(key);
    previous = &key;
  }
  return errno == ENOENT;
}

Result<std::vector<std::uint32_t>> map_ids_of(int program_fd) {
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length) != 0) return bpf_error(errno, "program info");
  std::vector<std::uint32_t> ids(info.nr_map_ids);
  info = bpf_prog_info{};
  info.nr_map_ids = static_cast<std::uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<std::uint64_t>(ids.data());
  length = sizeof info;
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length) != 0) return bpf_error(errno, "program maps");
  ids.resize(info.nr_map_ids);
  return ids;
}

}  // namespace

Result<AttachedProgram> attached_program(int netns_fd, int ifindex) {
  AttachedProgram attached;
  Status s = os::run_in_netns(netns_fd, [&]() -> Status {
    std::uint32_t ids[1] = {};
    std::uint32_t count = 1;
    if (bpf_prog_query(ifindex, kTcxIngress, 0, nullptr, ids, &count) == 0 && count > 0) {
      attached = {ids[0], true};
      return {};
    }
    bpf_tc_hook hook = ingress_hook(ifindex);
    bpf_tc_opts opts = filter_opts(0);
    opts.prog_fd = 0;
    if (int err = bpf_tc_query(&hook, &opts); err < 0) {
      return bpf_error(-err, "no epaird program on hidden device " + std::to_string(ifindex));
    }
    attached = {opts.prog_id, false};
    return {};
  });
  if (!s) return s;
  return attached;
}

Datapath::~Datapath() = default;

// Loading, in this order:
// 1. The object built into epaird is opened and loaded: the verifier
//    accepts the programs or the kernel says why not.
// 2. Each program and map is kept by a descriptor of our own; the object
//    goes.
// 3. The engine's counters are bound to the transmit program, whose they
//    are from then on, and mapped.
// 4. The transmit program is attached to the hidden namespace's loopback
//    and taken away again: by tcx where the kernel has it (6.6 and later;
//    it saves the qdisc and classifier a frame passes), else as a filter of
//    tc's clsact, which must then be there with cls_bpf.
Result<std::unique_ptr<Datapath>> Datapath::load(int netns_fd) {
  libbpf_set_print(print_warnings);
  std::unique_ptr<Datapath> path(new Datapath(netns_fd));
  const auto bytes = datapath_object();
  bpf_object_open_opts open_opts{};
  open_opts.sz = sizeof open_opts;
  open_opts.object_name = "epair_datapath";
  bpf_object* object = bpf_object__open_mem(bytes.data(), bytes.size(), &open_opts);
  if (object == nullptr) return bpf_error(errno, "opening the eBPF object");
  const auto close_object = [object]() { bpf_object__close(object); };
  if (int err = bpf_object__load(object); err < 0) {
    close_object();
    return bpf_error(-err, "loading the eBPF programs");
  }
  struct Part {
    os::UniqueFd* into;
    const char* name;
    bool program;
  };
  const Part parts[] = {{&path->transmit_, "transmit", true},  {&path->deliver_, "deliver", true},
                        {&path->ends_, "ends", false},         {&path->from_engine_, "from_engine", false},
                        {&path->counters_, "counters", false}, {&path->engine_counters_, "engine_counters", false}};
  for (const Part& part : parts) {
    int fd = -1;
    if (part.program) {
      bpf_program* program = bpf_object__find_program_by_name(object, part.name);
      fd = program != nullptr ? bpf_program__fd(program) : -1;
    } else {
      fd = bpf_object__find_map_fd_by_name(object, part.name);
    }
    auto taken = take_fd(fd, part.name);
    if (!taken) {
      close_object();
      return taken.status();
    }
    *part.into = std::move(*taken);
  }
  close_object();
  if (bpf_prog_bind_map(path->transmit_.get(), path->engine_counters_.get(), nullptr) != 0) {
    return bpf_error(errno, "binding the engine's counters to the program");
  }
  if (Status s = path->map_engine_counters(); !s) return s;

  // EPAIR_KERNEL_HOOK=tc: the way of kernels before 6.6, taken on newer
  // ones, so that it is tested there.
  const char* hook = std::getenv("EPAIR_KERNEL_HOOK");
  const bool tc_asked = hook != nullptr && std::strcmp(hook, "tc") == 0;
  Status probed = os::run_in_netns(netns_fd, [&]() -> Status {
    path->tcx_ = !tc_asked && probe_tcx(path->transmit_.get());
    return path->tcx_ ? Status{} : probe_tc(path->transmit_.get());
  });
  if (!probed) return probed;
  return path;
}

// Adopting, in this order:
// 1. The programs attached to end's veth and TAP, by tcx or by tc, name
//    their ids.
// 2. The programs are opened by id; the transmit program's maps, and the
//    deliver program's, are opened by id and told apart by name.
// 3. The engine's counters are mapped; programs an epaird before them
//    attached have none, and the engine counts from zero.
Result<std::unique_ptr<Datapath>> Datapath::adopt(int netns_fd, const HiddenEnd& end) {
  libbpf_set_print(print_warnings);
  std::unique_ptr<Datapath> path(new Datapath(netns_fd));
  const std::pair<int, os::UniqueFd*> programs[] = {{end.veth, &path->transmit_}, {end.tap, &path->deliver_}};
  for (const auto& [ifindex, into] : programs) {
    auto attached = attached_program(netns_fd, ifindex);
    if (!attached) return attached.status();
    path->tcx_ = attached->tcx;
    into->reset(bpf_prog_get_fd_by_id(attached->id));
    if (!*into) return bpf_error(errno, "program " + std::to_string(attached->id));
    auto map_ids = map_ids_of(into->get());
    if (!map_ids) return map_ids.status();
    for (std::uint32_t map_id : *map_ids) {
      os::UniqueFd map(bpf_map_get_fd_by_id(map_id));
      if (!map) return bpf_error(errno, "map " + std::to_string(map_id));
      bpf_map_info info{};
      std::uint32_t length = sizeof info;
      if (bpf_obj_get_info_by_fd(map.get(), &info, &length) != 0) return bpf_error(errno, "map info");
      const std::string name = info.name;
      if (name == "ends") {
        path->ends_array_ = info.type == BPF_MAP_TYPE_ARRAY;
        path->ends_ = std::move(map);
      } else if (name == "from_engine") {
        path->from_engine_ = std::move(map);
      } else if (name == "counters") {
        path->counters_ = std::move(map);
      } else if (name == "engine_counters") {
        path->engine_counters_ = std::move(map);
      }
    }
  }
  if (!path->ends_ || !path->from_engine_ || !path->counters_) {
    return bpf_error(ENOENT, "the adopted programs lack a map");
  }
  if (Status s = path->mark_used_slots(); !s) return s;
  if (path->engine_counters_) {
    if (Status s = path->map_engine_counters(); !s) return s;
  }
  return path;
}

Status Datapath::map_engine_counters() {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t length = (sizeof(epair_engine_counters) * EPAIR_KERNEL_MAX_ENDS + page - 1) / page * page;
  void* mapped = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, engine_counters_.get(), 0);
  if (mapped == MAP_FAILED) return bpf_error(errno, "mapping the engine's counters");
  engine_blocks_.reset(static_cast<epair_engine_counters*>(mapped),
                       [length](epair_engine_counters* blocks) { ::munmap(blocks, length); });
  return {};
}

std::shared_ptr<CounterBlock> Datapath::engine_counters(std::uint32_t slot) const {
  static_assert(sizeof(CounterBlock) == sizeof(epair_engine_counters));
  if (!engine_blocks_ || slot >= EPAIR_KERNEL_MAX_ENDS) return nullptr;
  // The map's memory is page-aligned and its values 192 bytes each, so a
  // block is as aligned as a CounterBlock must be.
  return {engine_blocks_, reinterpret_cast<CounterBlock*>(engine_blocks_.get() + slot)};
}

Status Datapath::attach(int ifindex, int program_fd) const {
  return os::run_in_netns(netns_fd_, [&]() -> Status {
    if (tcx_) {
      // The attachment is the device's: it holds the program until the
      // device goes, with no link to keep.
      if (bpf_prog_attach(program_fd, ifindex, kTcxIngress, 0) != 0 && errno != EEXIST) {
        return bpf_error(errno, "tcx");
      }
      return {};
    }
    bpf_tc_hook hook = ingress_hook(ifindex);
    if (int err = bpf_tc_hook_create(&hook); err < 0 && err != -EEXIST) return bpf_error(-err, "clsact qdisc");
    bpf_tc_opts opts = filter_opts(program_fd);
    opts.flags = BPF_TC_F_REPLACE;
    if (int err = bpf_tc_attach(&hook, &opts); err < 0) return bpf_error(-err, "tc filter");
    return {};
  });
}

// An array's every entry is there, most of them empty: it is read in one
// call, not one or two a key. Its values are as long as the map says, which
// is this epaird's or, adopted from a later one, longer.
template <typename Visit>
bool Datapath::for_each_end(Visit visit) const {
  if (!ends_array_) {
    return for_each_key(ends_.get(), [&](std::uint32_t key) {
      epair_end_config config{};
      if (bpf_map_lookup_elem(ends_.get(), &key, &config) == 0 && holds_end(config)) visit(config);
    });
  }
  bpf_map_info info{};
  std::uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(ends_.get(), &info, &length) != 0) return false;
  const std::size_t stride = std::max<std::size_t>(info.value_size, sizeof(epair_end_config));
  std::vector<std::uint32_t> keys(info.max_entries);
  std::vector<unsigned char> values(stride * info.max_entries);
  std::uint32_t count = info.max_entries;
  std::uint32_t next = 0;
  if (bpf_map_lookup_batch(ends_.get(), nullptr, &next, keys.data(), values.data(), &count, nullptr) != 0 &&
      errno != ENOENT) {
    return false;
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    epair_end_config config{};
    std::memcpy(&config, values.data() + i * stride, sizeof config);
    if (holds_end(config)) visit(config);
  }
  return true;
}

Status Datapath::mark_used_slots() {
  const bool read = for_each_end([this](const epair_end_config& config) {
    if (config.slot < slot_used_.size()) slot_used_[config.slot] = true;
  });
  return read ? Status{} : bpf_error(errno, "reading the ends");
}

MapEntries Datapath::map_entries() const {
  MapEntries entries;
  for_each_end([&](const epair_end_config&) { ++entries.ends; });
  for_each_key(from_engine_.get(), [&](std::uint32_t) { ++entries.from_engine; });
  return entries;
}

HiddenEnd Datapath::indexes_of(std::uint32_t slot) const {
  if (!ends_array_) return {};
  return {static_cast<int>(EPAIR_KERNEL_VETH_INDEX(slot)), static_cast<int>(EPAIR_KERNEL_TAP_INDEX(slot))};
}

std::optional<std::uint32_t> Datapath::take_slot() {
  for (std::uint32_t slot = 0; slot < slot_used_.size(); ++slot) {
    if (!slot_used_[slot]) {
      slot_used_[slot] = true;
      return slot;
    }
  }
  return std::nullopt;
}

Result<PairSlots> Datapath::take_slots() {
  std::optional<std::uint32_t> slots[2] = {take_slot(), take_slot()};
  if (!slots[0] || !slots[1]) {
    for (const auto& slot : slots) {
      if (slot) slot_used_[*slot] = false;
    }
    return Status{ENOSPC, "kernel data path: no room for another pair"};
  }
  const PairSlots taken{*slots[0], *slots[1]};
  const std::vector<Counters> zero(static_cast<std::size_t>(libbpf_num_possible_cpus()));
  for (const std::uint32_t slot : {taken.a, taken.b}) {
    if (bpf_map_update_elem(counters_.get(), &slot, zero.data(), BPF_ANY) != 0) {
      release_slots(taken);
      return bpf_error(errno, "counters");
    }
    if (engine_blocks_) engine_blocks_.get()[slot] = epair_engine_counters{};
  }
  return taken;
}

void Datapath::release_slots(const PairSlots& slots) {
  for (const std::uint32_t slot : {slots.a, slots.b}) {
    if (slot < slot_used_.size()) slot_used_[slot] = false;
  }
}

// A pair, in this order:
// 1. Both ends in the maps, each knowing its peer's veth, slot and MTU.
// 2. The deliver program on each TAP, then the transmit program on each
//    veth: an end's frames meet the program only once both ends are known.
Status Datapath::add_pair(const HiddenEnd& a, const HiddenEnd& b, std::uint32_t mtu, const PairSlots& slots) {
  const HiddenEnd ends[2] = {a, b};
  const std::uint32_t slot_of[2] = {slots.a, slots.b};
  for (int i = 0; i < 2; ++i) {
    const auto tap = static_cast<std::uint32_t>(ends[i].tap);
    epair_tap_config to_end{};
    to_end.veth = static_cast<std::uint32_t>(ends[i].veth);
    if (bpf_map_update_elem(from_engine_.get(), &tap, &to_end, BPF_ANY) != 0) return bpf_error(errno, "from_engine");
    epair_end_config config{};
    config.peer_veth = static_cast<std::uint32_t>(ends[1 - i].veth);
    config.tap = tap;
    config.max_frame = mtu + kFrameOverMtu;
    config.peer_max_frame = mtu + kFrameOverMtu;
    config.slot = slot_of[i];
    config.peer_slot = slot_of[1 - i];
    config.way = EPAIR_WAY_KERNEL;
    if (Status s = update_end(ends[i].veth, config); !s) return s;
  }
  for (const HiddenEnd& end : ends) {
    if (Status s = attach(end.tap, deliver_.get()); !s) return s;
  }
  for (const HiddenEnd& end : ends) {
    if (Status s = attach(end.veth, transmit_.get()); !s) return s;
  }
  return {};
}

void Datapath::remove_end(const HiddenEnd& end) {
  const auto veth = static_cast<std::uint32_t>(end.veth);
  const auto tap = static_cast<std::uint32_t>(end.tap);
  auto config = this->config(end);
  if (config && config->slot < slot_used_.size()) slot_used_[config->slot] = false;
  if (ends_array_) {
    // An array's entry stays; without a peer it holds no end. The rest is
    // left as it was, so that a frame in flight that read the peer before
    // this still finds the slots it read with it.
    if (config) {
      config->peer_veth = 0;
      (void)update_end(end.veth, *config);
    }
  } else {
    bpf_map_delete_elem(ends_.get(), &veth);
  }
  bpf_map_delete_elem(from_engine_.get(), &tap);
}

Status Datapath::update_end(int veth, const epair_end_config& config) {
  const auto key = static_cast<std::uint32_t>(veth);
  if (bpf_map_update_elem(ends_.get(), &key, &config, BPF_ANY) != 0) return bpf_error(errno, "ends");
  return {};
}

Result<epair_end_config> Datapath::config(const HiddenEnd& end) const {
  const auto veth = static_cast<std::uint32_t>(end.veth);
  epair_end_config config{};
  const int error = bpf_map_lookup_elem(ends_.get(), &veth, &config) != 0 ? errno : holds_end(config) ? 0 : ENOENT;
  if (error != 0) return bpf_error(error, "no end with hidden veth " + std::to_string(end.veth));
  return config;
}

Status Datapath::set_peer_up(const HiddenEnd& end, bool up) {
  auto config = this->config(end);
  if (!config) return config.status();
  config->peer_up = up ? 1 : 0;
  return update_end(end.veth, *config);
}

// Both entries are read before either is written: an end whose peer is
// not found keeps its MTU too.
Status Datapath::set_mtu(const HiddenEnd& end, std::uint32_t mtu) {
  auto config = this->config(end);
  if (!config) return config.status();
  auto peer = this->config(HiddenEnd{static_cast<int>(config->peer_veth), 0});
  if (!peer) return peer.status();
  config->max_frame = mtu + kFrameOverMtu;
  peer->peer_max_frame = mtu + kFrameOverMtu;
  if (Status s = update_end(end.veth, *config); !s) return s;
  return update_end(static_cast<int>(config->peer_veth), *peer);
}

Status Datapath::set_way(const HiddenEnd& end, epair_way way) {
  auto config = this->config(end);
  if (!config) return config.status();
  config->way = static_cast<std::uint8_t>(way);
  return update_end(end.veth, *config);
}

// The address goes where frames to the end are sent from: the peer's entry
// in ends, and the end's TAP's in from_engine. Both are read before either
// is written, so that a failed call changes neither.
Status Datapath::set_mac(const HiddenEnd& end, const MacAddress& mac) {
  auto config = this->config(end);
  if (!config) return config.status();
  auto peer = this->config(HiddenEnd{static_cast<int>(config->peer_veth), 0});
  if (!peer) return peer.status();
  const auto tap = static_cast<std::uint32_t>(end.tap);
  epair_tap_config to_end{};
  if (bpf_map_lookup_elem(from_engine_.get(), &tap, &to_end) != 0) return bpf_error(errno, "from_engine");
  std::memcpy(peer->peer_mac, mac.bytes.data(), sizeof peer->peer_mac);
  std::memcpy(to_end.mac, mac.bytes.data(), sizeof to_end.mac);
  if (Status s = update_end(static_cast<int>(config->peer_veth), *peer); !s) return s;
  if (bpf_map_update_elem(from_engine_.get(), &tap, &to_end, BPF_EXIST) != 0) return bpf_error(errno, "from_engine");
  return {};
}

Counters Datapath::counters(const HiddenEnd& end) const {
  std::vector<Counters> per_cpu(static_cast<std::size_t>(libbpf_num_possible_cpus()));
  Counters sum{};
  auto config = this->config(end);
  if (!config || bpf_map_lookup_elem(counters_.get(), &config->slot, per_cpu.data()) != 0) return sum;
  for (const Counters& cpu : per_cpu) add_counters(sum, cpu);
  return sum;
}

}  // namespace epair::kernel
