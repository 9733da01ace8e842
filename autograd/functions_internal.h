// Helpers shared by the differentiable functions (autograd/functions_*.cpp); not a public API.
//
// The one rule they encode: two gradient tensors must never share storage. accumulate_grad()
// keeps the tensor it is given when an input has no gradient yet, and a later contribution is
// added into it in place, so handing the same tensor to two inputs would make each see the
// other's contributions. send_grad() gives `g` itself to the first input that keeps it (one with
// no gradient yet) and a copy to any later input that would keep it too.
#pragma once
#include <initializer_list>

#include "autograd/variable.h"

namespace qnn {

inline void check_defined(const char* op, const Variable& v, const char* name) {
  if (!v.defined()) throw Error(str("[", op, "] input '", name, "' is an undefined Variable"));
}

// Adds `g` into the gradient of each listed input of `self` that requires one.
inline void send_grad(Node& self, std::initializer_list<size_t> inputs, Tensor g) {
  bool given = false;
  for (size_t i : inputs) {
    Node& input = *self.inputs[i];
    if (!input.requires_grad) continue;
    const bool keeps = !input.grad.defined();  // otherwise g is only added into its gradient
    accumulate_grad(input, given && keeps ? g.clone() : g);
    given = given || keeps;
  }
}

}  // namespace qnn
