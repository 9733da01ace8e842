// Quantization-aware training in the shared training run (train/run.h): its flags, the QatSpec
// they make (an app builds its model from it: ./apps/cifar the float CifarResNet of nn/resnet.h or
// its QAT version of nn/qat_resnet.h), --init-weights (model weights only, for fine-tuning a float
// or QAT checkpoint), the per-epoch observer and batch-norm freezes and --export-qat.
//
//   --qat none|linear|lsq|pact|dorefa|wrpn   method (nn/qat_layers.h explains each)
//   --weight-bits B, --act-bits B            2..8, set separately
//   --qat-first-last-bits B                  the first conv and the classifier (default 8)
//   --wrpn-width K                           channel multiplier of --qat wrpn
//   --fold-bn                                linear, lsq: every convolution trains with its batch
//                                            norm folded in (nn/qat_conv_bn.h, PyTorch's ConvBn2d)
//   --freeze-observers-epoch E               linear: observers stop updating once E epochs are
//                                            done (0: never), PyTorch's disable_observer phase
//   --freeze-bn-epoch E                      batch norms use and keep their running statistics
//                                            once E epochs are done (0: never), PyTorch's
//                                            freeze_bn_stats phase
//   --export-qat OUT --resume CK             write CK's model as low-bit integers (nn/qat_export.h,
//                                            docs/qat-export.md) and exit
// The model-shaping flags are model settings (a --resume cannot change them); the observer freeze epoch is
// a schedule setting, as is the batch-norm freeze epoch.
#pragma once
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/flags.h"
#include "nn/qat_export.h"
#include "nn/qat_resnet.h"

