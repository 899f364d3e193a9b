// A program outside the tree that uses an installed libepair.
#include <cstdio>
#include <epair/epair.hpp>

int main() {
  epair::EngineConfig config;
  config.workers = 1;
  config.pool.frames = 64;
  epair::Engine engine(config);
  auto name = engine.create("epair");
  if (!name) {
    std::fprintf(stderr, "%s\n", name.status().message().c_str());
    return 1;
  }
  std::printf("%s\n", name->c_str());
  return *name == "epair0a" ? 0 : 1;
}
