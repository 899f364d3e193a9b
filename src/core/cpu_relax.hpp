// The pause a spinning thread makes between two looks at a shared word.
#pragma once

namespace epair {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace epair
