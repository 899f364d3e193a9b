#include "bpf.hpp"

#include <pcap/pcap.h>

#include <string>

namespace epair::pcap {

namespace {

class BpfFilter final : public CaptureFilter {
 public:
  explicit BpfFilter(bpf_program program) : program_(program) {}
  ~BpfFilter() override { pcap_freecode(&program_); }
  BpfFilter(const BpfFilter&) = delete;
  BpfFilter& operator=(const BpfFilter&) = delete;

  bool match(std::span<const std::uint8_t> data, std::uint32_t wire_length) const noexcept override {
    return bpf_filter(program_.bf_insns, data.data(), wire_length, static_cast<u_int>(data.size())) != 0;
  }

 private:
  bpf_program program_;
};

}  // namespace

Result<std::shared_ptr<const CaptureFilter>> compile_filter(std::string_view expression, std::uint32_t snaplen) {
  if (expression.find_first_not_of(" \t") == std::string_view::npos) return std::shared_ptr<const CaptureFilter>();
  std::unique_ptr<pcap_t, decltype(&pcap_close)> dead(pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen)),
                                                      &pcap_close);
  if (!dead) return Status{ENOMEM, "cannot open a libpcap handle"};
  bpf_program program{};
  const std::string text(expression);
  if (pcap_compile(dead.get(), &program, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return Status{EINVAL, std::string("bad filter: ") + pcap_geterr(dead.get())};
  }
  return std::shared_ptr<const CaptureFilter>(std::make_shared<BpfFilter>(program));
}

}  // namespace epair::pcap
