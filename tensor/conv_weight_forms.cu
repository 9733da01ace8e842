// The two passes over all of a model's convolution weights at once (autograd/conv_weight_forms.h,
// declared in tensor/conv.h): refresh writes every weight's cuDNN form (bf16, and/or KRSC beside
// channels-last images) from the flat parameter buffer and zeroes the forms' gradients; fold adds
// the gradients cuDNN wrote in those forms into the flat gradient buffer. One thread per value of
// the forms buffer, which finds its weight (segment) by a binary search of the segments' starts;
// values between segments (the padding that keeps each form 16-byte aligned) are skipped. The
// roundings are those of a weight's own conversion (tensor/conv.cu): the same bits.
#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

// The segment holding forms value j, or nullptr (padding); segments sorted by form_begin.
__device__ const WeightFormSegment* segment_of(const WeightFormSegment* segments, int64_t count, int64_t j) {
  int64_t low = 0, high = count;  // the last segment with form_begin <= j is in [low, high)
  while (high - low > 1) {
    const int64_t mid = (low + high) / 2;
    if (segments[mid].form_begin <= j) low = mid;
    else high = mid;
  }
  const WeightFormSegment* s = segments + low;
  return count > 0 && j >= s->form_begin && j < s->form_begin + s->numel ? s : nullptr;
}

// Value j of the forms buffer, within segment s, taken as element j - form_begin of the weight in
// row-major order: its place in the forms buffer (KRSC when the forms are). Every place of the
// segment is some element's, once.
__device__ int64_t form_index(const WeightFormSegment& s, int64_t j, bool krsc) {
  const int64_t local = j - s.form_begin;
  return s.form_begin + (krsc ? krsc_index(local, s.c, s.rs) : local);
}

template <class T>
__global__ void refresh_kernel(const float* values, const WeightFormSegment* segments, int64_t count, int64_t total,
                               bool krsc, T* forms, T* form_grads) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total; j += int64_t(gridDim.x) * blockDim.x) {
    const WeightFormSegment* s = segment_of(segments, count, j);
    if (!s) continue;
    const int64_t f = form_index(*s, j, krsc);
    forms[f] = from_float<T>(values[s->flat_begin + (j - s->form_begin)]);
    form_grads[f] = from_float<T>(0.0f);
  }
}

template <class T>
__global__ void fold_kernel(float* grads, const WeightFormSegment* segments, int64_t count, int64_t total, bool krsc,
                            const T* form_grads) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total; j += int64_t(gridDim.x) * blockDim.x) {
    const WeightFormSegment* s = segment_of(segments, count, j);
    if (s) grads[s->flat_begin + (j - s->form_begin)] += to_float(form_grads[form_index(*s, j, krsc)]);
  }
}

const WeightFormSegment* table(const Tensor& segments) {
  return static_cast<const WeightFormSegment*>(segments.raw());
}

void check_forms(const char* op, const Tensor& flat, const Tensor& forms, const Tensor& form_grads) {
  QNN_CHECK(flat.is_cuda() && forms.is_cuda() && form_grads.is_cuda() && !flat.is_bf16() &&
                forms.dtype() == form_grads.dtype() && forms.numel() == form_grads.numel(),
            op, ": the flat buffer must be float32 and the forms and their gradients one type and size, all on the GPU");
}

}  // namespace

void refresh_weight_forms(const Tensor& values, const Tensor& segments, int64_t count, bool krsc, Tensor& forms,
                          Tensor& form_grads) {
  check_forms("refresh_weight_forms", values, forms, form_grads);
  const int64_t total = forms.numel();
  if (total == 0) return;
  if (forms.is_bf16())
    refresh_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(values.data(), table(segments), count, total, krsc,
                                                                 static_cast<uint16_t*>(forms.raw()),
                                                                 static_cast<uint16_t*>(form_grads.raw()));
  else
    refresh_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(values.data(), table(segments), count, total, krsc,
                                                                 forms.data(), form_grads.data());
  QNN_LAUNCH_CHECK("refreshing the convolution weights' forms (", count, " weights)");
}

void fold_weight_form_grads(Tensor& grads, const Tensor& segments, int64_t count, bool krsc, const Tensor& form_grads) {
  check_forms("fold_weight_form_grads", grads, form_grads, form_grads);
  const int64_t total = form_grads.numel();
  if (total == 0) return;
  if (form_grads.is_bf16())
    fold_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(grads.data(), table(segments), count, total, krsc,
                                                              static_cast<const uint16_t*>(form_grads.raw()));
  else
    fold_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(grads.data(), table(segments), count, total, krsc,
                                                              form_grads.data());
  QNN_LAUNCH_CHECK("adding the convolution weights' gradients from their forms (", count, " weights)");
}

}  // namespace qnn::cuda
