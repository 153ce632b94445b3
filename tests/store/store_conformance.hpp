// The Store conformance suite: behaviour every Store implementation must show (tests in test_store_conformance.cpp).
// An implementation joins by instantiating StoreConformance with its StoreFactory (see test_sqlite_store.cpp).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace kestrel::store::testing {

// How the suite makes stores of one implementation.
struct StoreFactory {
  std::string name;  // test-name suffix, e.g. "Sqlite"
  // Opens the store at `location`, a fresh empty folder the fixture owns for one test; calling it again with the
  // same location must reach the same data (a second process or connection). `clock`, when set, must become the
  // store clock (now()); an implementation that cannot take a clock sets takes_clock = false.
  std::function<std::unique_ptr<Store>(const std::string& location, std::function<double()> clock)> open;
  bool takes_clock = true;
  // Whether a forked child may open the same location (true for a file or a server; false for a private in-memory
  // store, which also cannot be reopened).
  bool shared_between_processes = true;
  // The implementation's own consistency check ("ok" when sound); empty when it has none.
  std::function<std::string(Store&)> integrity_check;
};

inline std::string PrintToString(const StoreFactory& f) { return f.name; }
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

// Fixture: a temporary folder per test, and a manual clock for the stores that take one.
class StoreConformance : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A store at this test's location on the real clock, or on the manual clock (manual_now_).
  std::unique_ptr<Store> open(bool manual_clock = false);
  const std::string& location() const { return dir_; }
  void expect_integrity(Store& s);

  std::shared_ptr<std::atomic<double>> manual_now_ = std::make_shared<std::atomic<double>>(1.0e9);

 private:
  std::string dir_;
};

}  // namespace kestrel::store::testing
