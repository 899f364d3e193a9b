// The control path: cloner, vnets, teardown.
#include "epair/engine.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>

#include "dispatcher.hpp"
#include "impairment_line.hpp"
#include "pair.hpp"

namespace epair {

namespace {

constexpr std::string_view kCloner = "epair";

std::string vnet_missing(std::string_view name) { return "vnet " + std::string(name) + " does not exist"; }

std::string interface_name(int unit, char side) { return std::string(kCloner) + std::to_string(unit) + side; }

bool valid_vnet_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

DispatcherConfig dispatcher_config(const EngineConfig& config) {
  if (config.queue_depth == 0) throw std::invalid_argument("queue depth must be at least 1");
  if (config.queues_per_side == 0) throw std::invalid_argument("a side needs at least one receive queue");
  if (config.burst == 0 || config.bursts_per_run == 0) throw std::invalid_argument("burst sizes must be at least 1");
  DispatcherConfig d;
  d.workers = config.workers != 0 ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  d.burst = config.burst;
  d.bursts_per_run = config.bursts_per_run;
  d.spin_us = config.worker_spin_us;
  d.pin_workers = config.pin_workers;
  d.deliver_inline = config.deliver_inline;
  return d;
}

std::uint64_t choose_host_id(const EngineConfig& config) {
  std::uint64_t id = config.host_id.value_or(system_host_id());
  if (id == 0) {
    std::random_device random;
    id = (static_cast<std::uint64_t>(random()) << 32) | random();
  }
  return id;
}

}  // namespace

Result<int> cloner_unit(std::string_view name) {
  const Status invalid{EINVAL, std::string(name) + ": SIOCIFCREATE2: Invalid argument"};
  if (name.substr(0, kCloner.size()) != kCloner) return invalid;
  const std::string_view digits = name.substr(kCloner.size());
  if (digits.empty()) return -1;
  if (digits.size() > 1 && digits[0] == '0') return invalid;
  long long unit = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return invalid;
    unit = unit * 10 + (c - '0');
    if (unit > std::numeric_limits<int>::max()) return invalid;
  }
  return static_cast<int>(unit);
}

struct Engine::Vnet {
  std::string name;
  std::map<std::string, std::shared_ptr<Interface>, std::less<>> interfaces;
  std::set<int> units;
  std::uint32_t next_index = 1;
  bool shutting_down = false;
};

struct Engine::PairRecord {
  std::shared_ptr<Pair> pair;
  std::shared_ptr<Vnet> home;
};

Pair::Pair(std::shared_ptr<Dispatcher> dispatcher_in, int unit_in, std::string_view prefix, std::size_t queues,
           std::uint32_t queue_depth, bool carrier_follows_peer_in, const PairCounters& counters)
    : dispatcher(std::move(dispatcher_in)), unit(unit_in), carrier_follows_peer(carrier_follows_peer_in) {
  const std::string base = std::string(prefix) + std::to_string(unit);
  a.reset(new Interface(*this, 'a', base + 'a', unit, queues, queue_depth, counters.a));
  b.reset(new Interface(*this, 'b', base + 'b', unit, queues, queue_depth, counters.b));
  a->peer_ = b.get();
  b->peer_ = a.get();
}

Pair::~Pair() = default;

Engine::Engine(const EngineConfig& config)
    : config_(config),
      host_id_(choose_host_id(config)),
      pool_(std::make_shared<FramePool>(config.pool)),
      dispatcher_(std::make_shared<Dispatcher>(dispatcher_config(config))),
      clock_(std::make_shared<ImpairmentClock>()) {
  next_mac_index_ = config.mac_index_start;
  auto host = std::make_shared<Vnet>();
  host->name = std::string(kHostVnet);
  vnets_.emplace(host->name, std::move(host));
}

