// The memif client API against epaird's memif end as server, in one
// process over a real Unix socket and shared memory: frames both ways,
// jumbo frames chained, several queues, and each way a connection fails.
#include "epair/memif_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "memif_channel.hpp"
#include "memif_endpoint.hpp"
#include "test_util.hpp"

namespace epair::memif {
namespace {

using namespace std::chrono_literals;

std::vector<std::uint8_t> frame_bytes(std::uint32_t size, std::uint64_t seq) {
  std::vector<std::uint8_t> bytes(size);
  std::memcpy(bytes.data(), test::kUnicast.bytes.data(), 6);
  std::memcpy(bytes.data() + 6, test::kSource.bytes.data(), 6);
  bytes[12] = 0x88;
  bytes[13] = 0xb5;
  for (std::uint32_t i = 14; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(i * 7 + seq);
  std::memcpy(bytes.data() + 14, &seq, sizeof seq);
  return bytes;
}

// An end with room for `capacity` frames until opened, as a receiver that
// stopped reading its ring: frames beyond that are dropped and counted. A
// slow gate takes `delay` over each burst before it counts the frames in.
class Gate final : public epair::Endpoint {
 public:
  explicit Gate(std::size_t capacity, std::chrono::milliseconds delay = {}) : capacity_(capacity), delay_(delay) {}
  void input(Interface&, std::span<Frame* const> burst) noexcept override {
    std::this_thread::sleep_for(delay_);
    std::lock_guard lock(mutex_);
    for (Frame* frame : burst) {
      if (open_ || seqs_.size() < capacity_) {
        seqs_.push_back(test::frame_seq(*frame));
        sizes_.push_back(frame->size());
      } else {
        ++dropped_;
      }
      frame->release();
    }
  }
  std::size_t room() noexcept override {
    std::lock_guard lock(mutex_);
    return open_ ? kNoLimit : capacity_ - std::min(capacity_, seqs_.size());
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
  }
  std::vector<std::uint64_t> seqs() const {
    std::lock_guard lock(mutex_);
    return seqs_;
  }
  std::vector<std::uint32_t> sizes() const {
    std::lock_guard lock(mutex_);
    return sizes_;
  }
  std::size_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }
  bool wait_for(std::size_t n) const {
    return test::wait_until([&] { return seqs().size() >= n; });
  }

 private:
  mutable std::mutex mutex_;
  const std::size_t capacity_;
  const std::chrono::milliseconds delay_;
  bool open_ = false;
  std::vector<std::uint64_t> seqs_;
  std::vector<std::uint32_t> sizes_;
  std::size_t dropped_ = 0;
};

class MemifClientTest : public ::testing::Test {
 protected:
  MemifClientTest() : fixture_(config()) {
    char pattern[] = "/tmp/epair-memif-client.XXXXXX";
    dir_ = ::mkdtemp(pattern);
    socket_ = dir_ + "/memif.sock";
    (void)fixture_.a->set_mtu(9000);
    (void)fixture_.b->set_mtu(9000);
  }
  ~MemifClientTest() override {
    if (server_) server_->stop();
    server_.reset();
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }

  static EngineConfig config() {
    EngineConfig c = test::PairFixture::small_config();
    c.pool.frames = 2048;
    c.pool.buffer_size = 16384;
    return c;
  }

  // epair0b as a memif server on socket_.
  void serve(Config settings = {}, std::chrono::milliseconds handshake_timeout = kHandshakeTimeout) {
    settings.socket = socket_;
    auto made = Endpoint::open(fixture_.b, settings, fixture_.engine.pool(), handshake_timeout);
    ASSERT_TRUE(made) << made.status().message();
    server_ = *made;
    ASSERT_TRUE(server_->start());
    fixture_.b->attach(server_);
  }

  // serve(settings), then a client connected to it with options(), once
  // the server counts it connected; null (and a failure) otherwise.
  std::unique_ptr<Client> serve_and_connect(Config settings = {}) {
    serve(settings);
    auto client = connect(options());
    if (client && !test::wait_until([&] { return server_->connected(); })) {
      ADD_FAILURE() << "the server never counted the client connected";
      return nullptr;
    }
    return client;
  }

