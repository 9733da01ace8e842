// For tests that check what the ops of a forward pass produced: visits the 4-D values of the
// autograd graph that ends at `out`, each node once, leaves (parameters, the input images)
// excepted.
#pragma once
#include <algorithm>
#include <vector>

#include "autograd/variable.h"

namespace qnn::testing {

template <class F>
void for_each_activation(const Variable& out, F f) {
  std::vector<const Node*> todo{out.node_ptr().get()}, seen;
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    if (std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
    seen.push_back(n);
    if (n->inputs.empty()) continue;
    if (n->value.dim() == 4) f(n->value);
    for (const auto& in : n->inputs) todo.push_back(in.get());
  }
}

}  // namespace qnn::testing