Engine::~Engine() {
  for (const auto& name : vnets()) {
    if (name != kHostVnet) (void)destroy_vnet(name);
  }
  for (;;) {
    std::shared_ptr<Interface> ifp;
    {
      std::lock_guard lock(mutex_);
      if (pairs_.empty()) break;
      ifp = pairs_.begin()->second->pair->handle(*pairs_.begin()->second->pair->a);
    }
    (void)destroy(ifp->name(), ifp->vnet_name());
  }
  // The clock crosses frames into queues: it stops before the workers.
  clock_->stop();
  dispatcher_->stop();
}

std::shared_ptr<Engine::Vnet> Engine::vnet_locked(std::string_view name) const {
  auto it = vnets_.find(name);
  return it == vnets_.end() ? nullptr : it->second;
}

void Engine::attach_locked(Interface& ifp, Vnet& vnet) {
  {
    std::lock_guard lock(ifp.mutex_);
    ifp.index_ = vnet.next_index++;
    ifp.vnet_name_ = vnet.name;
  }
  vnet.interfaces.emplace(ifp.name(), ifp.pair_.handle(ifp));
}

std::uint32_t Engine::mac_index() const {
  std::lock_guard lock(mutex_);
  return next_mac_index_;
}

MacAddress Engine::mac_for_locked(const Interface& a) {
  if (config_.mac_mode == MacMode::kStable) return stable_mac(a.name(), host_id_);
  // FreeBSD's epair_generate_mac(): an index that only grows, so that a
  // re-created pair never repeats an address.
  const std::uint32_t index = a.index_;
  if (index > next_mac_index_) {
    next_mac_index_ = index;
  } else {
    ++next_mac_index_;
  }
  return legacy_mac(next_mac_index_, host_id_);
}

Result<std::string> Engine::create(std::string_view name, std::string_view vnet_name, const void* /*params*/) {
  return create(name, PairCounters{}, vnet_name);
}

Result<std::string> Engine::create(std::string_view name, const PairCounters& counters, std::string_view vnet_name) {
  std::lock_guard lock(mutex_);
  auto vnet = vnet_locked(vnet_name);
  if (!vnet) return Status{ENOENT, vnet_missing(vnet_name)};
  if (vnet->shutting_down) return Status{EBUSY, "vnet " + vnet->name + " is shutting down"};

  auto parsed = cloner_unit(name);
  if (!parsed) return parsed.status();
  int unit = *parsed;
  const auto names_free = [&](int u) {
    return !vnet->interfaces.contains(interface_name(u, 'a')) && !vnet->interfaces.contains(interface_name(u, 'b'));
  };
  if (unit < 0) {
    // Unlike FreeBSD, the wildcard passes over units whose names are taken
    // by interfaces moved in from elsewhere instead of failing on them.
    for (int u = 0; u <= kMaxUnit && unit < 0; ++u) {
      if (!vnet->units.contains(u) && names_free(u)) unit = u;
    }
    if (unit < 0) return Status{ENOSPC, std::string(name) + ": SIOCIFCREATE2: No space left on device"};
  } else {
    if (unit > kMaxUnit) return Status{ENOSPC, std::string(name) + ": SIOCIFCREATE2: No space left on device"};
    if (vnet->units.contains(unit)) return Status{EEXIST, "interface " + std::string(name) + " already exists"};
  }
  const std::string a_name = interface_name(unit, 'a');
  if (a_name.size() > kMaxInterfaceName) {
    return Status{ENOSPC, std::string(name) + ": SIOCIFCREATE2: No space left on device"};
  }
  for (char side : {'b', 'a'}) {
    if (vnet->interfaces.contains(interface_name(unit, side))) {
      return Status{EEXIST, "interface " + interface_name(unit, side) + " already exists"};
    }
  }

  std::shared_ptr<Pair> pair;
  try {
    pair = std::make_shared<Pair>(dispatcher_, unit, kCloner, config_.queues_per_side, config_.queue_depth,
                                  config_.carrier_follows_peer, counters);
    pair->clock = clock_;
  } catch (const std::bad_alloc&) {
    return Status{ENOSPC, std::string(name) + ": SIOCIFCREATE2: No space left on device"};
  }
  // From here nothing fails: the unit is taken only now.
  vnet->units.insert(unit);
  for (Interface* ifp : {pair->a.get(), pair->b.get()}) {
    attach_locked(*ifp, *vnet);
    std::lock_guard ifp_lock(ifp->mutex_);
    ifp->home_vnet_name_ = vnet->name;
  }
  const MacAddress mac_a = mac_for_locked(*pair->a);
  MacAddress mac_b = config_.mac_mode == MacMode::kStable ? stable_mac(pair->b->name(), host_id_) : mac_a;
  if (config_.mac_mode == MacMode::kLegacy) mac_b.bytes[5] = 0x0b;
  pair->a->mac_ = mac_a;
  pair->b->mac_ = mac_b;
  pair->a->set_driver_state(true);
  pair->b->set_driver_state(true);
  pair->a->update_carrier();
  pair->b->update_carrier();
  pairs_.emplace(pair.get(), std::make_shared<PairRecord>(PairRecord{pair, vnet}));
  return a_name;
}

