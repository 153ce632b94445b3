// The one error hierarchy of Kestrel: every typed exception a caller may catch.
// Header-only; every folder may include it (it depends on nothing but std).
#pragma once

#include <stdexcept>
#include <string>

namespace kestrel {

// Base of every error Kestrel throws on purpose. Messages are written for the user.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A sweep file, search space or option is invalid; nothing has run.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// The store refused or failed a read or write (the database is unchanged).
class StoreError : public Error {
 public:
  using Error::Error;
};

// A write to a trial that already finished (finished trials are immutable).
class TrialFinishedError : public StoreError {
 public:
  using StoreError::StoreError;
};

// Thrown inside an objective to say "this trial was pruned".
class TrialPruned : public Error {
 public:
  explicit TrialPruned(const std::string& what = "pruned") : Error(what) {}
};

// A data file is missing, truncated or corrupt.
class DataError : public Error {
 public:
  using Error::Error;
};

// A trainer run failed (NaN loss, bad model description, shape mismatch).
class TrainError : public Error {
 public:
  using Error::Error;
};

// An evaluator could not run a trial (command missing, bad output, timeout).
class EvalError : public Error {
 public:
  using Error::Error;
};

}  // namespace kestrel
