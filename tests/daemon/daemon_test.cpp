// The daemon's protocol handling: its framing and its authorisation. Needs
// root for the Controller (it opens the host namespace); skipped otherwise.
#include <gtest/gtest.h>
#include <unistd.h>

#include "server.hpp"

namespace epair::daemon {
namespace {

TEST(PeerInGroup, PrimaryAndSupplementary) {
  const Peer self{::getpid(), ::getuid(), ::getgid()};
  EXPECT_TRUE(peer_in_group(self, ::getgid()));
  gid_t groups[64];
  const int n = ::getgroups(64, groups);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(peer_in_group(self, groups[i]));
  EXPECT_FALSE(peer_in_group(self, 54321));
}

class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the controller needs root";
    EngineConfig engine;
    engine.workers = 1;
    engine.pool.frames = 64;
    controller = std::make_unique<Controller>(ControllerConfig{engine, {}});
  }
  json ask(const Peer& peer, std::string_view line, AccessPolicy policy = {}) {
    return handle_request(*controller, policy, peer, line);
  }
  json ask_capture(const Peer& peer, std::string_view line) {
    std::optional<StartedCapture> capture;
    json reply = handle_request(*controller, {}, peer, line, &capture);
    EXPECT_FALSE(capture.has_value()) << line;
    return reply;
  }
  static constexpr Peer kRoot{1, 0, 0};
  static constexpr Peer kUser{1, 1000, 1000};
  std::unique_ptr<Controller> controller;
};

TEST_F(ProtocolTest, MalformedRequestsAreEproto) {
  for (const char* line : {"{", "[]", R"({"op":7})", R"({"op":"fly"})", R"({"v":9,"op":"list"})", R"({"op":"destroy"})",
                           R"({"op":"show","name":5})"}) {
    json reply = ask(kRoot, line);
    EXPECT_FALSE(reply["ok"]) << line;
    EXPECT_EQ(reply["error"]["code"], "EPROTO") << line;
  }
}

TEST_F(ProtocolTest, ReadsAreOpenByDefault) {
  json reply = ask(kUser, R"({"v":1,"op":"cloners"})");
  EXPECT_TRUE(reply["ok"]);
  EXPECT_EQ(reply["result"]["cloners"], json::array({"epair"}));
}

TEST_F(ProtocolTest, ChangesNeedRootOrTheGroup) {
  json reply = ask(kUser, R"({"v":1,"op":"create","name":"epair"})");
  EXPECT_EQ(reply["error"]["code"], "EACCES");
  EXPECT_EQ(reply["error"]["message"], "permission denied");
  AccessPolicy policy;
  policy.group = 1000;
  // Allowed through the group; the create itself then needs devices.
  reply = ask(kUser, R"({"v":1,"op":"destroy","name":"epair9a"})", policy);
  EXPECT_EQ(reply["error"]["code"], "ENXIO");
}

TEST_F(ProtocolTest, ReadersCanBeLimitedToTheGroup) {
  AccessPolicy policy;
  policy.readers_all = false;
  EXPECT_EQ(ask(kUser, R"({"op":"list"})", policy)["error"]["code"], "EACCES");
  EXPECT_TRUE(ask(kRoot, R"({"op":"list"})", policy)["ok"]);
}

TEST_F(ProtocolTest, UnknownInterface) {
  json reply = ask(kRoot, R"({"op":"show","name":"epair9a"})");
  EXPECT_EQ(reply["error"]["message"], "interface epair9a does not exist");
  EXPECT_EQ(reply["error"]["errno"], ENXIO);
}

TEST_F(ProtocolTest, CapturesAreForRootOrTheGroupOnly) {
  json reply = ask_capture(kUser, R"({"op":"capture","interfaces":["epair0a"]})");
  EXPECT_EQ(reply["error"]["code"], "EACCES");
}

TEST_F(ProtocolTest, CaptureNeedsAConnectionOfItsOwn) {
  json reply = ask(kRoot, R"({"op":"capture","interfaces":["epair0a"]})");
  EXPECT_EQ(reply["error"]["code"], "EPROTO");
}

TEST_F(ProtocolTest, CaptureRequestsAreChecked) {
  struct Case {
    const char* line;
    const char* code;
    const char* message;
  };
  for (const Case& c : std::initializer_list<Case>{
           {R"({"op":"capture"})", "EPROTO", "capture needs \"interfaces\": an array of 1 to 64 names"},
           {R"({"op":"capture","interfaces":[]})", "EPROTO", "capture needs \"interfaces\": an array of 1 to 64 names"},
           {R"({"op":"capture","interfaces":["epair9a"]})", "ENXIO", "interface epair9a does not exist"},
           {R"({"op":"capture","interfaces":[7]})", "EPROTO", "capture: each interface must be a name"},
           {R"({"op":"capture","interfaces":["epair9a"],"snap":1})", "EPROTO", "unknown field 'snap' for op capture"},
           {R"({"op":"capture","interfaces":["epair9a"],"direction":"up"})", "EINVAL",
            "capture: direction must be both, in or out"},
           {R"({"op":"capture","interfaces":["epair9a"],"snaplen":0})", "EINVAL",
            "capture: snaplen must be from 1 to 262144"},
           {R"({"op":"capture","interfaces":["epair9a"],"buffer_kib":"big"})", "EINVAL",
            "capture: buffer_kib must be from 64 to 1048576"},
           {R"({"op":"capture","interfaces":["epair9a"],"filter":7})", "EPROTO",
            "capture: \"filter\" must be a string"},
           {R"({"op":"capture","interfaces":["epair9a"],"filter":"tcp port"})", "EINVAL",
            "bad filter: can't parse filter expression: syntax error"},
       }) {
    json reply = ask_capture(kRoot, c.line);
    EXPECT_EQ(reply["error"]["code"], c.code) << c.line;
    EXPECT_EQ(reply["error"]["message"], c.message) << c.line;
  }
}

}  // namespace
}  // namespace epair::daemon
