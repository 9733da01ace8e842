// Variable: a Tensor that remembers how it was computed, so gradients can flow back.
//
// The whole reverse-mode idea (micrograd's, for tensors): every op that takes Variables records
// a Node holding its output value, its inputs and a backward closure that turns the output's
// gradient into contributions to the inputs' gradients. `backward()` visits the nodes in reverse
// topological order, calling each closure once, then frees the graph (closures and their saved
// tensors) as PyTorch does without retain_graph. Leaves (parameters, inputs) accumulate their
// gradients across backward calls until zeroed. Hooks run on a leaf's finished gradient; a leaf
// whose gradient lives in a flat buffer (autograd/flat_parameters.h) also triggers that
// buffer's hooks once per backward: that is where gradient quantizers plug in.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace qnn {

class FlatParameters;

struct Node {
  Tensor value;
  Tensor grad;  // undefined until a gradient flows in (always defined for flat-buffer leaves)
  bool requires_grad = false;
  const char* op = "leaf";
  std::vector<std::shared_ptr<Node>> inputs;
  std::function<void(Node& self)> backward;  // reads self.grad, adds into self.inputs[i]->grad
  std::vector<std::function<void(Tensor& grad)>> hooks;
  FlatParameters* flat = nullptr;  // the flat buffer this leaf's value and grad are views of
};

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false);

  bool defined() const { return node_ != nullptr; }
  Tensor& value() const { return node_->value; }
  Tensor& grad() const { return node_->grad; }
  const Shape& shape() const { return node_->value.shape(); }
  int64_t size(int d) const { return node_->value.size(d); }
  int64_t numel() const { return node_->value.numel(); }
  int dim() const { return node_->value.dim(); }
  bool requires_grad() const { return node_->requires_grad; }
  bool is_leaf() const { return !node_->backward && node_->inputs.empty(); }
  const char* op() const { return node_->op; }

  // Backpropagates from this variable: a one-element loss gets the seed 1, otherwise pass the
  // gradient of some scalar with respect to this variable.
  void backward() const;
  void backward(const Tensor& seed) const;
  // Calls `hook(grad)` on this leaf's finished gradient after every backward; it may modify it.
  void register_hook(std::function<void(Tensor& grad)> hook) const;

  Node& node() const { return *node_; }
  const std::shared_ptr<Node>& node_ptr() const { return node_; }

 private:
  friend Variable make_op_result(const char*, Tensor, const std::vector<Variable>&,
                                 std::function<void(Node&)>);
  std::shared_ptr<Node> node_;
};

// While a NoGradGuard lives, ops record no graph (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
bool grad_enabled();

// For op implementers: wraps an op's output. When gradients are enabled and some input needs
// one, the result records the inputs and the backward closure; otherwise it is a plain leaf.
Variable make_op_result(const char* op, Tensor value, const std::vector<Variable>& inputs,
                        std::function<void(Node& self)> backward);

// For op implementers: the gradient tensor of `input`, allocated and zeroed on first use, for a
// backward closure to add its contribution into.
Tensor& grad_slot(Node& input);
// For op implementers: adds `g` into input's gradient; takes `g` itself when there is none yet.
void accumulate_grad(Node& input, Tensor g);

}  // namespace qnn
