// FlatParameters: all of a model's parameters in one buffer, all their gradients in another.
//
// Each parameter Variable becomes a view (a window) into the flat value buffer, and its gradient
// a view into the flat gradient buffer, in registration order with no padding: the same layout
// as flattening every gradient and concatenating them. The optimizer then updates the whole
// model in one pass, and a gradient quantizer sees one vector whose buckets may span layers
// exactly as the reference experiments' network-wide flattening does. Hooks registered here run
// on the whole gradient once per backward, after every parameter's gradient is complete (a grad
// fold, where set, first completes it).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace qnn {

class FlatParameters {
 public:
  // Copies each leaf's current value into the flat buffer and rebinds the leaf to views.
  // The leaves must not be in another flat buffer; their gradients start at zero.
  explicit FlatParameters(std::vector<Variable> leaves);
  FlatParameters(const FlatParameters&) = delete;
  FlatParameters& operator=(const FlatParameters&) = delete;
  ~FlatParameters();

  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  const std::vector<Variable>& leaves() const { return leaves_; }
  int64_t offset(size_t leaf) const { return offsets_[leaf]; }
  int64_t numel() const { return values_.numel(); }

  void zero_grad() { grads_.zero(); }
  void add_grad_hook(std::function<void(Tensor& flat_grad)> hook) { hooks_.push_back(std::move(hook)); }
  void clear_grad_hooks() { hooks_.clear(); }
  void run_grad_hooks();  // called by backward(); exposed for tests and manual training loops

  // While set, backward() runs `fold` on the flat gradient before any hook: for a step whose
  // convolutions write their weights' gradients elsewhere (autograd/conv_weight_forms.h).
  void set_grad_fold(std::function<void(Tensor& flat_grad)> fold) { fold_ = std::move(fold); }
  void fold_grads() {  // called by backward()
    if (fold_) fold_(grads_);
  }

 private:
  std::vector<Variable> leaves_;
  std::vector<int64_t> offsets_;
  Tensor values_, grads_;
  std::vector<std::function<void(Tensor&)>> hooks_;
  std::function<void(Tensor&)> fold_;
};

}  // namespace qnn
