// Module bookkeeping: names, traversal, train/eval and flattening (see nn/module.h).
#include "nn/module.h"

namespace qnn {

Variable& Module::register_parameter(std::string name, Tensor initial) {
  QNN_CHECK(!flat_, "cannot add parameter '", name, "' after flatten()");
  parameters_.emplace_back(std::move(name), Variable(std::move(initial), true));
  return parameters_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor initial) {
  buffers_.emplace_back(std::move(name), std::move(initial));
  return buffers_.back().second;
}

void Module::collect_parameters(const std::string& prefix,
                                std::vector<std::pair<std::string, Variable>>& out) const {
  for (const auto& [name, v] : parameters_) out.emplace_back(prefix + name, v);
  for (const auto& [name, child] : children_) child->collect_parameters(prefix + name + ".", out);
}

void Module::collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [name, t] : buffers_) out.emplace_back(prefix + name, &t);
  for (auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  collect_parameters("", out);
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, v] : named_parameters()) out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect_buffers("", out);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, v] : named_parameters()) n += v.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  QNN_CHECK(!flat_, "move the model with to() before flatten()");
  for (auto& [name, v] : parameters_) v.node().value = v.value().to(device);
  for (auto& [name, t] : buffers_) t = t.to(device);
  for (auto& [name, child] : children_) child->to(device);
}

Device Module::device() const {
  const auto named = named_parameters();
  return named.empty() ? Device::CPU : named.front().second.value().device();
}

FlatParameters& Module::flatten() {
  if (!flat_) flat_ = std::make_unique<FlatParameters>(parameters());
  return *flat_;
}

}  // namespace qnn