  ClientOptions options() const {
    ClientOptions o;
    o.socket = socket_;
    o.timeout = 2s;
    return o;
  }

  std::unique_ptr<Client> connect(ClientOptions o) {
    auto client = Client::connect(o);
    EXPECT_TRUE(client) << client.status().message();
    return client ? std::move(*client) : nullptr;
  }

  // Receives until n frames arrived on any queue, at most 5 s; each
  // frame's queue goes to queues when given.
  std::vector<std::vector<std::uint8_t>> receive(Client& client, std::size_t n, std::vector<int>* queues = nullptr) {
    std::vector<std::vector<std::uint8_t>> got;
    std::vector<std::uint8_t> room(32 * 9216);
    Packet packets[32];
    for (std::size_t i = 0; i < 32; ++i) packets[i] = {room.data() + i * 9216, 9216, 0};
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
      client.wait(10ms);
      for (std::uint16_t q = 0; q < client.queues(); ++q) {
        const std::size_t k = client.receive(packets, q);
        for (std::size_t i = 0; i < k; ++i) got.emplace_back(packets[i].data, packets[i].data + packets[i].size);
        if (queues != nullptr) queues->insert(queues->end(), k, q);
      }
    }
    return got;
  }

  test::PairFixture fixture_;
  std::string dir_;
  std::string socket_;
  std::shared_ptr<Endpoint> server_;
};

TEST_F(MemifClientTest, FramesCrossBothWaysJumboFramesChained) {
  serve();
  auto client = connect(options());
  ASSERT_TRUE(client);
  EXPECT_EQ(client->peer_name(), "epair/epair0b");
  EXPECT_EQ(client->queues(), 1);
  EXPECT_EQ(client->ring_size(), 1024u);
  ASSERT_TRUE(test::wait_until([&] { return server_->connected(); }));

  // Client to epair0a: every size, 9000 bytes over five 2048-byte buffers.
  const std::vector<std::uint32_t> sizes = {60, 64, 1514, 2048, 2049, 4096, 9000};
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint64_t seq = 0; seq < 70; ++seq) sent.push_back(frame_bytes(sizes[seq % sizes.size()], seq));
  std::vector<std::span<const std::uint8_t>> spans(sent.begin(), sent.end());
  EXPECT_EQ(client->send(spans), sent.size());
  ASSERT_TRUE(client->flush(2s));
  ASSERT_TRUE(fixture_.at_a->wait_for(sent.size()));
  const auto at_a = fixture_.at_a->frames();
  ASSERT_EQ(at_a.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(at_a[i].bytes, sent[i]) << "frame " << i;
  EXPECT_EQ(server_->counters().received, sent.size());

  // epair0a to the client, the same sizes.
  for (std::uint64_t seq = 0; seq < 70; ++seq) {
    Frame* frame = test::make_frame(fixture_.engine.pool(), sizes[seq % sizes.size()], test::kUnicast, seq);
    ASSERT_NE(frame, nullptr);
    ASSERT_FALSE(fixture_.a->transmit(frame));
  }
  const auto got = receive(*client, 70);
  ASSERT_EQ(got.size(), 70u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), sizes[i % sizes.size()]) << "frame " << i;
    std::uint64_t seq;
    std::memcpy(&seq, got[i].data() + 14, sizeof seq);
    EXPECT_EQ(seq, i);
  }
  EXPECT_EQ(client->counters().received, 70u);
  EXPECT_EQ(client->counters().sent, 70u);
}

