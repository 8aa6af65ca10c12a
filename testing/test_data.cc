// SPDX-License-Identifier: Apache-2.0
#include "testing/test_data.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace weft::testing {

std::string TestDataDir() {
  const char* env = std::getenv("WEFT_TEST_DATA");
  if (env != nullptr && env[0] != '\0') return env;
#ifdef WEFT_DEFAULT_TEST_DATA
  return WEFT_DEFAULT_TEST_DATA;
#else
  return "../shared";
#endif
}

std::string RequireTestData(const std::string& relative) {
  std::filesystem::path p = std::filesystem::path(TestDataDir()) / relative;
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) {
    std::fprintf(
        stderr,
        "\n*** MISSING TEST DATA: %s\n*** This test needs ../shared (set WEFT_TEST_DATA to "
        "the directory holding models/, vocab/, chat-templates/). CI has it.\n\n",
        p.string().c_str());
    std::exit(2);
  }
  return std::filesystem::absolute(p).string();
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  char* dir = ::mkdtemp(tmpl.data());
  if (dir == nullptr) {
    std::perror("mkdtemp");
    std::exit(2);
  }
  return dir;
}

}  // namespace weft::testing
