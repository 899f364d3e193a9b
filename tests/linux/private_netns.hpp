// Runs a test's body in a network namespace of its own, on a thread of its
// own: the devices it makes vanish with the namespace.
#pragma once

#include <gtest/gtest.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

namespace epair::test {

inline void in_private_netns(const std::function<void()>& body) {
  int error = 0;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      error = errno;
      return;
    }
    body();
  }).join();
  ASSERT_EQ(error, 0) << "unshare(CLONE_NEWNET): " << std::strerror(error);
}

}  // namespace epair::test
