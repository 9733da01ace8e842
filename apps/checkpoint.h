// Training checkpoints: the model's state_dict, the optimizer's state and the run's metadata in
// one safetensors file, written atomically (tensor/safetensors.h). PyTorch-style names:
//   conv1.weight, bn1.running_mean, ..., fc.bias              the model (nn/state_dict.h)
//   optimizer.momentum_buffer.conv1.weight, ...              SGD's momentum, per parameter
// metadata: arch, epoch (epochs completed), best_accuracy, seed, optimizer_steps, plus anything
// the caller adds. Resuming restores all of it, so training continues bit for bit.
#pragma once
#include <map>
#include <string>

#include "nn/state_dict.h"
#include "optim/sgd.h"

namespace qnn {

inline void save_checkpoint(const std::string& path, Module& model, SGD& sgd,
                            std::map<std::string, std::string> metadata) {
  std::vector<NamedTensor> tensors = state_dict(model);
  FlatParameters& flat = model.flatten();
  if (sgd.momentum_buffer().defined()) {
    const auto named = model.named_parameters();
    for (size_t i = 0; i < named.size(); ++i)
      tensors.push_back({"optimizer.momentum_buffer." + named[i].first,
                         sgd.momentum_buffer().slice(flat.offset(i), named[i].second.shape())});
  }
  metadata["optimizer_steps"] = std::to_string(sgd.steps());
  metadata["format"] = "qnn-checkpoint-1";
  save_safetensors(path, tensors, metadata);
}

// Restores model and optimizer from `path` and returns the file's metadata.
inline std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, SGD& sgd) {
  SafetensorsFile file = load_safetensors(path);
  QNN_CHECK(file.metadata.count("format") && file.metadata.at("format") == "qnn-checkpoint-1", path,
            ": not a qnn training checkpoint (metadata 'format' should be qnn-checkpoint-1)");
  load_state_dict(model, file);
  FlatParameters& flat = model.flatten();
  if (sgd.momentum_buffer().defined()) {
    const auto named = model.named_parameters();
    for (size_t i = 0; i < named.size(); ++i) {
      const std::string name = "optimizer.momentum_buffer." + named[i].first;
      if (!file.has(name)) continue;  // a checkpoint from a run without momentum
      Tensor slot = sgd.momentum_buffer().slice(flat.offset(i), named[i].second.shape());
      QNN_CHECK(file.get(name).shape() == slot.shape(), path, ": '", name, "' has shape ",
                shape_str(file.get(name).shape()), ", expected ", shape_str(slot.shape()));
      slot.copy_from(file.get(name));
    }
  }
  sgd.set_steps(std::stoll(file.metadata.count("optimizer_steps") ? file.metadata.at("optimizer_steps") : "0"));
  return file.metadata;
}

}  // namespace qnn
