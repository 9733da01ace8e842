// Batch normalisation kernels, per channel c of x [N, C, H, W] (or [N, C]), as PyTorch's
// BatchNorm2d computes them. With M = N*H*W values per channel:
//   mean_c = (1/M) sum x            var_c = (1/M) sum (x - mean_c)^2      (biased)
//   invstd_c = 1 / sqrt(var_c + eps)       xhat = (x - mean_c) * invstd_c
//   y = gamma_c * xhat + beta_c
// Training also updates the running statistics (momentum m, PyTorch's convention):
//   running_mean = (1 - m) running_mean + m mean_c
//   running_var  = (1 - m) running_var  + m var_c * M / (M - 1)          (unbiased)
// Evaluation normalises with running_mean and running_var instead of the batch's statistics.
// Backward, with g = dy summed per channel:
//   dbeta_c = sum dy      dgamma_c = sum dy * xhat
//   training: dx = gamma_c invstd_c (dy - dbeta_c / M - xhat dgamma_c / M)
//   evaluation (statistics are constants): dx = gamma_c invstd_c dy
// Backward needs only x (which the graph keeps anyway) and mean/invstd per channel (2C floats).
// The sums over a channel run in an order fixed by the shape alone (on the CPU one thread per
// channel, on the GPU fixed ranges per block: tensor/channel_sums_cuda.h), so results are
// deterministic; the batch statistics take one pass, shifted by the channel's first value to
// avoid cancellation.
//
// Fused ReLU (the ends of a ResNet block): y = relu(bn(x)) or y = relu(bn(x) + residual) is
// written in the same pass as bn's output would be, so the pre-ReLU tensor never exists; each
// value is rounded exactly as batch_norm, add_relu and relu would round it one after another, so
// the results are bit-identical to the unfused ops on the same device. Backward through
// relu(bn(x)) reads dy where y > 0 and zero elsewhere (relu_backward's rule) inside both passes,
// instead of from a masked copy; without a residual it tests x * a_c + b_c > 0, the value forward
// passed to the ReLU, instead of reading y.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

// What follows the per-channel affine map in forward: nothing, a ReLU, or the addition of a
// residual then a ReLU (the ends of a ResNet block's two convolutions).
enum class BatchNormEpilogue { none, relu, add_relu };

// How backward reads dy: as it is; where the ReLU's output y is positive (relu_backward's rule);
// where the ReLU's input, recomputed from x as x * a_c + b_c with the map forward applied, is
// positive (y is then not read); or where y is positive, also writing the masked gradient out
// (the residual's gradient).
enum class BatchNormMask { none, by_output, by_affine, by_output_kept };

// Where backward puts dgamma and dbeta: a target left undefined gets a fresh [C] tensor; a
// defined one ([C], on x's device: typically the parameter's gradient) has the gradient added
// into it, rounded as add_into would, and is what BatchNormGrads holds.
struct BatchNormGradTargets {
  Tensor dgamma, dbeta;
};

// Returns y; writes the batch mean and invstd into save_mean and save_invstd (allocated here,
// shape [C]) and updates running_mean and running_var in place. batches_tracked, where given (a
// one-element tensor, the layer's count of batches), is incremented by one.
Tensor batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   Tensor& running_mean, Tensor& running_var, float momentum,
                                   float eps, Tensor& save_mean, Tensor& save_invstd,
                                   Tensor* batches_tracked = nullptr);

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               const Tensor& running_mean, const Tensor& running_var, float eps);

// relu(bn(x)) when residual is undefined, relu(bn(x) + residual) otherwise (residual of x's shape);
// statistics and batches_tracked as above. save_affine, where given, receives the per-channel
// map bn applied, y = x * a_c + b_c, as the floats it used: [2, C], the scales a then the shifts
// b; backward can recompute the ReLU's mask from x with it instead of reading y.
Tensor batch_norm_relu_forward_training(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                        const Tensor& beta, Tensor& running_mean,
                                        Tensor& running_var, float momentum, float eps,
                                        Tensor& save_mean, Tensor& save_invstd,
                                        Tensor* save_affine = nullptr,
                                        Tensor* batches_tracked = nullptr);
Tensor batch_norm_relu_forward_eval(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                    const Tensor& beta, const Tensor& running_mean,
                                    const Tensor& running_var, float eps,
                                    Tensor* save_affine = nullptr);

struct BatchNormGrads {
  Tensor dx;  // undefined unless asked for
  Tensor dgamma, dbeta;
  Tensor dy_masked;  // batch_norm_relu_backward with keep_masked: the gradient reaching bn's output
};

// mean and invstd are what normalised x in forward (batch statistics when `training`, else the
// running ones: pass mean = running_mean, invstd = 1 / sqrt(running_var + eps)).
BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, bool training,
                                   bool need_dx, const BatchNormGradTargets& into = {});
// The same for y = relu(bn(x)) or relu(bn(x) + residual): dy is the gradient of y and counts only
// where y > 0; the result equals batch_norm_backward(relu_backward(dy, y), ...) bit for bit.
// keep_masked also returns relu_backward(dy, y) itself (the residual's gradient) in dy_masked,
// written as the first pass reads it. affine, for relu(bn(x)) without a residual, is the map the
// forward reported in save_affine: the mask is then x * a_c + b_c > 0, the same floats that
// forward compared, and y is not read (one tensor less to stream, twice); not with keep_masked.
BatchNormGrads batch_norm_relu_backward(const Tensor& dy, const Tensor& y, const Tensor& x,
                                        const Tensor& gamma, const Tensor& mean,
                                        const Tensor& invstd, bool training, bool need_dx,
                                        bool keep_masked = false, const Tensor& affine = Tensor(),
                                        const BatchNormGradTargets& into = {});

// The CUDA twins (tensor/batchnorm.cu), called by the functions above for CUDA tensors after the
// shapes are checked: the same formulas and fusions, per-channel sums split over many blocks.
// residual is read only by add_relu; y only by the by_output masks, affine only by by_affine.
// On the GPU x may be bf16 (DType::bf16): residual, y and dy must then be bf16 too, y, dx and
// dy_masked come back bf16 (each value computed in float as for float x, rounded once), and every
// per-channel tensor (gamma, beta, statistics, save_affine, dgamma, dbeta) stays float32. With
// bf16 the fused forms round relu(bn(x) [+ residual]) once, so they are not bit-identical to the
// unfused ops, which would also round bn(x).
namespace cuda {
Tensor batch_norm_forward_training(const Tensor& x, const Tensor& residual, BatchNormEpilogue epilogue,
                                   const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                                   Tensor& running_var, float momentum, float eps, Tensor& save_mean,
                                   Tensor& save_invstd, Tensor* save_affine, Tensor* batches_tracked);
Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& residual, BatchNormEpilogue epilogue,
                               const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                               const Tensor& running_var, float eps, Tensor* save_affine);
BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, const Tensor& affine,
                                   BatchNormMask mask, bool training, bool need_dx,
                                   const BatchNormGradTargets& into);
}  // namespace cuda

}  // namespace qnn