// Teardown, steps 1 and 2, with the engine locked.
std::shared_ptr<Pair> Engine::begin_teardown_locked(Pair& pair, Events& events) {
  auto record = pairs_.find(&pair);
  if (record == pairs_.end()) return nullptr;
  std::shared_ptr<Pair> owned = record->second->pair;
  pair.destroyed.store(true, std::memory_order_release);

  // 1. Both sides link down and not RUNNING: transmitters stop here.
  for (Interface* ifp : {pair.a.get(), pair.b.get()}) {
    ifp->set_driver_state(false);
    events.emplace_back(pair.handle(*ifp), InterfaceEvent::kLinkState);
    events.emplace_back(pair.handle(*ifp), InterfaceEvent::kFlags);
  }
  // 2. Detach both from the vnets they are in; their names are free now.
  for (Interface* ifp : {pair.a.get(), pair.b.get()}) {
    if (auto vnet = vnet_locked(ifp->vnet_name())) vnet->interfaces.erase(ifp->name());
  }
  units_to_free_.emplace(owned.get(), record->second->home);
  pairs_.erase(record);
  return owned;
}

// Teardown, steps 3 to 5, without the engine lock: waiting for a worker that
// is inside an endpoint which calls back into the engine must not deadlock.
void Engine::finish_teardown(const std::shared_ptr<Pair>& pair, Events& events) {
  // 3. Free what impairments hold; a clock already crossing frames finds
  // the peer not RUNNING. Then wait until no worker delivers for either
  // side, and
  // 4. free every queued frame.
  pair->a->clear_impairment();
  pair->b->clear_impairment();
  for (Interface* ifp : {pair->a.get(), pair->b.get()}) {
    for (auto& q : ifp->queues_) dispatcher_->close(*q);
  }
  for (Interface* ifp : {pair->a.get(), pair->b.get()}) {
    std::shared_ptr<Endpoint> endpoint;
    {
      std::lock_guard lock(ifp->mutex_);
      endpoint = std::move(ifp->endpoint_);
    }
    events.emplace_back(pair->handle(*ifp), InterfaceEvent::kDestroyed);
  }
  // 5. Free the unit last.
  std::lock_guard lock(mutex_);
  auto it = units_to_free_.find(pair.get());
  if (it != units_to_free_.end()) {
    it->second->units.erase(pair->unit);
    units_to_free_.erase(it);
  }
}

void Engine::deliver(Events& events) {
  for (auto& [ifp, event] : events) {
    ifp->notify(event);
    if (event == InterfaceEvent::kDestroyed) {
      // Observers and taps often hold handles of their interface; letting go
      // of them breaks the cycle that would keep the pair alive.
      std::lock_guard lock(ifp->mutex_);
      ifp->observers_.clear();
      ifp->taps_.clear();
      ifp->publish_taps_locked();
    }
  }
  events.clear();
}

std::uint32_t Engine::worker_count() const {
  return config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
}

