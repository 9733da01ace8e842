// libFuzzer target for the integer engine's reader of QAT exports (qinfer/int_resnet.h): a
// safetensors file from anywhere that says it is an export (metadata format qnn-qat-export-1)
// becomes an integer ResNet, which then classifies one small image, as
// `./apps/cifar --evaluate --resume export.safetensors` does with a test set.
//
// The input is a whole file. Building the engine must either throw qnn::Error or give an engine
// whose forward pass returns one logit per class; anything else (another exception, a crash, a
// sanitizer report, an allocation over the fuzzer's limit) is a defect. Files the safetensors
// reader refuses, or that are not exports, end there: the safetensors target covers that reader.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "data/augment.h"
#include "qinfer/int_resnet.h"
#include "tensor/check.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace {

// Stops the run so that libFuzzer saves the input: the engine accepted something wrong.
void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qnn::SafetensorsFile file;
  try {
    file = qnn::load_safetensors(data, size, "fuzz.safetensors");
  } catch (const qnn::Error&) {
    return 0;
  }
  if (!qnn::qinfer::is_qat_export(file)) return 0;
  // An RGB 8 x 8 image (the stages halve it twice) normalised as ./apps/cifar does from pixels
  // that are the file's last bytes, so that the engine sees other values as the input changes.
  // The same normalisation stands in for exports whose metadata does not hold theirs.
  static const qnn::Normalization cifar = qnn::cifar10_normalization();
  constexpr int64_t kSide = 8;
  std::vector<float> values(3 * kSide * kSide);
  for (size_t i = 0; i < values.size(); ++i) values[i] = cifar.table(int(i / (kSide * kSide)))[data[size - 1 - i % size]];
  const qnn::Tensor image = qnn::Tensor::from_vector(values, {1, 3, kSide, kSide});
  try {
    for (bool pack_4bit : {true, false}) {
      const qnn::qinfer::IntResNet engine(file, {cifar.mean, cifar.stddev}, pack_4bit);
      const qnn::Tensor logits = engine.forward(image);
      require(engine.classes() > 0 && logits.shape() == qnn::Shape{1, engine.classes()});
    }
  } catch (const qnn::Error&) {
  }
  return 0;
}
