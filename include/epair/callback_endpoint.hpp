// The callback endpoint: a C++ function is the network stack behind an end.
#pragma once

#include <functional>
#include <memory>
#include <span>

#include "epair/interface.hpp"

namespace epair {

/// Hands each received burst to a function, on the worker thread. The
/// function owns the frames it is given: it must release() or transmit each.
class CallbackEndpoint final : public Endpoint {
 public:
  using Function = std::function<void(Interface&, std::span<Frame* const>)>;

  explicit CallbackEndpoint(Function function) : function_(std::move(function)) {}

  /// Attaches a new CallbackEndpoint calling function to ifp.
  static std::shared_ptr<CallbackEndpoint> attach_to(Interface& ifp, Function function);

  void input(Interface& ifp, std::span<Frame* const> burst) noexcept override;

 private:
  Function function_;
};

}  // namespace epair
