// ConvWeightForms: a model's convolution weights in the form the GPU's convolutions multiply
// (bf16 beside bf16 images, KRSC beside channels-last ones: conv2d_weight_form in tensor/conv.h),
// all in one buffer, and their gradients in that form in another.
//
// Without it, each convolution converts its weight in its forward (one small kernel) and, in its
// backward, adds cuDNN's weight gradient, which comes in that form, into the float32 gradient
// (another): two kernels per convolution per step, 38 of a ResNet-20 step's graph nodes. With it,
// for the span of a Scope (a training step, train/trainer.h):
//   - opening the scope refreshes every form from the flat parameter buffer, in one kernel;
//   - the autograd convolution (autograd/functions_linear_conv.cpp) takes its weight's form from
//     here, and has cuDNN add its weight gradient into the form's gradient;
//   - at the end of backward the flat buffer's grad fold adds all of those into the flat gradient,
//     in one kernel, before any hook (quantization) reads it.
// The values are the same bits either way: the same roundings, in the same order. The forms are
// only valid while nothing but the step itself writes the parameters, which is why they are used
// only inside a scope; outside one (evaluation, manual loops) convolutions convert as before.
#pragma once
#include <unordered_map>
#include <vector>

#include "autograd/flat_parameters.h"
#include "tensor/conv.h"

namespace qnn {

class ConvWeightForms {
 public:
  // Forms of `flat`'s 4-D parameters beside images of this element type and memory format. None
  // (empty()) where those convolutions multiply float32 row-major weights anyway, where cuDNN is
  // off, or where the parameters are not on the GPU.
  ConvWeightForms(FlatParameters& flat, DType images, MemoryFormat images_format);
  ~ConvWeightForms();
  ConvWeightForms(const ConvWeightForms&) = delete;
  ConvWeightForms& operator=(const ConvWeightForms&) = delete;
  bool empty() const { return count_ == 0; }

  // Opens the forms of a step: refreshes them, and makes them the ones lookup() finds and the
  // flat buffer's grad fold adds; closing puts everything back. A null or empty forms does nothing.
  class Scope {
   public:
    explicit Scope(ConvWeightForms* forms);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    ConvWeightForms* forms_;
  };

  // In an open scope, for parameter w convolved with images x: its form and the form's gradient
  // (views into the forms' buffers). False where there is none (no scope, another parameter, or
  // images whose convolution takes another form).
  static bool lookup(const Variable& w, const Tensor& x, Tensor& form, Tensor& grad);

 private:
  FlatParameters& flat_;
  WeightForm form_;
  int64_t count_ = 0;                                // weights with a form
  Tensor segments_;                                  // [count_] WeightFormSegment, on the GPU
  Tensor forms_, form_grads_;                        // all forms, and their gradients
  std::unordered_map<const Node*, size_t> entry_of_;  // a parameter's node -> its views below
  std::vector<Tensor> weight_views_, grad_views_;
};

}  // namespace qnn
