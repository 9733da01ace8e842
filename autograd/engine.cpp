// The backward pass (see autograd/variable.h): order the graph, run each closure once in reverse
// topological order, free what is no longer needed as soon as possible, then complete the flat
// buffers' gradients (their grad folds) and run gradient hooks.
#include <algorithm>
#include <unordered_set>

#include "autograd/flat_parameters.h"
#include "autograd/variable.h"
#include "tensor/elementwise.h"

namespace qnn {

namespace {
thread_local bool g_grad_enabled = true;

// Nodes reachable from root that need a gradient, every node after all of its consumers
// (reverse post-order of an iterative depth-first search). The order holds a reference to each
// node: backward() clears every node's inputs as it goes, and an intermediate result that only
// its consumer referenced (a temporary in `sum(relu(x))`) must live until its own turn.
std::vector<std::shared_ptr<Node>> reverse_topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  seen.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      std::shared_ptr<Node> child = node->inputs[next++];
      if (child->requires_grad && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      post.push_back(std::move(node));
      stack.pop_back();
    }
  }
  return std::vector<std::shared_ptr<Node>>(post.rbegin(), post.rend());
}
}  // namespace

Variable::Variable(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Variable make_op_result(const char* op, Tensor value, const std::vector<Variable>& inputs,
                        std::function<void(Node&)> backward) {
  Variable out(std::move(value));
  out.node_->op = op;
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Variable& v : inputs) any = any || v.requires_grad();
  if (!any) return out;
  out.node_->requires_grad = true;
  for (const Variable& v : inputs) out.node_->inputs.push_back(v.node_ptr());
  out.node_->backward = std::move(backward);
  return out;
}

Tensor& grad_slot(Node& input) {
  if (!input.grad.defined()) {
    input.grad = Tensor::empty_like(input.value);
    input.grad.zero();
  }
  return input.grad;
}

void accumulate_grad(Node& input, Tensor g) {
  QNN_CHECK(g.numel() == input.value.numel(), "gradient of ", shape_str(g.shape()), " for a value of ",
            shape_str(input.value.shape()), " (op ", input.op, ")");
  QNN_CHECK(g.format() == input.value.format(), "gradient of ", shape_str(g.shape()),
            g.is_channels_last() ? " channels-last" : " contiguous", " for a value in the other memory format (op ",
            input.op, ")");
  QNN_CHECK(g.dtype() == input.value.dtype(), "a ", dtype_name(g.dtype()), " gradient of ", shape_str(g.shape()),
            " for a ", dtype_name(input.value.dtype()), " value (op ", input.op, ")");
  QNN_CHECK(g.device() == input.value.device(), "a ", device_name(g.device()), " gradient of ", shape_str(g.shape()),
            " for a ", device_name(input.value.device()), " value (op ", input.op, ")");
  if (!input.grad.defined()) {
    input.grad = g.shape() == input.value.shape() ? g : g.view(input.value.shape());
    return;
  }
  add_into(input.grad, g);
}

void Variable::backward() const {
  QNN_CHECK(numel() == 1, "backward() without a seed needs a one-element output, got ",
            shape_str(shape()), "; pass the seed gradient");
  backward(Tensor::full(shape(), 1.0f, value().device()));
}

void Variable::backward(const Tensor& seed) const {
  QNN_CHECK(requires_grad(), "output of op '", op(), "' does not require a gradient");
  QNN_CHECK(seed.numel() == numel(), "seed of shape ", shape_str(seed.shape()), " for output ",
            shape_str(shape()));
  std::vector<std::shared_ptr<Node>> order = reverse_topological_order(node_);
  accumulate_grad(*node_, seed.clone());
  std::vector<std::shared_ptr<Node>> leaves;
  for (std::shared_ptr<Node>& node : order) {
    if (!node->backward) {
      if (node->inputs.empty()) leaves.push_back(std::move(node));
      continue;
    }
    if (node->grad.defined()) node->backward(*node);
    node->backward = nullptr;  // frees the closure and the tensors it saved
    node->inputs.clear();
    node->grad = Tensor();
    node.reset();  // an intermediate nobody else holds (its value included) is freed here
  }
  std::vector<FlatParameters*> buffers;
  for (const std::shared_ptr<Node>& leaf : leaves)
    if (leaf->flat && std::find(buffers.begin(), buffers.end(), leaf->flat) == buffers.end())
      buffers.push_back(leaf->flat);
  for (FlatParameters* flat : buffers) flat->fold_grads();
  for (const std::shared_ptr<Node>& leaf : leaves)
    if (leaf->grad.defined())
      for (auto& hook : leaf->hooks) hook(leaf->grad);
  for (FlatParameters* flat : buffers) flat->run_grad_hooks();
}

void Variable::register_hook(std::function<void(Tensor&)> hook) const {
  QNN_CHECK(is_leaf(), "hooks go on leaves (parameters), not on the output of '", op(), "'");
  node_->hooks.push_back(std::move(hook));
}

FlatParameters::FlatParameters(std::vector<Variable> leaves) : leaves_(std::move(leaves)) {
  int64_t total = 0;
  for (const Variable& v : leaves_) {
    QNN_CHECK(v.is_leaf() && v.node().flat == nullptr, "a parameter can join one flat buffer only");
    offsets_.push_back(total);
    total += v.numel();
  }
  const Device device = leaves_.empty() ? Device::CPU : leaves_.front().value().device();
  for (const Variable& v : leaves_)
    QNN_CHECK(v.value().device() == device, "all parameters must be on one device: found ",
              device_name(device), " and ", device_name(v.value().device()));
  values_ = Tensor({total}, device);
  grads_ = Tensor::zeros({total}, device);
  for (size_t i = 0; i < leaves_.size(); ++i) {
    Node& node = leaves_[i].node();
    Tensor view = values_.slice(offsets_[i], node.value.shape());
    view.copy_from(node.value);
    node.value = view;
    node.grad = grads_.slice(offsets_[i], node.value.shape());
    node.flat = this;
  }
}

FlatParameters::~FlatParameters() {
  for (Variable& v : leaves_) v.node().flat = nullptr;
}

void FlatParameters::run_grad_hooks() {
  for (auto& hook : hooks_) hook(grads_);
}

}  // namespace qnn
