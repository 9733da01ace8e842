// Training checkpoints: the model's state_dict, the optimizer's state, any extra state (the
// gradient quantizer's) and the run's metadata in one safetensors file, written atomically
// (tensor/safetensors.h). PyTorch-style names:
//   conv1.weight, bn1.running_mean, ..., fc.bias              the model (nn/state_dict.h)
//   optimizer.momentum_buffer.conv1.weight, ...              SGD's momentum, per parameter
//   quantization.step, quantization.<scheme>.*               the quantization hook's state (quant/hook.h)
// metadata: format, optimizer_steps, plus what the caller adds (./apps/cifar: arch, epoch,
// best_accuracy and every run setting). Resuming restores all of it, so training
// continues bit for bit.
//
// A checkpoint is untrusted input. read_checkpoint() refuses a file that is not a qnn
// checkpoint or holds a non-finite value (a NaN weight would otherwise evaluate to a plausible
// accuracy); restore_checkpoint() refuses missing tensors, tensors of the wrong shape and
// tensors the model does not have (a B-shortcut checkpoint loaded into an A model), naming
// each; metadata_int() and metadata_number() refuse a missing or malformed value by name.
#pragma once
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "train/flags.h"
#include "nn/state_dict.h"
#include "optim/sgd.h"

namespace qnn {

constexpr const char* kCheckpointFormat = "qnn-checkpoint-1";
constexpr const char* kMomentumPrefix = "optimizer.momentum_buffer.";
constexpr const char* kQuantizationPrefix = "quantization.";

inline void save_checkpoint(const std::string& path, Module& model, SGD& sgd,
                            std::map<std::string, std::string> metadata, std::vector<NamedTensor> extra = {}) {
  std::vector<NamedTensor> tensors = state_dict(model);
  FlatParameters& flat = model.flatten();
  if (sgd.momentum_buffer().defined()) {
    const auto named = model.named_parameters();
    for (size_t i = 0; i < named.size(); ++i)
      tensors.push_back({kMomentumPrefix + named[i].first,
                         sgd.momentum_buffer().slice(flat.offset(i), named[i].second.shape())});
  }
  for (NamedTensor& t : extra) tensors.push_back(std::move(t));
  metadata["optimizer_steps"] = std::to_string(sgd.steps());
  metadata["format"] = kCheckpointFormat;
  save_safetensors(path, tensors, metadata);
}

// Reads a checkpoint file: a qnn checkpoint with finite values only.
inline SafetensorsFile read_checkpoint(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  QNN_CHECK(file.metadata.count("format") && file.metadata.at("format") == kCheckpointFormat, path,
            ": not a qnn training checkpoint (metadata 'format' should be ", kCheckpointFormat, ")");
  for (const NamedTensor& t : file.tensors) {
    const float* p = t.tensor.data();
    for (int64_t i = 0; i < t.tensor.numel(); ++i)
      QNN_CHECK(std::isfinite(p[i]), path, ": tensor '", t.name, "' holds a non-finite value (", p[i],
                ") at index ", i, "; a checkpoint must hold finite numbers only");
  }
  return file;
}

// A whole number from the checkpoint's metadata; missing or malformed is an error naming it.
inline int64_t metadata_int(const SafetensorsFile& file, const std::string& key) {
  auto it = file.metadata.find(key);
  QNN_CHECK(it != file.metadata.end(), file.path, ": metadata '", key, "' is missing");
  int64_t value = 0;
  QNN_CHECK(parse_int64(it->second, value) && value >= 0, file.path, ": metadata '", key,
            "' should be a whole number >= 0, found '", it->second, "'");
  return value;
}

// A finite number from the checkpoint's metadata; missing or malformed is an error naming it.
inline double metadata_number(const SafetensorsFile& file, const std::string& key) {
  auto it = file.metadata.find(key);
  QNN_CHECK(it != file.metadata.end(), file.path, ": metadata '", key, "' is missing");
  double value = 0;
  QNN_CHECK(parse_finite_double(it->second, value), file.path, ": metadata '", key,
            "' should be a finite number, found '", it->second, "'");
  return value;
}

// Restores model and optimizer from a checkpoint read by read_checkpoint(). Every tensor of the
// model must be there with its shape; every tensor in the file must be the model's, its
// momentum, or (when `extra_prefix` is not empty) start with it, left to the caller to load.
inline void restore_checkpoint(const SafetensorsFile& file, Module& model, SGD& sgd,
                               const std::string& extra_prefix = kQuantizationPrefix) {
  std::set<std::string> expected;
  for (const NamedTensor& t : state_dict(model)) expected.insert(t.name);
  const auto named = model.named_parameters();
  for (const auto& [name, v] : named) expected.insert(kMomentumPrefix + name);
  for (const NamedTensor& t : file.tensors) {
    const bool extra = !extra_prefix.empty() && t.name.rfind(extra_prefix, 0) == 0;
    QNN_CHECK(expected.count(t.name) || extra, file.path, ": tensor '", t.name,
              "' is not part of this model or its optimizer (was the checkpoint written for another --arch "
              "or --shortcut?)");
  }
  load_state_dict(model, file);
  FlatParameters& flat = model.flatten();
  if (sgd.momentum_buffer().defined()) {
    for (size_t i = 0; i < named.size(); ++i) {
      const std::string name = kMomentumPrefix + named[i].first;
      Tensor slot = sgd.momentum_buffer().slice(flat.offset(i), named[i].second.shape());
      if (!file.has(name)) {
        slot.zero();  // a checkpoint of a run without momentum: the buffer starts at zero
        continue;
      }
      QNN_CHECK(file.get(name).shape() == slot.shape(), file.path, ": '", name, "' has shape ",
                shape_str(file.get(name).shape()), ", expected ", shape_str(slot.shape()));
      slot.copy_from(file.get(name));
    }
  }
  sgd.set_steps(metadata_int(file, "optimizer_steps"));
}

// read_checkpoint + restore_checkpoint, returning the metadata.
inline std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, SGD& sgd) {
  SafetensorsFile file = read_checkpoint(path);
  restore_checkpoint(file, model, sgd);
  return file.metadata;
}

}  // namespace qnn
