// SGD step, one fused pass over the flat buffers (formulas in optim/sgd.h and, element by
// element, optim/sgd_update.h); CUDA buffers go to the kernel in optim/sgd.cu.
#include "optim/sgd.h"

#include "tensor/device.h"

namespace qnn {

namespace {

// Whether this build's CPU code has fused multiply-add (then g++ would contract the formulas
// into it anyway, and sgd_update.h writes the contractions out).
#ifdef __FP_FAST_FMAF
constexpr bool kCpuFma = true;
#else
constexpr bool kCpuFma = false;
#endif

}  // namespace

SGD::SGD(FlatParameters& parameters, SGDOptions options)
    : parameters_(parameters), options_(options) {
  QNN_CHECK(options.lr >= 0, "learning rate must be >= 0, got ", options.lr);
  QNN_CHECK(options.momentum >= 0, "momentum must be >= 0, got ", options.momentum);
  QNN_CHECK(options.weight_decay >= 0, "weight decay must be >= 0, got ", options.weight_decay);
  QNN_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
            "nesterov needs momentum > 0 and dampening 0 (as in PyTorch)");
  const Device device = parameters.values().device();
  lr_ = Tensor::full({1}, options.lr, device);
  if (options.momentum > 0) momentum_buffer_ = Tensor::zeros({parameters.numel()}, device);
}

void SGD::set_lr(float lr) {
  options_.lr = lr;
  lr_.fill(lr);
}

SGDCoefficients sgd_coefficients(const SGDOptions& options, bool first) {
  SGDCoefficients c;
  c.weight_decay = options.weight_decay;
  c.momentum = options.momentum;
  c.keep = 1.0f - options.dampening;
  c.nesterov = options.nesterov;
  c.first = first;
  return c;
}

void SGD::step() {
  sgd_update(parameters_.values(), parameters_.grads(), momentum_buffer_, lr_, sgd_coefficients(options_, steps_ == 0));
  ++steps_;
}

namespace {

template <bool kFma>
void sgd_update_cpu(float* p, const float* g, float* b, int64_t n, float lr, const SGDCoefficients& c) {
  if (b == nullptr) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = sgd_plain<kFma>(p[i], g[i], lr, c.weight_decay);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = sgd_momentum<kFma>(p[i], g[i], b[i], lr, c);
  }
}

}  // namespace

void sgd_update(Tensor& p, const Tensor& g, Tensor& b, const Tensor& lr, const SGDCoefficients& c) {
  const bool momentum = c.momentum != 0.0f;
  QNN_CHECK(g.numel() == p.numel() && (!momentum || b.numel() == p.numel()) && lr.numel() == 1,
            "parameters ", shape_str(p.shape()), ", gradients ", shape_str(g.shape()), ", momentum buffer ",
            b.defined() ? shape_str(b.shape()) : "(none)", ", learning rate ", shape_str(lr.shape()),
            ": expected equal sizes (the buffer only with momentum) and one learning rate");
  QNN_CHECK(g.device() == p.device() && lr.device() == p.device() && (!momentum || b.device() == p.device()),
            "parameters on ", device_name(p.device()), " but gradients on ", device_name(g.device()),
            ", learning rate on ", device_name(lr.device()),
            momentum ? str(", momentum buffer on ", device_name(b.device())) : std::string());
  QNN_ON_CUDA(p, cuda::sgd_update(p, g, b, lr, c, kCpuFma));
  sgd_update_cpu<kCpuFma>(p.data(), g.data(), momentum ? b.data() : nullptr, p.numel(), lr.data()[0], c);
}

}  // namespace qnn
