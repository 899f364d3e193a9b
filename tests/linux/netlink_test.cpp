// RouteSocket in a network namespace of the test's own. Device groups:
// removing a group takes its devices and a veth's peer with them in one
// request, and no other device; a group with none is ENODEV, group 0 is
// refused. Addresses as ifconfig has them: added again, or under another
// prefix, an address is kept once; removed under any prefix or the one
// given. A veth and a TAP made at the index asked, EBUSY when a device
// has it. Needs root; skipped otherwise.
#include "netlink.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "linux/private_netns.hpp"
#include "tap_endpoint.hpp"

namespace epair::os {
namespace {

constexpr std::uint32_t kGroup = 7;

// Runs body in a network namespace of its own with a route socket there and
// the namespace's descriptor, for a veth's peer to be made in.
template <typename Body>
void with_route(Body body) {
  test::in_private_netns([&] {
    auto route = RouteSocket::open();
    ASSERT_TRUE(route) << route.status().message();
    UniqueFd here(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(here);
    body(*route, here.get());
  });
}

TEST(RouteSocketGroupTest, RemovingAGroupTakesItsDevicesAndTheirVethPeers) {
  if (::geteuid() != 0) GTEST_SKIP() << "devices need root";
  with_route([](RouteSocket& route, int here) {
    ASSERT_TRUE(route.add_veth("ga", "gb", here));
    ASSERT_TRUE(route.add_veth("oa", "ob", here));
    auto tap = tap::Device::create("gt");
    ASSERT_TRUE(tap) << tap.status().message();
    ASSERT_TRUE(route.set_group("ga", kGroup));
    ASSERT_TRUE(route.set_group("gt", kGroup));

    Status removed = route.remove_group(kGroup);
    ASSERT_TRUE(removed) << removed.message();
    for (const char* gone : {"ga", "gb", "gt"}) EXPECT_FALSE(route.link(gone)) << gone << " is still there";
    for (const char* kept : {"oa", "ob", "lo"}) EXPECT_TRUE(route.link(kept)) << kept << " went too";

    EXPECT_EQ(route.remove_group(kGroup).value(), ENODEV);
    Status everything = route.remove_group(0);
    EXPECT_FALSE(everything);
    EXPECT_TRUE(route.link("oa"));
  });
}

TEST(RouteSocketIndexTest, DevicesAreMadeAtTheIndexAsked) {
  if (::geteuid() != 0) GTEST_SKIP() << "devices need root";
  with_route([](RouteSocket& route, int here) {
    Status made = route.add_veth("ia", "ib", here, 40);
    ASSERT_TRUE(made) << made.message();
    ASSERT_TRUE(route.link("ia"));
    EXPECT_EQ(route.link("ia")->index, 40);
    EXPECT_NE(route.link("ib")->index, 40);
    auto tap = tap::Device::create("it", 41);
    ASSERT_TRUE(tap) << tap.status().message();
    EXPECT_EQ(route.link("it")->index, 41);

    Status busy = route.add_veth("ja", "jb", here, 41);
    EXPECT_EQ(busy.value(), EBUSY);
    EXPECT_EQ(busy.message(), "ja: interface index 41 is taken");
    auto taken = tap::Device::create("jt", 40);
    ASSERT_FALSE(taken);
    EXPECT_EQ(taken.status().value(), EBUSY);
    EXPECT_EQ(taken.status().message(), "jt: interface index 40 is taken");
    for (const char* never : {"ja", "jb", "jt"}) EXPECT_FALSE(route.link(never)) << never << " was made";
  });
}

std::vector<std::string> cidrs_on(RouteSocket& route, const char* name) {
  auto link = route.link(name);
  if (!link) return {};
  auto addresses = route.addresses(link->index);
  return addresses ? cidrs_of(*addresses) : std::vector<std::string>{};
}

TEST(RouteSocketAddressTest, AnAddressIsKeptOnceAndRemovedByItsAddress) {
  if (::geteuid() != 0) GTEST_SKIP() << "devices need root";
  with_route([](RouteSocket& route, int here) {
    ASSERT_TRUE(route.add_veth("aa", "ab", here));
    using Cidrs = std::vector<std::string>;

    ASSERT_TRUE(route.add_address("aa", AF_INET, "192.0.2.1/24"));
    Status again = route.add_address("aa", AF_INET, "192.0.2.1/24");
    EXPECT_TRUE(again) << again.message();
    EXPECT_EQ(cidrs_on(route, "aa"), Cidrs{"192.0.2.1/24"});
    ASSERT_TRUE(route.add_address("aa", AF_INET, "192.0.2.1/16"));
    EXPECT_EQ(cidrs_on(route, "aa"), Cidrs{"192.0.2.1/16"});
    ASSERT_TRUE(route.add_address("aa", AF_INET, "192.0.2.9"));

    EXPECT_EQ(route.remove_address("aa", AF_INET, "192.0.2.1/24").value(), EADDRNOTAVAIL);
    Status removed = route.remove_address("aa", AF_INET, "192.0.2.1");
    EXPECT_TRUE(removed) << removed.message();
    EXPECT_EQ(cidrs_on(route, "aa"), Cidrs{"192.0.2.9/32"});
    EXPECT_TRUE(route.remove_address("aa", AF_INET, "192.0.2.9/32"));
    Status absent = route.remove_address("aa", AF_INET, "192.0.2.9");
    EXPECT_EQ(absent.value(), EADDRNOTAVAIL);
    EXPECT_EQ(absent.message(), "aa: SIOCDIFADDR: Can't assign requested address");
    EXPECT_EQ(route.remove_address("aa", AF_INET, "not-an-address").value(), EINVAL);
    EXPECT_EQ(route.remove_address("nosuch", AF_INET, "192.0.2.9").value(), ENODEV);
  });
}

}  // namespace
}  // namespace epair::os
