// state_dict and load_state_dict (see nn/state_dict.h).
#include "nn/state_dict.h"

namespace qnn {

namespace {
bool is_counter(const std::string& name) {
  const std::string suffix = "num_batches_tracked";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void copy_checked(Tensor& target, const SafetensorsFile& file, const std::string& name) {
  const Tensor& source = file.get(name);
  QNN_CHECK(source.shape() == target.shape(), file.path, ": tensor '", name, "' has shape ",
            shape_str(source.shape()), ", the model expects ", shape_str(target.shape()));
  target.copy_from(source);
}
}  // namespace

std::vector<NamedTensor> state_dict(Module& model) {
  // PyTorch lists each module's parameters then its buffers, depth first. Names sort the same
  // way if we merge the two lists by module prefix order; simpler and equally valid for
  // safetensors (keys are looked up by name): parameters first, then buffers.
  std::vector<NamedTensor> out;
  for (auto& [name, v] : model.named_parameters()) out.push_back({name, v.value(), false});
  for (auto& [name, t] : model.named_buffers()) out.push_back({name, *t, is_counter(name)});
  return out;
}

void load_state_dict(Module& model, const SafetensorsFile& file, const std::string& prefix) {
  for (auto& [name, v] : model.named_parameters()) copy_checked(v.value(), file, prefix + name);
  for (auto& [name, t] : model.named_buffers()) copy_checked(*t, file, prefix + name);
}

}  // namespace qnn
