// What a training run does instead of training (train/run.h): --variance-steps measures, step by
// step along unquantized SGD, the variance each gradient quantization scheme would add
// (quant/variance_recorder.h), written as CSV and a plot; --evaluate --resume of a QAT export
// runs the task's integer model (qinfer/) on the test set.
#pragma once
#include <cstdint>
#include <string>

#include "quant/variance_recorder.h"
#include "tensor/safetensors.h"
#include "train/flags.h"
#include "train/run.h"
#include "train/trainer.h"

namespace qnn {

// --variance-steps: `steps` steps of unquantized SGD, recording what each of the recorder's
// schemes would add; writes PREFIX.csv and PREFIX.png and prints the averages.
void measure_variance(Module& model, Trainer& trainer, BatchSource& source, VarianceRecorder& recorder, int64_t steps,
                      const std::string& prefix);

// --evaluate --resume EXPORT: the task's integer model on the test set, on the CPU; exit status.
int evaluate_integer_export(const std::string& app, TrainingTask& task, Flags& flags, const SafetensorsFile& file,
                            int64_t limit_train, int64_t limit_test, int64_t loader_threads);

}  // namespace qnn
