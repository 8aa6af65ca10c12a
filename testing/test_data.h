// SPDX-License-Identifier: Apache-2.0
// Test data from ../shared (models, vocab, chat templates), found through WEFT_TEST_DATA. A test
// whose data is missing fails loudly naming the file; nothing here is ever committed.
#pragma once

#include <string>

namespace weft::testing {

// The test data root: $WEFT_TEST_DATA, else ../shared from the working directory's repo root.
std::string TestDataDir();
// The absolute path of `relative` under the test data root. When the file is absent it prints what
// is missing and how to provide it, and exits the test binary with status 2 (a loud failure).
std::string RequireTestData(const std::string& relative);
// A fresh empty directory under the system temp dir, removed by the caller (or left for debugging).
std::string MakeTempDir(const std::string& prefix);

}  // namespace weft::testing
