// Errors of the control path: an errno-valued std::error_code plus the line
// ifconfig would print for it ("interface epair0 already exists").
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace epair {

/// The outcome of a control operation. Success carries no message; an error
/// carries an errno value (std::generic_category) and one line of text in
/// ifconfig's words. Cheap to move; not thread-safe to share while mutated.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(int errno_value, std::string message)
      : code_(errno_value, std::generic_category()), message_(std::move(message)) {}

  bool ok() const { return !code_; }
  explicit operator bool() const { return ok(); }
  const std::error_code& code() const { return code_; }
  /// errno value of the error, 0 on success.
  int value() const { return code_.value(); }
  /// The ifconfig-style line; empty on success.
  const std::string& message() const { return message_; }

 private:
  std::error_code code_;
  std::string message_;
};

/// A value or the Status that explains its absence (std::expected is C++23).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}       // NOLINT(google-explicit-constructor)
  Result(Status error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  /// Precondition: ok().
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error, or an ok Status when a value is held.
  Status status() const { return ok() ? Status{} : std::get<Status>(state_); }

 private:
  std::variant<T, Status> state_;
};

/// ENXIO in ifconfig's words, for a name that no (longer) live interface has.
inline Status no_such_interface(std::string_view name) {
  return {ENXIO, "interface " + std::string(name) + " does not exist"};
}

}  // namespace epair
