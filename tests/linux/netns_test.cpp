// How a `vnet` argument names a namespace.
#include "netns.hpp"

#include <gtest/gtest.h>

namespace epair::os {
namespace {

TEST(ParseNetns, NameIsIpNetnsName) {
  auto spec = parse_netns("ns1");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->name, "ns1");
  EXPECT_EQ(spec->path, netns_dir() + "/ns1");
  EXPECT_EQ(spec->pid, 0);
}

TEST(ParseNetns, NumberIsPid) {
  auto spec = parse_netns("1234");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->name, "pid:1234");
  EXPECT_EQ(spec->path, "/proc/1234/ns/net");
  EXPECT_EQ(spec->pid, 1234);
  EXPECT_EQ(spec_of_vnet("pid:1234").path, "/proc/1234/ns/net");
}

TEST(ParseNetns, RejectsPathsAndEmpty) {
  for (const char* bad : {"", ".", "..", "a/b", "../x", "0"}) {
    auto spec = parse_netns(bad);
    EXPECT_FALSE(spec) << bad;
    if (!spec) EXPECT_EQ(spec.status().value(), EINVAL);
  }
}

}  // namespace
}  // namespace epair::os
