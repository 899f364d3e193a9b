// A program outside the tree that uses an installed libepair and its memif
// client.
#include <cstdio>
#include <epair/epair.hpp>
#include <epair/memif_client.hpp>

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
  epair::memif::ClientOptions options;
  options.socket = "/nonexistent/memif.sock";
  auto client = epair::memif::Client::connect(options);
  if (client || client.status().value() != ENOENT) {
    std::fprintf(stderr, "memif client: %s\n", client ? "connected" : client.status().message().c_str());
    return 1;
  }
  return *name == "epair0a" ? 0 : 1;
}