TEST_F(MemifClientTest, AFullRingTakesWhatFitsAndTheRestLater) {
  serve();
  ClientOptions o = options();
  o.log2_ring_size = 4;
  auto client = connect(o);
  ASSERT_TRUE(client);
  ASSERT_EQ(client->ring_size(), 16u);
  // 40 frames of 60 bytes on a ring of 16: at most 16 go at once.
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint64_t seq = 0; seq < 40; ++seq) sent.push_back(frame_bytes(60, seq));
  std::vector<std::span<const std::uint8_t>> spans(sent.begin(), sent.end());
  std::size_t done = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (done < spans.size() && std::chrono::steady_clock::now() < deadline) {
    const std::size_t n = client->send(std::span(spans).subspan(done));
    EXPECT_LE(n, 16u);
    done += n;
  }
  ASSERT_EQ(done, spans.size());
  ASSERT_TRUE(fixture_.at_a->wait_for(40));
  const auto at_a = fixture_.at_a->frames();
  for (std::size_t i = 0; i < at_a.size(); ++i) EXPECT_EQ(at_a[i].seq, i);
}

TEST_F(MemifClientTest, TwoQueuesCarryFramesEachWay) {
  Config settings;
  settings.queues = 2;
  serve(settings);
  ClientOptions o = options();
  o.queues = 4;
  auto client = connect(o);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->queues(), 2) << "the server grants at most 2";

  const auto one = frame_bytes(100, 1);
  std::span<const std::uint8_t> frame(one);
  EXPECT_EQ(client->send({&frame, 1}, 1), 1u);
  EXPECT_EQ(client->send({&frame, 1}, 2), 0u) << "no third queue";
  ASSERT_TRUE(fixture_.at_a->wait_for(1));

  // Flows to several UDP ports are spread over both S2C rings.
  for (std::uint16_t port = 0; port < 64; ++port) {
    Frame* f = test::make_frame(fixture_.engine.pool(), 60);
    std::uint8_t* p = f->data();
    p[12] = 0x08;
    p[13] = 0x00;
    std::memset(p + 14, 0, 28);
    p[14] = 0x45;
    p[16] = 0;
    p[17] = 46;
    p[22] = 64;
    p[23] = 17;
    p[26] = 10;
    p[29] = 1;
    p[30] = 10;
    p[33] = 2;
    p[34] = static_cast<std::uint8_t>(port >> 8);
    p[35] = static_cast<std::uint8_t>(port);
    p[37] = 9;
    ASSERT_FALSE(fixture_.a->transmit(f));
  }
  std::vector<int> queues;
  EXPECT_EQ(receive(*client, 64, &queues).size(), 64u);
  EXPECT_GT(std::count(queues.begin(), queues.end(), 0), 0);
  EXPECT_GT(std::count(queues.begin(), queues.end(), 1), 0);
}

TEST_F(MemifClientTest, NoServerIsRefusedWithThePath) {
  auto client = Client::connect(options());
  ASSERT_FALSE(client);
  EXPECT_EQ(client.status().value(), ENOENT);
  EXPECT_EQ(client.status().message(), "memif: connect " + socket_ + ": No such file or directory");
}

TEST_F(MemifClientTest, AWrongSecretIsRefusedWithTheServersReason) {
  Config settings;
  settings.secret = "right";
  serve(settings);
  ClientOptions o = options();
  o.secret = "wrong";
  auto client = Client::connect(o);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.status().value(), ECONNRESET);
  EXPECT_EQ(client.status().message(), "memif: " + socket_ + ": peer disconnected: incorrect secret");
  o.secret = "right";
  EXPECT_TRUE(connect(o));
}

TEST_F(MemifClientTest, AWrongIdIsRefused) {
  serve();
  ClientOptions o = options();
  o.id = 7;
  auto client = Client::connect(o);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.status().message(), "memif: " + socket_ + ": peer disconnected: no interface with id 7");
}

TEST_F(MemifClientTest, ASilentServerTimesOut) {
  os::UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
  const SocketAddress address(socket_);
  ASSERT_EQ(::bind(listener.get(), address.get(), address.length), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  ClientOptions o = options();
  o.timeout = 200ms;
  auto client = Client::connect(o);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.status().value(), ETIMEDOUT);
  EXPECT_EQ(client.status().message(), "memif: " + socket_ + ": no handshake within 200 ms");
}

