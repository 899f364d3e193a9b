// The boot configuration's reading (rc.conf's words): what each variable
// gives, in the order it applies, and one error naming the line for each
// bad one.
#include "boot_config.hpp"

#include <gtest/gtest.h>

namespace epair::daemon {
namespace {

std::vector<std::string> verbs(const BootSettings& settings) {
  std::vector<std::string> words;
  for (const json& action : settings.actions) words.push_back(action["action"]);
  return words;
}

TEST(BootConfig, ReadsThePairsAndTheirSettingsInTheOrderTheyApply) {
  const BootConfig config = parse_boot_config(R"(# a comment
  cloned_interfaces="epair0 epair1"   # pairs

ifconfig_epair0b_ipv6='inet6 fd00::2/64'
ifconfig_epair0b="vnet web inet 10.4.6.2/24 mtu 9000"
ifconfig_epair0a_alias1="inet 10.4.6.12/24"
ifconfig_epair0a_alias0="inet 10.4.6.11/24"
ifconfig_epair0a=inet\ 10.4.6.1/24
create_args_epair0="mtu 9000"
ifconfig_epair0b_descr="to the web jail"
ifconfig_epair1a="down"
ifconfig_epair1a="inet 10.5.0.1/24 down"
)",
                                              "rc.conf");
  ASSERT_TRUE(config.errors.empty()) << config.errors.front();
  ASSERT_EQ(config.pairs.size(), 2u);
  const BootPair& first = config.pairs[0];
  EXPECT_EQ(first.name, "epair0");
  EXPECT_EQ(first.line, 2);
  std::vector<std::string> order;
  for (const BootSettings& one : first.settings) order.push_back(one.variable);
  EXPECT_EQ(order, (std::vector<std::string>{"create_args_epair0", "ifconfig_epair0a", "ifconfig_epair0a_alias0",
                                             "ifconfig_epair0a_alias1", "ifconfig_epair0b", "ifconfig_epair0b_ipv6",
                                             "ifconfig_epair0b_descr"}));
  EXPECT_EQ(first.settings[0].end, "epair0a");
  EXPECT_EQ(first.settings[0].actions[0]["value"], "9000");
  EXPECT_EQ(first.settings[6].actions[0]["value"], "to the web jail");
  EXPECT_EQ(first.settings[1].actions[0]["value"], "10.4.6.1/24");
  EXPECT_EQ(first.settings[1].line, 8);
  // UP after an end's last settings, as rc's netif brings it up.
  EXPECT_EQ(verbs(first.settings[1]), (std::vector<std::string>{"inet"}));
  EXPECT_EQ(verbs(first.settings[3]), (std::vector<std::string>{"inet", "up"}));
  EXPECT_EQ(verbs(first.settings[5]), (std::vector<std::string>{"inet6"}));
  EXPECT_EQ(verbs(first.settings[6]), (std::vector<std::string>{"description", "up"}));
  // The last assignment wins; one that says down stays down.
  ASSERT_EQ(config.pairs[1].settings.size(), 1u);
  EXPECT_EQ(verbs(config.pairs[1].settings[0]), (std::vector<std::string>{"inet", "down"}));
}

TEST(BootConfig, EachBadLineIsOneErrorNamingIt) {
  const BootConfig config = parse_boot_config(R"(cloned_interfaces="epair0 bridge0 epair epair0"
ifconfig_epair0a="inet 10.0.0.1/24 fly"
ifconfig_epair0b="vnet $JAIL"
ifconfig_epair0b_ipv6="inet6 fd00::2/64
ifconfig_epair5a="up"
ifconfig_em0="DHCP"
hostname="jail"
ifconfig_epair0b_name="jail 0"
create_args_epair0="destroy"
not an assignment
ifconfig_epair0a_alias0=inet 10.0.0.2/24
)",
                                              "/etc/epair/rc.conf");
  const std::vector<std::string> want = {
      "/etc/epair/rc.conf:1: cloned_interfaces: 'bridge0' is not an epair (epairN)",
      "/etc/epair/rc.conf:1: cloned_interfaces: 'epair' needs a unit (epair0), so that ifconfig_ can name its ends",
      "/etc/epair/rc.conf:1: cloned_interfaces: epair0 is named twice",
      "/etc/epair/rc.conf:2: ifconfig_epair0a: unknown setting 'fly'",
      "/etc/epair/rc.conf:3: ifconfig_epair0b: a shell expansion ($, `) is not taken here; write the value itself",
      "/etc/epair/rc.conf:4: ifconfig_epair0b_ipv6: a quote (\") is not closed on its line",
      "/etc/epair/rc.conf:5: ifconfig_epair5a: epair5 is not in cloned_interfaces",
      "/etc/epair/rc.conf:6: ifconfig_em0: not an end of an epair (ifconfig_epairNa, ifconfig_epairNb, or the new "
      "name of one)",
      "/etc/epair/rc.conf:7: hostname: not a variable epair reads (cloned_interfaces, create_args_epairN, "
      "ifconfig_epairN[ab])",
      "/etc/epair/rc.conf:8: ifconfig_epair0b_name: invalid interface name 'jail 0'",
      "/etc/epair/rc.conf:9: create_args_epair0: destroy and name have no place here (ifconfig_epair0a_name "
      "renames)",
      "/etc/epair/rc.conf:10: not an assignment (NAME=value)",
      "/etc/epair/rc.conf:11: ifconfig_epair0a_alias0: more after the value; quote a value with spaces",
  };
  EXPECT_EQ(config.errors, want);
}

// As rc.conf: the end renamed first, then named by its new name, which a
// variable spells with _ for the characters it cannot hold.
TEST(BootConfig, ARenamedEndIsNamedByItsNewName) {
  const BootConfig config = parse_boot_config(R"(cloned_interfaces="epair0"
ifconfig_epair0b_name="web-1"
ifconfig_web_1="inet 10.4.6.2/24"
ifconfig_web_1_ipv6="inet6 fd00::2/64"
ifconfig_epair0a="inet 10.4.6.1/24"
ifconfig_epair0a_name="host0"
)",
                                              "rc.conf");
  ASSERT_TRUE(config.errors.empty()) << config.errors.front();
  std::vector<std::string> order;
  for (const BootSettings& one : config.pairs.at(0).settings) order.push_back(one.variable + " " + one.end);
  EXPECT_EQ(order, (std::vector<std::string>{"ifconfig_epair0a_name epair0a", "ifconfig_epair0a host0",
                                             "ifconfig_epair0b_name epair0b", "ifconfig_web_1 web-1",
                                             "ifconfig_web_1_ipv6 web-1"}));
  EXPECT_EQ(config.pairs[0].settings[0].actions, json::parse(R"([{"action":"name","value":"host0"}])"));
  EXPECT_EQ(verbs(config.pairs[0].settings[4]), (std::vector<std::string>{"inet6", "up"}));
}

TEST(BootConfig, AnEmptyTextNamesNothing) {
  const BootConfig config = parse_boot_config("", "empty");
  EXPECT_TRUE(config.pairs.empty());
  EXPECT_TRUE(config.errors.empty());
}

}  // namespace
}  // namespace epair::daemon
