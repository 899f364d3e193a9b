// parse_request(): what epaird refuses before anything acts on a request.
#include <gtest/gtest.h>

#include <string>

#include "control_protocol.hpp"

namespace epair::control {
namespace {

struct Refused {
  std::string line;
  int error;
  std::string message;
};

TEST(ParseRequest, RefusesWhatIsNotTheProtocol) {
  const std::string long_name(256, 'x');
  const std::string long_value(256, 'd');
  std::string many_actions = R"({"op":"configure","name":"epair0a","actions":[)";
  for (int i = 0; i < 65; ++i) many_actions += std::string(i == 0 ? "" : ",") + R"({"action":"up"})";
  many_actions += "]}";
  for (const Refused& c : std::initializer_list<Refused>{
           {"", EPROTO, "request is not valid JSON"},
           {"{", EPROTO, "request is not valid JSON"},
           {"{\"op\":\"list\"} x", EPROTO, "request is not valid JSON"},
           {"[1]", EPROTO, "request must be a JSON object"},
           {"\"list\"", EPROTO, "request must be a JSON object"},
           {R"({"v":2,"op":"list"})", EPROTO, "unsupported protocol version (epaird speaks 1)"},
           {R"({"v":"1","op":"list"})", EPROTO, "unsupported protocol version (epaird speaks 1)"},
           {R"({"v":1.5,"op":"list"})", EPROTO, "unsupported protocol version (epaird speaks 1)"},
           {R"({"v":1})", EPROTO, "request needs an \"op\" string"},
           {R"({"op":7})", EPROTO, "request needs an \"op\" string"},
           {R"({"op":"reboot"})", EPROTO, "unknown op 'reboot'"},
           {"{\"op\":\"a\\u0001b\"}", EPROTO, "unknown op 'a\\x01b'"},
           {R"({"op":"list","name":"epair0a"})", EPROTO, "unknown field 'name' for op list"},
           {R"({"op":"show","nmae":"epair0a"})", EPROTO, "unknown field 'nmae' for op show"},
           {R"({"op":"destroy","name":"epair0a","actions":[]})", EPROTO, "unknown field 'actions' for op destroy"},
           {R"({"op":"show","name":7})", EPROTO, "\"name\" must be a string"},
           {R"({"op":"create"})", EPROTO, "op create needs a \"name\""},
           {R"({"op":"destroy","name":""})", EPROTO, "op destroy needs a \"name\""},
           {R"({"op":"show","name":")" + long_name + "\"}", ENAMETOOLONG,
            "interface name too long: '" + std::string(64, 'x') + "...'"},
           {R"({"op":"show","name":"epair0123456789a"})", ENAMETOOLONG, "interface name too long: 'epair0123456789a'"},
           {R"({"op":"show","name":""})", EINVAL, "invalid interface name ''"},
           {R"({"op":"destroy","name":"../../etc"})", EINVAL, "invalid interface name '../../etc'"},
           {R"({"op":"destroy","name":".."})", EINVAL, "invalid interface name '..'"},
           {R"({"op":"show","name":"epair0a:1"})", EINVAL, "invalid interface name 'epair0a:1'"},
           {R"({"op":"show","name":"epair 0a"})", EINVAL, "invalid interface name 'epair 0a'"},
           {"{\"op\":\"configure\",\"name\":\"epair0a\\n\",\"actions\":[]}", EINVAL,
            "invalid interface name 'epair0a\\x0a'"},
           {"{\"op\":\"create\",\"name\":\"ep\\u001b[2J\"}", EINVAL, "invalid interface name 'ep\\x1b[2J'"},
           {R"({"op":"capture","interfaces":["epair0a","a/b"]})", EINVAL, "invalid interface name 'a/b'"},
           {"{\"op\":\"configure\",\"name\":\"epair0a\",\"actions\":[{\"action\":\"description\",\"value\":\"a\\nb\"}]"
            "}",
            EINVAL, "value of description has a control character: 'a\\x0ab'"},
           {"{\"op\":\"configure\",\"name\":\"epair0a\",\"actions\":[{\"action\":\"vnet\",\"value\":\"ns\\u0000\"}]}",
            EINVAL, "value of vnet has a control character: 'ns\\x00'"},
           {R"({"op":"configure","name":"epair0a","actions":{}})", EINVAL, "\"actions\" must be an array"},
           {many_actions, E2BIG, "more than 64 actions"},
           {R"({"op":"configure","name":"epair0a","actions":[{"action":"up","value":1}]})", EINVAL,
            "action up takes no value"},
           {R"({"op":"configure","name":"epair0a","actions":[{"action":"mtu","value":9000,"x":1}]})", EPROTO,
            "unknown field 'x' in an action"},
           {R"({"op":"configure","name":"epair0a","actions":[{"action":"description","value":")" + long_value + "\"}]}",
            ENAMETOOLONG, "value of description longer than 255 bytes"},
           {R"({"op":"capture","interfaces":[""]})", EPROTO, "capture: each interface must be a name"},
           {R"({"op":"capture","interfaces":["epair0a"],"filter":")" + std::string(4097, 'x') + "\"}", E2BIG,
            "capture: filter longer than 4096 bytes"},
           {R"({"op":"capture","interfaces":["epair0a"],"count":-1})", EINVAL,
            "capture: count must be from 0 to 18446744073709551615"},
           {std::string(kMaxRequestBytes + 1, ' '), E2BIG, "request longer than 1 MiB"},
       }) {
    auto parsed = parse_request(c.line);
    ASSERT_FALSE(parsed) << c.line.substr(0, 200);
    EXPECT_EQ(parsed.status().value(), c.error) << c.line.substr(0, 200);
    EXPECT_EQ(parsed.status().message(), c.message) << c.line.substr(0, 200);
  }
}