TEST_F(MemifClientTest, BadOptionsAreRefused) {
  const auto refused = [](ClientOptions o, const std::string& message) {
    auto client = Client::connect(o);
    EXPECT_FALSE(client);
    EXPECT_EQ(client.status().value(), EINVAL);
    EXPECT_EQ(client.status().message(), message);
  };
  ClientOptions o = options();
  o.socket = "";
  refused(o, "memif: no socket given");
  o = options();
  o.socket = "/" + std::string(200, 'x');
  refused(o, "memif: socket path too long: " + o.socket);
  o = options();
  o.queues = 0;
  refused(o, "memif: queues must be 1 to 255");
  o = options();
  o.log2_ring_size = 15;
  refused(o, "memif: log2_ring_size must be 1 to 14");
  o = options();
  o.buffer_size = 10;
  refused(o, "memif: buffer_size must be at least 64");
  o = options();
  o.secret = std::string(25, 's');
  refused(o, "memif: secret longer than 24 bytes");
  o = options();
  o.timeout = 0ms;
  refused(o, "memif: timeout must be positive");
}

// Sends frames of `size` bytes numbered [first, first + n) in one call.
void send_numbered(Client& client, std::uint64_t first, std::uint64_t n, std::uint32_t size = 60) {
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::uint64_t seq = first; seq < first + n; ++seq) frames.push_back(frame_bytes(size, seq));
  std::vector<std::span<const std::uint8_t>> spans(frames.begin(), frames.end());
  ASSERT_EQ(client.send(spans), spans.size());
}

// Sends `sends` bursts of `per_send` 60-byte frames, `gap` apart, numbered
// from `first`; every frame must reach epair0a.
void send_spaced(Client& client, test::PairFixture& fixture, int sends, int per_send, std::chrono::microseconds gap,
                 std::uint64_t first = 0) {
  for (int i = 0; i < sends; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        send_numbered(client, first + static_cast<std::uint64_t>(i * per_send), static_cast<std::uint64_t>(per_send)));
    std::this_thread::sleep_for(gap);
  }
  ASSERT_TRUE(fixture.at_a->wait_for(first + static_cast<std::size_t>(sends * per_send)));
}

TEST_F(MemifClientTest, WithoutModerationEverySendIsSignalled) {
  auto client = serve_and_connect();
  ASSERT_TRUE(client);
  send_spaced(*client, fixture_, 20, 4, 500us);
  EXPECT_EQ(client->counters().interrupts, 20u);
}

TEST_F(MemifClientTest, PollingMasksEveryInterrupt) {
  Config settings;
  settings.rx_mode = RxMode::kPolling;
  auto client = serve_and_connect(settings);
  ASSERT_TRUE(client);
  send_spaced(*client, fixture_, 20, 4, 500us);
  EXPECT_EQ(client->counters().interrupts, 0u);
}

// rx-usecs: once frames flow, the server masks its interrupts and reads
// every period; when the flow stops it unmasks, and the first frame after
// that is signalled and read. No frame waits for a later one. The server
// thread may be kept off a CPU for a while on a loaded machine, which
// leaves interrupts on longer: each step is tried until its deadline, so
// only a server that never masks, or never unmasks, fails.
TEST_F(MemifClientTest, ModerationMasksInterruptsWhileFramesFlowAndStrandsNone) {
  Config settings;
  settings.rx_usecs = 2000;
  auto client = serve_and_connect(settings);
  ASSERT_TRUE(client);
  std::uint64_t sent = 0;
  const auto send_one_burst = [&] {
    const std::uint64_t before = client->counters().interrupts;
    send_spaced(*client, fixture_, 1, 4, 100us, sent);
    sent += 4;
    return client->counters().interrupts > before;
  };
  ASSERT_TRUE(send_one_burst()) << "the first send finds interrupts on";
  bool masked = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       !masked && std::chrono::steady_clock::now() < deadline;) {
    masked = !send_one_burst();
  }
  EXPECT_TRUE(masked) << "a send while frames flow finds interrupts masked, after " << sent << " frames";

  // Idle for several periods: interrupts are on again.
  bool signalled = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       !signalled && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
    signalled = send_one_burst();
  }
  EXPECT_TRUE(signalled) << "a send after the flow stopped is signalled";
  const auto at_a = fixture_.at_a->frames();
  ASSERT_EQ(at_a.size(), sent);
  for (std::size_t i = 0; i < at_a.size(); ++i) EXPECT_EQ(at_a[i].seq, i);
}