Status Engine::destroy(std::string_view ifname, std::string_view vnet_name) {
  Events events;
  std::shared_ptr<Pair> pair;
  {
    std::lock_guard lock(mutex_);
    auto vnet = vnet_locked(vnet_name);
    if (!vnet) return {ENOENT, vnet_missing(vnet_name)};
    auto it = vnet->interfaces.find(ifname);
    if (it == vnet->interfaces.end()) return no_such_interface(ifname);
    pair = begin_teardown_locked(it->second->pair_, events);
  }
  finish_teardown(pair, events);
  deliver(events);
  return {};
}

Status Engine::rename(std::string_view ifname, std::string_view new_name, std::string_view vnet_name) {
  const std::string prefix = std::string(ifname) + ": SIOCSIFNAME: ";
  const bool bad = new_name.empty() || new_name == "." || new_name == ".." || std::ranges::any_of(new_name, [](char c) {
                     return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) != 0 ||
                            std::iscntrl(static_cast<unsigned char>(c)) != 0;
                   });
  if (bad) return {EINVAL, prefix + "Invalid argument"};
  if (new_name.size() > kMaxInterfaceName) return {ENAMETOOLONG, prefix + "File name too long"};
  std::shared_ptr<Interface> ifp;
  {
    std::lock_guard lock(mutex_);
    auto vnet = vnet_locked(vnet_name);
    if (!vnet) return {ENOENT, vnet_missing(vnet_name)};
    auto it = vnet->interfaces.find(ifname);
    if (it == vnet->interfaces.end()) return no_such_interface(ifname);
    if (ifname == new_name) return {};
    if (vnet->interfaces.contains(new_name)) return {EEXIST, "interface " + std::string(new_name) + " already exists"};
    ifp = it->second;
    vnet->interfaces.erase(it);
    vnet->interfaces.emplace(std::string(new_name), ifp);
    std::lock_guard name_lock(ifp->name_mutex_);
    ifp->name_ = std::string(new_name);
  }
  Events events{{ifp, InterfaceEvent::kRenamed}};
  deliver(events);
  return {};
}

std::shared_ptr<Interface> Engine::find(std::string_view ifname, std::string_view vnet_name) const {
  std::lock_guard lock(mutex_);
  auto vnet = vnet_locked(vnet_name);
  if (!vnet) return nullptr;
  auto it = vnet->interfaces.find(ifname);
  return it == vnet->interfaces.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Interface>> Engine::interfaces(std::string_view vnet_name) const {
  // Indexes change when interfaces move: sort on one snapshot of them, taken
  // under the lock that moves hold, or the order would be inconsistent.
  std::vector<std::pair<std::uint32_t, std::shared_ptr<Interface>>> indexed;
  {
    std::lock_guard lock(mutex_);
    auto vnet = vnet_locked(vnet_name);
    if (vnet) {
      for (const auto& [name, ifp] : vnet->interfaces) indexed.emplace_back(ifp->index(), ifp);
    }
  }
  std::sort(indexed.begin(), indexed.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::shared_ptr<Interface>> list;
  list.reserve(indexed.size());
  for (auto& entry : indexed) list.push_back(std::move(entry.second));
  return list;
}

Status Engine::create_vnet(std::string_view name) {
  if (!valid_vnet_name(name)) return {EINVAL, "invalid vnet name '" + std::string(name) + "'"};
  std::lock_guard lock(mutex_);
  if (vnets_.contains(name)) return {EEXIST, "vnet " + std::string(name) + " already exists"};
  auto vnet = std::make_shared<Vnet>();
  vnet->name = std::string(name);
  vnets_.emplace(vnet->name, std::move(vnet));
  return {};
}

std::vector<std::string> Engine::vnets() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, vnet] : vnets_) names.push_back(name);
  return names;
}

