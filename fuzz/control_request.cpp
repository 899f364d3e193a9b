// Fuzzes epaird's request check: any line must give a request or an error,
// and either answer must serialise (it goes back on the socket).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control_protocol.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epair::control;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto request = parse_request(line);
  if (!request) {
    FUZZ_CHECK(request.status().value() != 0 && !request.status().message().empty());
    FUZZ_CHECK(!error_response(request.status()).dump().empty());
    return 0;
  }
  FUZZ_CHECK(!request->op.empty());
  FUZZ_CHECK(request->name.size() <= kMaxNameBytes);
  FUZZ_CHECK(request->actions.size() <= kMaxActions);
  FUZZ_CHECK(!request->changes || !request->name.empty());
  for (const Action& action : request->actions) FUZZ_CHECK(action.value.size() <= kMaxValueBytes);
  if (request->capture) {
    FUZZ_CHECK(!request->capture->interfaces.empty());
    FUZZ_CHECK(request->capture->interfaces.size() <= kMaxCaptureInterfaces);
    FUZZ_CHECK(request->capture->snaplen >= 1 && request->capture->snaplen <= 262144);
    FUZZ_CHECK(request->capture->in || request->capture->out);
  }
  return 0;
}
