// Module: the base of every layer and model, as in PyTorch's nn.Module.
//
// A module owns parameters (Variables that require gradients), buffers (state that is saved but
// not trained, like BatchNorm's running statistics) and child modules, each under a name; the
// dotted paths ("layer1.0.conv1.weight") match PyTorch's, so checkpoints line up with a
// PyTorch model's state_dict. `flatten()` moves every parameter into one flat value buffer and
// one flat gradient buffer (autograd/flat_parameters.h) for the optimizer and gradient hooks.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/flat_parameters.h"
#include "autograd/variable.h"

namespace qnn {

class Module {
 public:
  virtual ~Module() = default;
  virtual Variable forward(const Variable& x) = 0;
  Variable operator()(const Variable& x) { return forward(x); }

  // Every parameter and buffer of this module and its children, with dotted names, in
  // registration order (depth first), as PyTorch lists them.
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  std::vector<Variable> parameters() const;
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  int64_t num_parameters() const;
  // The direct children, under their names, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves every parameter and buffer of this module and its children to `device` (before
  // flatten(): the flat buffers are made on the parameters' device).
  void to(Device device);
  Device device() const;  // where the parameters are (CPU for a module without any)

  // Gathers all parameters into one flat buffer (once; later calls return the same one).
  FlatParameters& flatten();
  FlatParameters* flat() { return flat_.get(); }

 protected:
  Variable& register_parameter(std::string name, Tensor initial);
  Tensor& register_buffer(std::string name, Tensor initial);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out) const;
  void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out);

  std::deque<std::pair<std::string, Variable>> parameters_;  // deque: references stay valid
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::unique_ptr<FlatParameters> flat_;
};

}  // namespace qnn
