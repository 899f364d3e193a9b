// RouteSocket's device groups, in a network namespace of the test's own:
// removing a group takes its devices and a veth's peer with them in one
// request, and no other device; a group with none is ENODEV, group 0 is
// refused. Needs root; skipped otherwise.
#include "netlink.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "linux/private_netns.hpp"
#include "tap_endpoint.hpp"

namespace epair::os {
namespace {

constexpr std::uint32_t kGroup = 7;

TEST(RouteSocketGroupTest, RemovingAGroupTakesItsDevicesAndTheirVethPeers) {
  if (::geteuid() != 0) GTEST_SKIP() << "devices need root";
  test::in_private_netns([] {
    auto route = RouteSocket::open();
    ASSERT_TRUE(route) << route.status().message();
    UniqueFd here(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(here);
    ASSERT_TRUE(route->add_veth("ga", "gb", here.get()));
    ASSERT_TRUE(route->add_veth("oa", "ob", here.get()));
    auto tap = tap::Device::create("gt");
    ASSERT_TRUE(tap) << tap.status().message();
    ASSERT_TRUE(route->set_group("ga", kGroup));
    ASSERT_TRUE(route->set_group("gt", kGroup));

    Status removed = route->remove_group(kGroup);
    ASSERT_TRUE(removed) << removed.message();
    for (const char* gone : {"ga", "gb", "gt"}) EXPECT_FALSE(route->link(gone)) << gone << " is still there";
    for (const char* kept : {"oa", "ob", "lo"}) EXPECT_TRUE(route->link(kept)) << kept << " went too";

    EXPECT_EQ(route->remove_group(kGroup).value(), ENODEV);
    Status everything = route->remove_group(0);
    EXPECT_FALSE(everything);
    EXPECT_TRUE(route->link("oa"));
  });
}

}  // namespace
}  // namespace epair::os