namespace qnn {

const std::vector<std::string> kQatModelSettings = {"--qat", "--weight-bits", "--act-bits", "--qat-first-last-bits",
                                                    "--wrpn-width", "--fold-bn"};
const std::vector<std::string> kQatScheduleSettings = {"--freeze-observers-epoch", "--freeze-bn-epoch"};
// The flags only QAT models use (--init-weights starts any model from a checkpoint's weights).
const std::vector<std::string> kQatOnlyFlags = {"--qat", "--weight-bits", "--act-bits", "--qat-first-last-bits",
                                                "--wrpn-width", "--fold-bn", "--freeze-observers-epoch",
                                                "--freeze-bn-epoch", "--export-qat"};

struct QatFlags {
  std::string& method;
  int64_t &weight_bits, &act_bits, &first_last_bits, &width;
  bool& fold_bn;
  int64_t &freeze_observers_epoch, &freeze_bn_epoch;
  std::string& init_weights;
  std::string& export_path;
};

inline QatFlags add_qat_flags(Flags& flags) {
  return QatFlags{
      flags.add_string("--qat", "none", "quantization-aware training: none|linear|lsq|pact|dorefa|wrpn"),
      flags.add_int("--weight-bits", 4, "QAT: weight bits (first conv and classifier: --qat-first-last-bits)", 2, 8),
      flags.add_int("--act-bits", 4, "QAT: activation bits", 2, 8),
      flags.add_int("--qat-first-last-bits", 8, "QAT: bits of the first conv, the classifier and its input", 2, 8),
      flags.add_int("--wrpn-width", 1, "--qat wrpn: channel width multiplier", 1, 16),
      flags.add_bool("--fold-bn", "--qat linear|lsq: train each convolution with its batch norm folded in (PyTorch's ConvBn2d)"),
      flags.add_int("--freeze-observers-epoch", 0, "--qat linear: observers stop updating after this many epochs (0: never)", 0),
      flags.add_int("--freeze-bn-epoch", 0, "QAT: batch norms use and keep their running statistics after this many epochs (0: never)", 0),
      flags.add_string("--init-weights", "", "start from this checkpoint's model weights only (float or QAT; not optimizer, epoch or settings)"),
      flags.add_string("--export-qat", "", "with --resume: write the QAT model's low-bit export (safetensors) and exit"),
  };
}

// The QatSpec of the flags. A bad method, or flags that do not go together, throw FlagError,
// which an app reports as a command-line error and the C API as an unsupported checkpoint.
inline QatSpec qat_spec(const QatFlags& q) {
  QatSpec spec;
  try {
    spec.method = parse_qat_method(q.method);
  } catch (const Error&) {
    throw FlagError("bad --qat '" + q.method + "'; valid: none, linear, lsq, pact, dorefa, wrpn");
  }
  if (q.width != 1 && spec.method != QatMethod::Wrpn)
    throw FlagError("--wrpn-width " + std::to_string(q.width) + " widens a --qat wrpn network; --qat is " + q.method);
  spec.weight_bits = int(q.weight_bits);
  spec.act_bits = int(q.act_bits);
  spec.first_last_bits = int(q.first_last_bits);
  spec.width = q.width;
  spec.fold_bn = q.fold_bn;
  if (q.fold_bn && spec.method != QatMethod::Linear && spec.method != QatMethod::Lsq)
    throw FlagError("--fold-bn folds batch norms into --qat linear or lsq convolutions; --qat is " + q.method);
  if (q.freeze_bn_epoch != 0 && spec.method == QatMethod::None)
    throw FlagError("--freeze-bn-epoch " + std::to_string(q.freeze_bn_epoch) + " is a QAT phase; give --qat too");
  return spec;
}

// "none" or e.g. "lsq W4A4": the progress line's and the CSV's qat column.
inline std::string qat_label(const QatSpec& spec) {
  return spec.method == QatMethod::None ? "none" : spec.describe();
}

// After a model's state was loaded: the QAT quantizers take up their ranges and steps.
inline void qat_after_load(Module& model) {
  if (auto* qat = dynamic_cast<QatCifarResNet*>(&model)) qat->after_load();
}

// Whether the QAT state of a checkpoint written with `metadata`'s settings fits a run with the
// flags `q`: the same method, bit widths and folding. A step or range learned for 4 bits is no
// starting point for 2 bits, so a checkpoint of other settings gives its weights only.
inline bool qat_state_fits(const std::map<std::string, std::string>& metadata, const QatFlags& q) {
  const auto setting = [&](const std::string& name) {
    const auto it = metadata.find("setting." + name);
    return it == metadata.end() ? std::string() : it->second;
  };
  return setting("qat") == q.method && setting("weight-bits") == std::to_string(q.weight_bits) &&
         setting("act-bits") == std::to_string(q.act_bits) &&
         setting("qat-first-last-bits") == std::to_string(q.first_last_bits) &&
         setting("fold-bn") == (q.fold_bn ? "yes" : "no");
}

// --init-weights: every model tensor from the checkpoint; its QAT state too when it was trained
// with this run's QAT settings (qat_state_fits), else the quantizers start as in a fresh run (so
// a W4A4 model can start a W2A2 fine-tune). The optimizer's and gradient quantizer's state in it
// are ignored.
inline void init_model_weights(Module& model, const std::string& path, const QatFlags& q) {
  SafetensorsFile file = read_checkpoint(path);
  std::string note;
  const bool has_qat_state = std::any_of(file.tensors.begin(), file.tensors.end(),
                                         [](const NamedTensor& t) { return is_qat_state_name(t.name); });
  if (has_qat_state && !qat_state_fits(file.metadata, q)) {
    std::vector<NamedTensor> kept;
    for (NamedTensor& t : file.tensors)
      if (!is_qat_state_name(t.name)) kept.push_back(std::move(t));
    file.tensors = std::move(kept);
    note = "; its quantizers' state is for other QAT settings and is not taken";
  }
  const int64_t loaded = load_model_weights(model, file, {kMomentumPrefix, kQuantizationPrefix});
  qat_after_load(model);
  std::printf("initial weights: %s (%lld tensors%s)\n", path.c_str(), (long long)loaded, note.c_str());
}

// At the start of epoch `epoch` (0-based): observers and batch norms freeze once their epochs are done.
inline void qat_start_epoch(Module& model, int64_t epoch, const QatFlags& q) {
  auto* qat = dynamic_cast<QatCifarResNet*>(&model);
  if (!qat) return;
  qat->freeze_observers(q.freeze_observers_epoch > 0 && epoch >= q.freeze_observers_epoch);
  qat->freeze_batch_norm(q.freeze_bn_epoch > 0 && epoch >= q.freeze_bn_epoch);
}

// --export-qat: the resumed QAT model's low-bit export, with the run's architecture recorded.
inline void export_qat(Module& model, const std::string& path, const std::string& arch,
                       std::map<std::string, std::string> metadata) {
  auto* qat = dynamic_cast<QatCifarResNet*>(&model);
  QNN_CHECK(qat, "--export-qat needs a QAT checkpoint; this run's model has --qat none");
  metadata["arch"] = arch;
  export_qat_model(*qat, path, metadata);
  std::printf("exported %s (%s) to %s\n", arch.c_str(), qat->spec().describe().c_str(), path.c_str());
}

}  // namespace qnn