// Frames a client put down just before it left are delivered, though the
// server would not have read them for another 2 ms.
TEST_F(MemifClientTest, FramesSentJustBeforeLeavingAreDelivered) {
  Config settings;
  settings.rx_usecs = 2000;
  auto client = serve_and_connect(settings);
  ASSERT_TRUE(client);
  send_spaced(*client, fixture_, 1, 1, 0us);
  ASSERT_NO_FATAL_FAILURE(send_numbered(*client, 1, 100));
  client.reset();
  ASSERT_TRUE(fixture_.at_a->wait_for(101));
  EXPECT_EQ(server_->counters().received, 101u);
  // The frames are delivered before the session is torn down and its
  // reason recorded.
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       server_->last_disconnect().empty() && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(server_->last_disconnect(), "peer disconnected: client closed");
}

std::vector<std::uint64_t> numbers(std::uint64_t n) {
  std::vector<std::uint64_t> all(n);
  for (std::uint64_t i = 0; i < n; ++i) all[i] = i;
  return all;
}

// flow-control on: the end takes no more than the other end has room for;
// the rest wait on the client's ring, none dropped, and cross in order once
// there is room. Tried on the retry timer (no rx-usecs) and with rx-usecs.
TEST_F(MemifClientTest, FlowControlLeavesFramesOnTheRingUntilTheOtherEndHasRoom) {
  for (const std::uint32_t usecs : {0u, 2000u}) {
    SCOPED_TRACE("rx-usecs " + std::to_string(usecs));
    auto gate = std::make_shared<Gate>(10);
    fixture_.a->attach(gate);
    Config settings;
    settings.flow_control = true;
    settings.rx_usecs = usecs;
    auto client = serve_and_connect(settings);
    ASSERT_TRUE(client);
    send_numbered(*client, 0, 100);
    ASSERT_TRUE(gate->wait_for(10));
    ASSERT_TRUE(test::wait_until([&] { return server_->counters().held_back >= 2; }))
        << "the end keeps trying while frames wait";
    EXPECT_EQ(gate->seqs().size(), 10u);
    EXPECT_EQ(server_->counters().received, 10u);
    EXPECT_EQ(gate->dropped(), 0u);
    gate->open();
    ASSERT_TRUE(gate->wait_for(100));
    EXPECT_EQ(gate->seqs(), numbers(100));
    EXPECT_EQ(gate->dropped(), 0u);
    EXPECT_EQ(server_->counters().received, 100u);
    client.reset();
    fixture_.b->detach();
    server_->stop();
    server_.reset();
  }
}

// Frames a worker has taken off the other end's queue and not yet handed to
// its endpoint still count against the room: while a slow receiver takes
// its first ten in, the end does not send ten more.
TEST_F(MemifClientTest, FlowControlCountsFramesBeingDelivered) {
  auto gate = std::make_shared<Gate>(10, 200ms);
  fixture_.a->attach(gate);
  Config settings;
  settings.flow_control = true;
  auto client = serve_and_connect(settings);
  ASSERT_TRUE(client);
  send_numbered(*client, 0, 100);
  ASSERT_TRUE(gate->wait_for(10));
  ASSERT_TRUE(test::wait_until([&] { return server_->counters().held_back >= 2; }));
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(gate->seqs(), numbers(10));
  EXPECT_EQ(gate->dropped(), 0u);
  EXPECT_EQ(server_->counters().received, 10u);
  gate->open();
  ASSERT_TRUE(gate->wait_for(100));
  EXPECT_EQ(gate->seqs(), numbers(100));
  EXPECT_EQ(gate->dropped(), 0u);
}