TEST(ParseRequest, ChecksAnImpairmentWholeBeforeAnyAction) {
  auto good =
      parse_request(R"({"op":"configure","name":"epair0a","actions":[{"action":"mtu","value":"1400"},)"
                    R"({"action":"impair","value":"delay 20ms loss 1%"},{"action":"impair","value":"clear"}]})");
  ASSERT_TRUE(good) << good.status().message();
  EXPECT_EQ(good->actions[1].value, "delay 20ms loss 1%");
  auto bad = parse_request(R"({"op":"configure","name":"epair0a","actions":[{"action":"mtu","value":"1400"},)"
                           R"({"action":"impair","value":"loss 101%"}]})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().value(), EINVAL);
  EXPECT_EQ(bad.status().message(), "impair: loss 101% is over 100%");
  auto empty = parse_request(R"({"op":"configure","name":"epair0a","actions":[{"action":"impair","value":""}]})");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.status().message(), "impair: needs settings (rate, delay, loss...) or 'clear'");
  auto missing = parse_request(R"({"op":"configure","name":"epair0a","actions":[{"action":"impair"}]})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().message(), "action impair needs a value");
}

TEST(ParseRequest, AcceptsEveryOp) {
  auto create = parse_request(
      R"({"v":1,"op":"create","name":"epair","actions":[{"action":"mtu","value":"9000"},{"action":"up"}]})");
  ASSERT_TRUE(create);
  EXPECT_TRUE(create->changes);
  EXPECT_EQ(create->name, "epair");
  ASSERT_EQ(create->actions.size(), 2u);
  EXPECT_EQ(create->actions[0].value, "9000");

  auto show = parse_request(R"({"op":"show"})");
  ASSERT_TRUE(show);
  EXPECT_FALSE(show->changes);
  EXPECT_TRUE(show->name.empty());

  auto capture =
      parse_request(R"({"op":"capture","interfaces":["epair0a","epair0b"],"direction":"in","snaplen":96,"count":5,)"
                    R"("buffer_kib":64,"filter":"icmp"})");
  ASSERT_TRUE(capture);
  ASSERT_TRUE(capture->capture);
  EXPECT_EQ(capture->capture->interfaces.size(), 2u);
  EXPECT_TRUE(capture->capture->in);
  EXPECT_FALSE(capture->capture->out);
  EXPECT_EQ(capture->capture->snaplen, 96u);
  EXPECT_EQ(capture->capture->count, 5u);
  EXPECT_EQ(capture->capture->buffer_kib, 64u);
  EXPECT_EQ(capture->capture->filter, "icmp");

  for (const char* op : {"version", "cloners", "list", "destroy"}) {
    const std::string line =
        std::string(R"({"op":")") + op + "\"" + (op == std::string("destroy") ? R"(,"name":"x")" : "") + "}";
    EXPECT_TRUE(parse_request(line)) << line;
  }
}

TEST(ParseActions, ValuesAndVerbs) {
  auto actions = parse_actions(json::parse(R"([{"action":"up"},{"action":"mtu","value":9000},
      {"action":"vnet","value":"ns1"},{"action":"description","value":""}])"));
  ASSERT_TRUE(actions);
  ASSERT_EQ(actions->size(), 4u);
  EXPECT_EQ((*actions)[1].value, "9000");
  EXPECT_EQ((*actions)[2].verb, "vnet");
}

// An MTU's range is the data path's, said by epaird: a negative number
// reaches it as one.
TEST(ParseActions, AddressRemovalGroupsCapabilitiesAndSignedNumbers) {
  auto actions = parse_actions(json::parse(R"([{"action":"-inet","value":"10.0.0.1"},
      {"action":"-inet6","value":"fd00::1/64"},{"action":"group","value":"jails"},{"action":"-group","value":"jails"},
      {"action":"-txcsum"},{"action":"txcsum6"},{"action":"-rxcsum"},{"action":"mtu","value":-5}])"));
  ASSERT_TRUE(actions) << actions.status().message();
  ASSERT_EQ(actions->size(), 8u);
  EXPECT_EQ((*actions)[0].verb, "-inet");
  EXPECT_EQ((*actions)[3].value, "jails");
  EXPECT_EQ((*actions)[7].value, "-5");
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"-txcsum","value":"1"}])")));
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"group"}])")));
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"mtu","value":1.5}])")));
}

