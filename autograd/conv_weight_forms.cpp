// A model's convolution weights in cuDNN's form, refreshed and folded once per step (see
// autograd/conv_weight_forms.h).
#include "autograd/conv_weight_forms.h"

#include "tensor/device.h"

namespace qnn {

namespace {

ConvWeightForms* open_forms = nullptr;  // the forms of the open scope (training runs on one thread)

constexpr int64_t kFormAlignment = 64;  // elements: every form starts 128 or 256 bytes into the buffer

bool krsc(const WeightForm& form) { return form.format == MemoryFormat::channels_last; }

}  // namespace

ConvWeightForms::ConvWeightForms(FlatParameters& flat, DType images, MemoryFormat images_format)
    : flat_(flat), form_(conv2d_weight_form(images, images_format)) {
  const bool master_form = form_.dtype == DType::f32 && form_.format == MemoryFormat::contiguous;
  if (master_form || !backend_options().cudnn || !flat.values().is_cuda()) return;
  std::vector<WeightFormSegment> segments;
  std::vector<size_t> leaves;
  int64_t total = 0;
  for (size_t i = 0; i < flat.leaves().size(); ++i) {
    const Tensor& v = flat.leaves()[i].value();
    if (v.dim() != 4) continue;
    segments.push_back({flat.offset(i), total, v.numel(), v.size(1), v.size(2) * v.size(3)});
    leaves.push_back(i);
    total += (v.numel() + kFormAlignment - 1) / kFormAlignment * kFormAlignment;
  }
  if (segments.empty()) return;
  count_ = static_cast<int64_t>(segments.size());
  Tensor both({2 * total}, Device::CUDA, MemoryFormat::contiguous, form_.dtype);  // one block (tensor/allocator.h)
  both.zero();  // the padding between forms is never read, but stays defined
  forms_ = both.slice(0, {total});
  form_grads_ = both.slice(total, {total});
  const size_t table_bytes = segments.size() * sizeof(WeightFormSegment);
  segments_ = Tensor({static_cast<int64_t>(table_bytes / sizeof(float))}, Device::CUDA);  // raw bytes
  device_copy(segments_.raw(), Device::CUDA, segments.data(), Device::CPU, table_bytes);
  for (size_t k = 0; k < segments.size(); ++k) {
    const Variable& w = flat.leaves()[leaves[k]];
    weight_views_.push_back(forms_.slice(segments[k].form_begin, w.shape(), form_.format));
    grad_views_.push_back(form_grads_.slice(segments[k].form_begin, w.shape(), form_.format));
    entry_of_[&w.node()] = k;
  }
}

ConvWeightForms::~ConvWeightForms() {
  if (open_forms == this) {  // a scope outlived its forms: close it
    flat_.set_grad_fold(nullptr);
    open_forms = nullptr;
  }
}

ConvWeightForms::Scope::Scope(ConvWeightForms* forms) : forms_(forms && !forms->empty() ? forms : nullptr) {
  if (!forms_) return;
  QNN_CHECK(open_forms == nullptr, "ConvWeightForms: a scope is already open");
  ConvWeightForms& f = *forms_;
  refresh_weight_forms(f.flat_.values(), f.segments_, f.count_, krsc(f.form_), f.forms_, f.form_grads_);
  f.flat_.set_grad_fold([&f](Tensor& flat_grad) {
    fold_weight_form_grads(flat_grad, f.segments_, f.count_, krsc(f.form_), f.form_grads_);
  });
  open_forms = forms_;
}

ConvWeightForms::Scope::~Scope() {
  if (!forms_ || open_forms != forms_) return;
  forms_->flat_.set_grad_fold(nullptr);
  open_forms = nullptr;
}

bool ConvWeightForms::lookup(const Variable& w, const Tensor& x, Tensor& form, Tensor& grad) {
  if (!open_forms || !backend_options().cudnn) return false;  // cuDNN adds into the forms' gradients
  const auto it = open_forms->entry_of_.find(&w.node());
  if (it == open_forms->entry_of_.end()) return false;
  const WeightForm wanted = conv2d_weight_form(x.dtype(), x.format());
  if (wanted.dtype != open_forms->form_.dtype || wanted.format != open_forms->form_.format) return false;
  form = open_forms->weight_views_[it->second];
  grad = open_forms->grad_views_[it->second];
  return true;
}

}  // namespace qnn
