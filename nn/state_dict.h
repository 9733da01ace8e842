// A model's state as named tensors, PyTorch's state_dict: every parameter and buffer under its
// dotted name, in the order PyTorch lists them. BatchNorm's num_batches_tracked is marked to be
// stored as an integer, as PyTorch stores it. Loading checks that every name is present with the
// right shape and names the first one that is missing or mismatched.
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/safetensors.h"

namespace qnn {

// The tensors share storage with the model (no copies).
std::vector<NamedTensor> state_dict(Module& model);

// Copies `prefix + name` from the file into each parameter and buffer of the model.
void load_state_dict(Module& model, const SafetensorsFile& file, const std::string& prefix = "");

}  // namespace qnn
