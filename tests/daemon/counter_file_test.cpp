// The counter file (src/daemon/counter_file.hpp): blocks that outlive the
// mapping, sparse, and the errors of a bad path or a full disk.
#include "counter_file.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "epair/engine.hpp"

namespace epair::daemon {
namespace {

class CounterFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/epair-counters.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    ::umount2(dir_.c_str(), MNT_DETACH);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(CounterFileTest, CountsOutliveTheMappingAndStayWithTheirUnit) {
  const auto path = dir_ / "counters";
  {
    auto file = CounterFile::open(path);
    ASSERT_TRUE(file) << file.status().message();
    auto pair = file->pair(7);
    ASSERT_TRUE(pair) << pair.status().message();
    add_to(pair->a->tx.opackets, 5);
    add_to(pair->b->enqueued.ipackets, 5);
  }
  auto file = CounterFile::open(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(read_counter(file->pair(7)->a->tx.opackets), 5u);
  EXPECT_EQ(read_counter(file->pair(7)->b->enqueued.ipackets), 5u);
  EXPECT_EQ(read_counter(file->pair(6)->b->enqueued.ipackets), 0u);
  EXPECT_EQ(read_counter(file->pair(8)->a->tx.opackets), 0u);

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), (kMaxUnit + 1) * 2 * sizeof(CounterBlock));
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the file should be sparse";
}

TEST_F(CounterFileTest, ABlockKeepsTheMappingAfterTheFileGoes) {
  std::shared_ptr<CounterBlock> block;
  {
    auto file = CounterFile::open(dir_ / "counters");
    ASSERT_TRUE(file);
    block = file->pair(kMaxUnit)->b;
  }
  add_to(block->rx.ibytes, 64);
  EXPECT_EQ(read_counter(block->rx.ibytes), 64u);
}

TEST_F(CounterFileTest, APathThatIsADirectoryIsRefused) {
  std::filesystem::create_directory(dir_ / "counters");
  auto file = CounterFile::open(dir_ / "counters");
  ASSERT_FALSE(file);
  EXPECT_EQ(file.status().value(), EISDIR);
  EXPECT_EQ(file.status().message(), (dir_ / "counters").string() + ": open: Is a directory");
}

TEST_F(CounterFileTest, AUnitOutOfRangeHasNoCounters) {
  auto file = CounterFile::open(dir_ / "counters");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->pair(-1).status().value(), EINVAL);
  EXPECT_EQ(file->pair(kMaxUnit + 1).status().message(), "no counters for unit 32768");
}

// A pair's blocks take their room before they are handed out: on a full
// disk the pair is refused them, and nothing writes into a hole.
TEST_F(CounterFileTest, AFullDiskRefusesRoomInsteadOfKillingTheWriter) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  ASSERT_EQ(::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=16k"), 0) << std::strerror(errno);
  auto file = CounterFile::open(dir_ / "counters");
  ASSERT_TRUE(file) << file.status().message();
  Status refused;
  int unit = 0;
  // 4 KiB pages, 384 bytes a pair: a pair 11 units on lies on a page of its own.
  for (; unit <= kMaxUnit; unit += 11) {
    auto pair = file->pair(unit);
    if (!pair) {
      refused = pair.status();
      break;
    }
    add_to(pair->a->tx.opackets, 1);
  }
  EXPECT_EQ(refused.value(), ENOSPC);
  EXPECT_EQ(refused.message(), "counters of epair" + std::to_string(unit) + ": No space left on device");
}

}  // namespace
}  // namespace epair::daemon
