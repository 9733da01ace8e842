// Layer modules (see nn/layers.h): parameters, buffers and default initialisation.
#include "nn/layers.h"

#include "nn/init.h"
#include "tensor/device.h"

namespace qnn {

Variable image_input(const Variable& x) {
  if (!x.value().is_cuda()) return x;
  const Variable laid_out = backend_options().channels_last ? to_channels_last(x) : x;
  return backend_options().bf16 ? to_dtype(laid_out, DType::bf16) : laid_out;
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding, bool has_bias)
    : params{stride, padding} {
  QNN_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0, "channels ", in_channels, " -> ",
            out_channels, ", kernel ", kernel, ": all must be positive");
  const int64_t fan_in = in_channels * kernel * kernel;
  weight = register_parameter("weight", uniform_fan_in({out_channels, in_channels, kernel, kernel}, fan_in));
  if (has_bias) bias = register_parameter("bias", uniform_fan_in({out_channels}, fan_in));
}

std::shared_ptr<Conv2d> kaiming_conv(int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding) {
  auto conv = std::make_shared<Conv2d>(in_channels, out_channels, kernel, stride, padding, false);
  conv->weight.value().copy_from(kaiming_normal(conv->weight.shape(), /*fan_out_mode=*/true));
  return conv;
}

Variable Conv2d::forward(const Variable& x) { return conv2d(x, weight, bias, params); }

BatchNorm2d::BatchNorm2d(int64_t channels, float eps_, float momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", Tensor::full({channels}, 1.0f));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = &register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = &register_buffer("running_var", Tensor::full({channels}, 1.0f));
  num_batches_tracked = &register_buffer("num_batches_tracked", Tensor::zeros({}));
}

Variable BatchNorm2d::forward(const Variable& x) {
  // Counted on the device, by the statistics kernel: a captured step counts too.
  return batch_norm(x, weight, bias, *running_mean, *running_var, uses_batch_statistics(), momentum, eps,
                    num_batches_tracked);
}

Variable BatchNorm2d::forward_relu(const Variable& x, const Variable& residual) {
  return batch_norm_relu(x, weight, bias, *running_mean, *running_var, uses_batch_statistics(), momentum, eps,
                         residual, num_batches_tracked);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias) {
  weight = register_parameter("weight", uniform_fan_in({out_features, in_features}, in_features));
  if (has_bias) bias = register_parameter("bias", uniform_fan_in({out_features}, in_features));
}

Variable Linear::forward(const Variable& x) { return linear(x, weight, bias); }

Variable Sequential::forward(const Variable& x) {
  Variable h = x;
  for (auto& layer : layers_) h = layer->forward(h);
  return h;
}

}  // namespace qnn