TEST(ParseActions, ANewNameIsCheckedAsAnyInterfaceName) {
  auto renamed = parse_actions(json::parse(R"([{"action":"name","value":"jail0"},{"action":"up"}])"));
  ASSERT_TRUE(renamed);
  EXPECT_EQ((*renamed)[0].value, "jail0");
  EXPECT_EQ(parse_actions(json::parse(R"([{"action":"name","value":"a/b"}])")).status().value(), EINVAL);
  EXPECT_EQ(parse_actions(json::parse(R"([{"action":"name","value":"sixteen-bytes-xx"}])")).status().value(),
            ENAMETOOLONG);
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"name"}])")));
}

TEST(ParseRequest, ListTakesAGroup) {
  auto list = parse_request(R"({"op":"list","group":"jails"})");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->group, "jails");
  EXPECT_EQ(parse_request(R"({"op":"list","group":7})").status().value(), EPROTO);
  EXPECT_EQ(parse_request(R"({"op":"show","group":"jails"})").status().value(), EPROTO);
}

TEST(ParseActions, Errors) {
  EXPECT_FALSE(parse_actions(json::parse(R"({"action":"up"})")));
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"fly"}])")));
  EXPECT_FALSE(parse_actions(json::parse(R"([{"action":"mtu"}])")));
  EXPECT_FALSE(parse_actions(json::parse(R"([7])")));
  EXPECT_TRUE(parse_actions(json()));
}

}  // namespace
}  // namespace epair::control