TEST_F(MemifClientTest, WithoutFlowControlTheOtherEndDropsWhatItHasNoRoomFor) {
  auto gate = std::make_shared<Gate>(10);
  fixture_.a->attach(gate);
  auto client = serve_and_connect();
  ASSERT_TRUE(client);
  send_numbered(*client, 0, 100);
  ASSERT_TRUE(test::wait_until([&] { return gate->seqs().size() + gate->dropped() == 100; }));
  EXPECT_EQ(gate->dropped(), 90u);
  EXPECT_EQ(server_->counters().received, 100u);
  EXPECT_EQ(server_->counters().held_back, 0u);
}

// Room counts frames, not descriptors: a frame chained over three buffers
// crosses whole with room for one.
TEST_F(MemifClientTest, FlowControlNeverSplitsAChain) {
  auto gate = std::make_shared<Gate>(1);
  fixture_.a->attach(gate);
  Config settings;
  settings.flow_control = true;
  auto client = serve_and_connect(settings);
  ASSERT_TRUE(client);
  send_numbered(*client, 0, 5, 5000);
  ASSERT_TRUE(gate->wait_for(1));
  ASSERT_TRUE(test::wait_until([&] { return server_->counters().held_back >= 1; }));
  gate->open();
  ASSERT_TRUE(gate->wait_for(5));
  EXPECT_EQ(gate->seqs(), numbers(5));
  EXPECT_EQ(gate->sizes(), std::vector<std::uint32_t>(5, 5000));
  EXPECT_TRUE(server_->connected()) << server_->last_disconnect();
  EXPECT_EQ(server_->counters().bad_descriptor, 0u);
}

TEST_F(MemifClientTest, TheServerLeavingEndsTheConnection) {
  auto client = serve_and_connect();
  ASSERT_TRUE(client);
  server_->stop();
  ASSERT_TRUE(test::wait_until([&] {
    client->wait(10ms);
    return !client->connected();
  }));
  EXPECT_EQ(client->disconnect_reason(), "peer disconnected: interface detached");
  const auto one = frame_bytes(60, 0);
  std::span<const std::uint8_t> frame(one);
  EXPECT_EQ(client->send({&frame, 1}), 0u);
  EXPECT_FALSE(client->wait(0ms));
}

TEST_F(MemifClientTest, ClosingTheClientFreesTheServerForTheNext) {
  serve();
  for (int round = 0; round < 3; ++round) {
    auto client = connect(options());
    ASSERT_TRUE(client);
    ASSERT_TRUE(test::wait_until([&] { return server_->connected(); }));
    client.reset();
    ASSERT_TRUE(test::wait_until([&] { return !server_->connected(); }));
    EXPECT_EQ(server_->last_disconnect(), "peer disconnected: client closed");
  }
  EXPECT_EQ(server_->counters().connects, 3u);
}

// A peer that connects and then says nothing would hold the server's one
// session for ever: it is dropped when the handshake timeout runs out.
TEST_F(MemifClientTest, TheServerDropsAStalledHandshake) {
  serve({}, 200ms);
  os::UniqueFd stalled(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
  const SocketAddress address(socket_);
  ASSERT_EQ(::connect(stalled.get(), address.get(), address.length), 0);
  Wire wire;
  ASSERT_EQ(::recv(stalled.get(), wire.data(), wire.size(), 0), 128) << "HELLO";
  ASSERT_EQ(::recv(stalled.get(), wire.data(), wire.size(), 0), 128) << "DISCONNECT, after 200 ms";
  auto message = decode(wire);
  ASSERT_TRUE(message && std::holds_alternative<Disconnect>(*message));
  EXPECT_EQ(std::get<Disconnect>(*message).reason, "handshake not finished in 200 ms");
  EXPECT_TRUE(test::wait_until([&] { return server_->last_disconnect() == "handshake not finished in 200 ms"; }));
  EXPECT_TRUE(connect(options()));
}

}  // namespace
}  // namespace epair::memif
