// SPEC.md "Addresses".
#include <gtest/gtest.h>

#include <set>

#include "test_util.hpp"

namespace epair {
namespace {

EngineConfig config_with(MacMode mode, std::uint64_t host_id) {
  EngineConfig c;
  c.workers = 1;
  c.pool.frames = 128;
  c.queue_depth = 16;
  c.mac_mode = mode;
  c.host_id = host_id;
  return c;
}

TEST(JenkinsHash, EmptyKeyReturnsTheSeededInitialValue) {
  // lookup3: a = b = c = 0xdeadbeef + (length << 2) + initval; length 0
  // returns c unmixed.
  const std::uint32_t key[1] = {0};
  EXPECT_EQ(jenkins_hash32(key, 0, 0), 0xdeadbeefu);
  EXPECT_EQ(jenkins_hash32(key, 0, 1), 0xdeadbef0u);
}

TEST(JenkinsHash, EveryWordAndTheSeedMatter) {
  const std::uint32_t base[3] = {1, 2, 3};
  const std::uint32_t h = jenkins_hash32(base, 3, 0);
  EXPECT_NE(h, jenkins_hash32(base, 3, 1));
  for (int i = 0; i < 3; ++i) {
    std::uint32_t changed[3] = {1, 2, 3};
    changed[i] ^= 1;
    EXPECT_NE(h, jenkins_hash32(changed, 3, 0)) << i;
  }
}

TEST(MacAddress, ParsesAndPrints) {
  auto mac = MacAddress::parse("02:1E:66:05:b0:0a");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac->to_string(), "02:1e:66:05:b0:0a");
  EXPECT_EQ(MacAddress::parse("2-1e-66-5-b0-a")->to_string(), "02:1e:66:05:b0:0a");
}

TEST(MacAddress, RejectsMalformed) {
  for (const char* text : {"", "02:1e:66:05:b0", "02:1e:66:05:b0:0a:00", "02:1e:66:05:b0:0g", "021e6605b00a",
                           "02::66:05:b0:0a", "002:1e:66:05:b0:0a"}) {
    EXPECT_FALSE(MacAddress::parse(text)) << text;
  }
}

TEST(MacAddress, ClassifiesGroupAddresses) {
  EXPECT_TRUE(test::kBroadcast.is_broadcast());
  EXPECT_TRUE(test::kBroadcast.is_multicast());
  EXPECT_TRUE(test::kMulticast.is_multicast());
  EXPECT_FALSE(test::kMulticast.is_broadcast());
  EXPECT_FALSE(test::kUnicast.is_multicast());
}

TEST(LegacyMac, SidesShareHashAndDifferInLastByte) {
  Engine engine(config_with(MacMode::kLegacy, 0x0102030405060708ULL));
  ASSERT_TRUE(engine.create("epair"));
  const auto a = engine.find("epair0a")->mac();
  const auto b = engine.find("epair0b")->mac();
  EXPECT_EQ(a.bytes[0], 0x02);
  EXPECT_EQ(a.bytes[5], 0x0a);
  EXPECT_EQ(b.bytes[5], 0x0b);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.bytes[i], b.bytes[i]);
}

TEST(LegacyMac, IsJenkinsHashOfIndexAndHostId) {
  const std::uint64_t host = 0x0102030405060708ULL;
  Engine engine(config_with(MacMode::kLegacy, host));
  ASSERT_TRUE(engine.create("epair"));
  auto a = engine.find("epair0a");
  const std::uint32_t key[3] = {a->index(), 0x05060708u, 0x01020304u};
  const std::uint32_t hash = jenkins_hash32(key, 3, 0);
  const MacAddress expected{{0x02, static_cast<std::uint8_t>(hash), static_cast<std::uint8_t>(hash >> 8),
                             static_cast<std::uint8_t>(hash >> 16), static_cast<std::uint8_t>(hash >> 24), 0x0a}};
  EXPECT_EQ(a->mac(), expected);
  EXPECT_EQ(legacy_mac(a->index(), host), expected);
}

TEST(LegacyMac, RecreatedPairGetsNewAddress) {
  Engine engine(config_with(MacMode::kLegacy, 77));
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(engine.create("epair0"));
    EXPECT_TRUE(seen.insert(engine.find("epair0a")->mac().to_string()).second);
    ASSERT_TRUE(engine.destroy("epair0a"));
  }
}

TEST(LegacyMac, IndexContinuesFromAnEarlierRun) {
  std::set<std::string> seen;
  std::uint32_t index = 0;
  for (int run = 0; run < 3; ++run) {
    EngineConfig config = config_with(MacMode::kLegacy, 77);
    config.mac_index_start = index;
    Engine engine(config);
    ASSERT_TRUE(engine.create("epair0"));
    EXPECT_TRUE(seen.insert(engine.find("epair0a")->mac().to_string()).second) << "run " << run;
    index = engine.mac_index();
    EXPECT_GT(index, 0u);
  }
}

TEST(LegacyMac, DependsOnHostId) {
  Engine one(config_with(MacMode::kLegacy, 1));
  Engine two(config_with(MacMode::kLegacy, 2));
  ASSERT_TRUE(one.create("epair"));
  ASSERT_TRUE(two.create("epair"));
  EXPECT_NE(one.find("epair0a")->mac(), two.find("epair0a")->mac());
}

TEST(LegacyMac, ZeroHostIdIsReplacedByRandomOne) {
  Engine engine(config_with(MacMode::kLegacy, 0));
  EXPECT_NE(engine.host_id(), 0u);
}

TEST(StableMac, SameAddressesAfterRecreate) {
  Engine engine(config_with(MacMode::kStable, 99));
  ASSERT_TRUE(engine.create("epair3"));
  const auto a = engine.find("epair3a")->mac();
  const auto b = engine.find("epair3b")->mac();
  ASSERT_TRUE(engine.destroy("epair3a"));
  ASSERT_TRUE(engine.create("epair"));  // takes unit 0, shifting indexes
  ASSERT_TRUE(engine.create("epair3"));
  EXPECT_EQ(engine.find("epair3a")->mac(), a);
  EXPECT_EQ(engine.find("epair3b")->mac(), b);
  EXPECT_NE(a, b);
}

TEST(StableMac, IsLocallyAdministeredUnicast) {
  for (const char* name : {"epair0a", "epair0b", "epair32767a"}) {
    const auto mac = stable_mac(name, 1234);
    EXPECT_TRUE(mac.is_locally_administered()) << name;
    EXPECT_FALSE(mac.is_multicast()) << name;
  }
}

TEST(StableMac, DiffersByHostAndName) {
  EXPECT_NE(stable_mac("epair0a", 1), stable_mac("epair0a", 2));
  EXPECT_NE(stable_mac("epair0a", 1), stable_mac("epair1a", 1));
}

}  // namespace
}  // namespace epair
