// SPDX-License-Identifier: Apache-2.0
// `weft engine --exit-with-parent PID`: an engine whose parent is SIGKILLed shuts down by itself,
// as the engines of a SIGKILLed `weft control` or `weft agent` must (LocalProvider passes the
// flag). The parent here is a small shell that spawns the engine in the background and waits, as
// those do. Without the flag the engine outlives its parent, which shows the first check can fail.
// The test process makes itself a child subreaper, so the orphaned engine is reparented to it and
// its exit can be waited for (and no engine is left behind).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testing/subprocess.h"
#include "testing/test_data.h"

namespace weft {
namespace {

using Clock = std::chrono::steady_clock;
using weft::testing::Subprocess;

class EngineParentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    model_ = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
    dir_ = weft::testing::MakeTempDir("weft-engine-parent");
  }
  void TearDown() override {
    if (engine_ > 0 && kill(engine_, SIGKILL) == 0) waitpid(engine_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }

  // Starts `sh` that starts `weft engine` in the background (with --exit-with-parent <the shell's
  // pid> when `flag`) and waits for it; returns once the engine answers /health.
  void StartShellWithEngine(bool flag) {
    const uint16_t port = weft::testing::FreeLoopbackPort();
    const std::string pid_file = dir_ + "/engine.pid";
    const std::string script = absl::StrCat(
        WEFT_BINARY, " engine --model ", model_, " --port ", port, " --threads 1 --drain-seconds 2",
        flag ? " --exit-with-parent $$" : "", " & echo $! > ", pid_file, "; wait");
    auto shell = Subprocess::Start({"/bin/sh", "-c", script}, dir_ + "/log.txt");
    ASSERT_TRUE(shell.ok()) << shell.status();
    shell_.emplace(*std::move(shell));
    absl::Status up = weft::testing::WaitForHttp200(port, "/health", 10);
    ASSERT_TRUE(up.ok()) << up << "\n" << Log();
    std::ifstream(pid_file) >> engine_;
    ASSERT_GT(engine_, 0);
    ASSERT_EQ(kill(engine_, 0), 0);
  }

  // SIGKILLs the shell (reaping it): the engine is orphaned and reparented to this process.
  void KillShell() {
    ASSERT_TRUE(shell_->Signal(SIGKILL));
    ASSERT_TRUE(shell_->Wait(5).has_value());
  }

  // The engine's wait status once it exits within timeout_s, else nullopt.
  std::optional<int> WaitEngine(double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    do {
      int status = 0;
      if (waitpid(engine_, &status, WNOHANG) == engine_) {
        engine_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (Clock::now() < deadline);
    return std::nullopt;
  }

  std::string Log() const {
    std::ifstream in(dir_ + "/log.txt");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string model_;
  std::string dir_;
  std::optional<Subprocess> shell_;
  pid_t engine_ = -1;
};

TEST_F(EngineParentTest, EngineExitsWhenItsParentIsKilled) {
  ASSERT_NO_FATAL_FAILURE(StartShellWithEngine(/*flag=*/true));
  const auto killed = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillShell());
  const std::optional<int> status = WaitEngine(5);
  ASSERT_TRUE(status.has_value()) << "the engine outlived its parent by 5 s\n" << Log();
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("engine exited %.2f s after its parent was SIGKILLed\n", took);
  // Its own SIGTERM path: drained (nothing running) and exited cleanly.
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status << "\n" << Log();
  EXPECT_NE(Log().find("parent process"), std::string::npos) << Log();
}

TEST_F(EngineParentTest, WithoutTheFlagTheEngineOutlivesItsParent) {
  ASSERT_NO_FATAL_FAILURE(StartShellWithEngine(/*flag=*/false));
  ASSERT_NO_FATAL_FAILURE(KillShell());
  EXPECT_FALSE(WaitEngine(1.5).has_value()) << Log();  // TearDown kills it
}

TEST_F(EngineParentTest, RefusesAParentThatIsNotItsParent) {
  // Pid 1 is never this test's child's parent: as if the parent had died before the engine
  // started watching. The engine must not start unwatched.
  auto engine = Subprocess::Start(
      {WEFT_BINARY, "engine", "--model", model_, "--port", "0", "--exit-with-parent", "1"},
      dir_ + "/log.txt");
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::optional<int> status = engine->Wait(5);
  ASSERT_TRUE(status.has_value()) << Log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << *status;
  EXPECT_NE(Log().find("--exit-with-parent 1: not this process's parent"), std::string::npos)
      << Log();
}

}  // namespace
}  // namespace weft
