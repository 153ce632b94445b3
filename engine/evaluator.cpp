// CallbackEvaluator: a C++ function as the objective; TrialPruned means PRUNED, any other exception FAILED.
// The callback may also tell the handle itself (then its return value is ignored).
#include "engine/evaluator.hpp"

#include "common/error.hpp"

namespace kestrel::engine {

void CallbackEvaluator::evaluate(TrialHandle& trial, const EvalContext& ctx) {
  std::vector<double> values;
  try {
    values = fn_(trial);
  } catch (const TrialPruned& e) {
    if (!trial.told()) trial.tell_pruned(e.what());
    return;
  } catch (const std::exception& e) {
    if (!trial.told()) trial.tell_failed(e.what());
    return;
  } catch (...) {
    if (!trial.told()) trial.tell_failed("the objective threw a non-standard exception");
    return;
  }
  if (!trial.told()) trial.tell(values);
}

}  // namespace kestrel::engine
