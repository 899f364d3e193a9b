#include "epair/callback_endpoint.hpp"

namespace epair {

std::shared_ptr<CallbackEndpoint> CallbackEndpoint::attach_to(Interface& ifp, Function function) {
  auto endpoint = std::make_shared<CallbackEndpoint>(std::move(function));
  ifp.attach(endpoint);
  return endpoint;
}

void CallbackEndpoint::input(Interface& ifp, std::span<Frame* const> burst) noexcept { function_(ifp, burst); }

}  // namespace epair
