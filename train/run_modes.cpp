// --variance-steps and --evaluate of a QAT export (see train/run_modes.h).
#include "train/run_modes.h"

#include <omp.h>

#include <cstdio>
#include <vector>

#include "train/plot.h"
#include "train/progress.h"

namespace qnn {

void measure_variance(Module& model, Trainer& trainer, BatchSource& source, VarianceRecorder& recorder, int64_t steps,
                      const std::string& prefix) {
  recorder.install(model.flatten());
  for (int64_t epoch = 0; recorder.steps() < steps; ++epoch)
    trainer.train_epoch(source, epoch, epoch + 1, steps - recorder.steps());
  model.flatten().clear_grad_hooks();
  const auto& names = recorder.schemes();
  std::string header = "step";
  for (const auto& n : names) header += "," + n;
  CsvLog csv(prefix + ".csv", header);
  std::vector<PlotSeries> series;
  for (size_t s = 0; s < names.size(); ++s) series.push_back({names[s], recorder.history()[s]});
  for (int64_t t = 0; t < recorder.steps(); ++t) {
    std::string row = std::to_string(t);
    for (size_t s = 0; s < names.size(); ++s) row += "," + str(recorder.history()[s][t]);
    csv.append(row);  // rewrites the file each time: fine for a few hundred rows
  }
  write_line_plot_png(prefix + ".png", series,
                      {"quantization variance per step (unquantized SGD)", "step", "variance (gradient units^2)", true});
  std::printf("average variance over %lld steps (sum over coordinates of (x-l)(r-x)):\n", (long long)recorder.steps());
  for (size_t s = 0; s < names.size(); ++s) std::printf("  %-12s %.6g\n", names[s].c_str(), recorder.mean(s));
  std::printf("wrote %s.csv and %s.png\n", prefix.c_str(), prefix.c_str());
}

int evaluate_integer_export(const std::string& app, TrainingTask& task, Flags& flags, const SafetensorsFile& file,
                            int64_t limit_train, int64_t limit_test, int64_t loader_threads) {
  task.check_flags(flags, QatSpec{});
  std::string description;
  const std::shared_ptr<Module> model = task.build_integer_model(file, description);
  QNN_CHECK(model, file.path, ": a QAT export; ", app, " has no integer engine to evaluate it");
  std::printf("qnn %s: integer engine, device cpu, threads %d\n", app.c_str(), omp_get_max_threads());
  task.load_data(limit_train, limit_test);
  SourceRequest request;
  request.training = false;
  request.loader_threads = static_cast<int>(loader_threads);
  request.device = Device::CPU;
  const std::unique_ptr<BatchSource> test_source = task.make_source(request);
  std::printf("model: %s\n", description.c_str());
  const EpochResult test = evaluate(*model, *test_source, 0);
  std::printf("test: loss %.4f accuracy %.2f%%", test.loss, 100 * test.accuracy);
  if (task.reports_top5()) std::printf(" top-5 %.2f%%", 100 * test.top5);
  std::printf(" (%lld images, %.1fs)\n", (long long)test.images, test.seconds);
  return 0;
}

}  // namespace qnn