Status Engine::move_locked(std::string_view ifname, Vnet& from, std::string_view target_name, Events& events) {
  auto it = from.interfaces.find(ifname);
  if (it == from.interfaces.end()) return no_such_interface(ifname);
  const std::string prefix = std::string(ifname) + ": SIOCSIFVNET: ";
  auto target = vnet_locked(target_name);
  if (!target) return {ENOENT, prefix + vnet_missing(target_name)};
  if (target.get() == &from) return {EEXIST, prefix + "File exists (already in vnet " + target->name + ")"};
  if (target->shutting_down) return {EBUSY, prefix + "Device busy (vnet " + target->name + " is shutting down)"};
  if (target->interfaces.contains(ifname)) {
    return {EEXIST, prefix + "File exists (vnet " + target->name + " has an interface " + std::string(ifname) + ")"};
  }
  std::shared_ptr<Interface> ifp = it->second;
  from.interfaces.erase(it);
  // A moved interface arrives unconfigured: if_vmove() takes it down and
  // detaching it drops its multicast memberships.
  const bool was_up = (ifp->flags_.fetch_and(~kFlagUp, std::memory_order_acq_rel) & kFlagUp) != 0;
  bool had_groups;
  {
    std::lock_guard ifp_lock(ifp->mutex_);
    had_groups = !ifp->multicast_.empty();
    ifp->multicast_.clear();
  }
  attach_locked(*ifp, *target);
  if (was_up) events.emplace_back(ifp, InterfaceEvent::kFlags);
  if (was_up && ifp->peer_->update_carrier()) {
    events.emplace_back(ifp->pair_.handle(*ifp->peer_), InterfaceEvent::kLinkState);
  }
  if (had_groups) events.emplace_back(ifp, InterfaceEvent::kMulticast);
  events.emplace_back(ifp, InterfaceEvent::kMoved);
  return {};
}

Status Engine::move(std::string_view ifname, std::string_view target, std::string_view from_name) {
  Events events;
  Status status;
  {
    std::lock_guard lock(mutex_);
    auto from = vnet_locked(from_name);
    if (!from) return {ENOENT, vnet_missing(from_name)};
    status = move_locked(ifname, *from, target, events);
  }
  deliver(events);
  return status;
}

Status Engine::reclaim(std::string_view ifname, std::string_view from, std::string_view into) {
  return move(ifname, into, from);
}

Status Engine::destroy_vnet(std::string_view name) {
  Events events;
  std::vector<std::shared_ptr<Pair>> doomed;
  std::shared_ptr<Vnet> vnet;
  {
    std::lock_guard lock(mutex_);
    vnet = vnet_locked(name);
    if (!vnet) return {ENOENT, vnet_missing(name)};
    if (vnet->name == kHostVnet) return {EINVAL, "the host vnet cannot be destroyed"};
    if (vnet->shutting_down) return {EBUSY, "vnet " + vnet->name + " is already shutting down"};
    vnet->shutting_down = true;

    // Borrowed interfaces go home; a pair that cannot go home, or that was
    // created here, is destroyed: a dying vnet never leaks an epair.
    std::vector<Pair*> to_destroy;
    const auto interfaces = vnet->interfaces;
    for (const auto& [ifname, ifp] : interfaces) {
      Pair& pair = ifp->pair_;
      auto record = pairs_.find(&pair);
      if (record == pairs_.end()) continue;
      const auto& home = record->second->home;
      if (home != vnet && !home->shutting_down && move_locked(ifname, *vnet, home->name, events).ok()) continue;
      to_destroy.push_back(&pair);
    }
    for (const auto& [pair, record] : pairs_) {
      if (record->home == vnet) to_destroy.push_back(pair);
    }
    std::sort(to_destroy.begin(), to_destroy.end());
    to_destroy.erase(std::unique(to_destroy.begin(), to_destroy.end()), to_destroy.end());
    for (Pair* pair : to_destroy) doomed.push_back(begin_teardown_locked(*pair, events));
  }
  for (const auto& pair : doomed) finish_teardown(pair, events);
  // Observers run while the vnet still exists and is shutting down.
  deliver(events);
  std::lock_guard lock(mutex_);
  vnets_.erase(vnet->name);
  return {};
}

}  // namespace epair
