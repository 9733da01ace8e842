// The shared command-line training run (see train/run.h). run_training reads in the order the run
// goes: the flags (train/run_flags.h), what --resume brings, the checks on the final settings, the
// device, then one of the modes that do not train (--export-qat, --variance-steps, --evaluate) or
// the epochs.
#include "train/run.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "dist/exchange.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "nn/init.h"
#include "quant/variance_recorder.h"
#include "tensor/device.h"
#include "train/checkpoint.h"
#include "train/output_paths.h"
#include "train/qat_setup.h"
#include "train/run_flags.h"
#include "train/run_modes.h"
#include "train/run_settings.h"
#include "train/trainer.h"

namespace qnn {

namespace {

// This process's place in a data-parallel run: under mpirun one rank of it (docs/distributed.md),
// else the only one. Rank 0 alone prints, writes the log and the checkpoints; the others'
// standard output is discarded.
struct Place {
  Communicator* world = nullptr;
  int ranks = 1;
  bool writer = true;
};

Place join_world(const std::string& app) {
  QNN_CHECK(!launched_by_mpirun() || mpi_built(), "started by mpirun, but this ", app,
            " was built without MPI (mpicxx was not found): install libopenmpi-dev and openmpi-bin and make again");
  Place place;
  if (!launched_by_mpirun()) return place;
  place.world = &mpi_world();
  place.ranks = place.world->size();
  cuda_prefer_device(mpi_local_rank());  // the ranks of one machine use its GPUs in turn
  place.writer = place.world->rank() == 0;
  if (!place.writer && !std::freopen("/dev/null", "w", stdout))
    throw Error("cannot discard rank " + std::to_string(place.world->rank()) + "'s output");
  return place;
}

SGDOptions sgd_options(const ScheduleFlags& f) {
  return {float(f.lr), float(f.momentum), 0.0f, float(f.wd), f.nesterov};
}

// --export-qat: the checkpoint's QAT model as low-bit integers; no data, step or training needed.
void export_checkpoint(TrainingTask& task, const RunFlags& f, const ResumePoint& from, const QatSpec& qat, Device dev) {
  QNN_CHECK(qat.method != QatMethod::None, "--export-qat needs a QAT checkpoint; ", f.files.resume,
            " was trained with --qat none");
  manual_seed(static_cast<uint64_t>(f.schedule.seed));
  const std::shared_ptr<Module> model = task.build_model(qat);
  model->to(dev);
  SGD sgd(model->flatten(), sgd_options(f.schedule));
  restore_checkpoint(from.checkpoint, *model, sgd);
  qat_after_load(*model);
  std::printf("model: %s, %lld parameters, qat %s\n", task.describe_model().c_str(), (long long)model->num_parameters(),
              qat_label(qat).c_str());
  export_qat(*model, f.qat.export_path, task.arch(), task.export_metadata());
}

// What a run trains with, each piece built from those before it: the data, the model and its
// optimizer, the batches, the learning-rate schedule, the gradient quantization hook, the trainer
// and, under mpirun, the gradient exchange. Built in place: the trainer keeps references into it.
struct Training {
  Training(TrainingTask& task, const RunFlags& f, CheckedSettings& s, Device dev, const Place& place);
  Training(const Training&) = delete;
  Training& operator=(const Training&) = delete;

  std::shared_ptr<Module> model;
  std::unique_ptr<SGD> sgd;
  std::unique_ptr<BatchSource> train_source, test_source;
  LRSchedule schedule;
  std::unique_ptr<GradientQuantizationHook> hook;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<Communicator> nccl;
  std::unique_ptr<GradientExchange> exchange;
};

Training::Training(TrainingTask& task, const RunFlags& f, CheckedSettings& s, Device dev, const Place& place) {
  const auto seed = static_cast<uint64_t>(f.schedule.seed);
  const int workers = static_cast<int>(f.quant.workers);
  task.load_data(f.files.limit_train, f.files.limit_test);
  manual_seed(seed);
  model = task.build_model(s.qat);
  model->to(dev);
  if (!f.qat.init_weights.empty()) init_model_weights(*model, f.qat.init_weights, f.qat);
  FlatParameters& flat = model->flatten();
  sgd = std::make_unique<SGD>(flat, sgd_options(f.schedule));

  SourceRequest request;
  request.batch_size = f.schedule.batch_size;
  request.seed = seed;
  request.loader_threads = static_cast<int>(f.device.loader_threads);
  request.device = dev;
  train_source = task.make_source(request);
  request.training = false;
  test_source = task.make_source(request);

  schedule.kind = f.schedule.kind;
  schedule.base_lr = float(f.schedule.lr);
  schedule.milestones = s.milestones;
  schedule.epochs = f.schedule.epochs;
  schedule.steps_per_epoch = Trainer::steps_per_epoch(train_source->batches_per_epoch(), workers);
  validate(schedule);

  if (s.quantizer) {
    HookOptions options;
    options.seed = seed;
    options.flattening = f.quant.per_layer ? Flattening::per_layer : Flattening::network_wide;
    options.record_variance = true;
    hook = std::make_unique<GradientQuantizationHook>(std::move(s.quantizer), options);
    if (workers == 1) {
      hook->install(flat);
    } else {
      std::vector<int64_t> sizes;
      for (const Variable& p : flat.leaves()) sizes.push_back(p.numel());
      hook->set_layer_sizes(sizes);
    }
  }
  // QAT steps make host-side decisions (an observer's first range, LSQ's initial step): no CUDA graph.
  const bool graph = !f.device.no_graph && f.variance.steps == 0 && s.qat.method == QatMethod::None;
  trainer = std::make_unique<Trainer>(*model, *sgd, schedule, hook.get(), workers, graph);
  if (place.ranks > 1) {
    if (f.distributed.transport == "nccl") {
      QNN_CHECK(dev == Device::CUDA, "--transport nccl exchanges between GPUs: train on them (--device cuda)");
      nccl = make_nccl_communicator(*place.world);
    }
    exchange = std::make_unique<GradientExchange>(nccl ? *nccl : *place.world, hook.get(), exchange_layers(flat),
                                                  ExchangeOptions{s.exchange});
    trainer->set_exchange(exchange.get(), f.distributed.check_replicas);
  }
}

// --resume: the model, the optimizer and the quantizer's state from the checkpoint, and a note
// for each setting given again with another value saying what changes.
void restore(Training& t, const RunFlags& f, const ResumePoint& from) {
  const std::string& resume = f.files.resume;
  restore_checkpoint(from.checkpoint, *t.model, *t.sgd);
  qat_after_load(*t.model);
  const bool quantizer_changed =
      std::any_of(from.changes.begin(), from.changes.end(), [](const SettingChange& c) { return is_one_of(kQuantSettings, c.flag); });
  if (t.hook && !quantizer_changed) {
    // The hook's step and the adaptive schemes' fitted levels (quant/hook.h); a checkpoint
    // of an older format records the step alone, in its metadata.
    if (from.checkpoint.has(std::string(kQuantizationPrefix) + "step")) t.hook->load_state(from.checkpoint, kQuantizationPrefix);
    else if (from.checkpoint.metadata.count("quant_step")) t.hook->set_step(metadata_int(from.checkpoint, "quant_step"));
    else throw Error(str(resume, ": the checkpoint's run used --quant ", f.quant.scheme, " but it holds no quantizer state (",
                         kQuantizationPrefix, "step)"));
  }
  std::printf("resumed %s: %lld epochs done, best test accuracy %.2f%%\n", resume.c_str(), (long long)from.epochs_done,
              100 * from.best);
  for (const SettingChange& c : from.changes) {
    std::string effect = "the new value applies from here on";
    if (is_one_of(kScheduleSettings, c.flag))
      effect = str("the learning-rate schedule changes: epoch ", from.epochs_done + 1, " starts at lr ",
                   t.schedule.lr_at(std::min(from.epochs_done, f.schedule.epochs - 1), 0));
    else if (c.flag == "--seed")
      effect = "data order and augmentation follow the new seed: not a bit-identical continuation";
    else if (is_one_of(kQuantSettings, c.flag))
      effect = "the gradient quantizer starts afresh; the checkpoint's quantizer state is not loaded";
    std::printf("note: %s %s given, the checkpoint's run had %s: %s\n", c.flag.c_str(), c.given.c_str(),
                c.recorded.c_str(), effect.c_str());
  }
}

// The epochs from the resumed one on: train, evaluate, print the progress line, append the CSV
// row, write the checkpoints.
void train_epochs(Training& t, TrainingTask& task, const Flags& flags, const RunFlags& f,
                  const std::vector<std::string>& recorded, const ResumePoint& from, const QatSpec& qat, bool writer) {
  const std::string& resume = f.files.resume;
  const std::string& log_path = f.files.log_path;
  const std::string& checkpoint_dir = f.files.checkpoint_dir;
  const int64_t epochs = f.schedule.epochs;
  const bool top5 = task.reports_top5();
  CsvLog log(writer ? log_path : std::string(), std::string("epoch,lr,train_loss,train_acc,test_loss,test_acc,") + (top5 ? "test_top5," : "") +
                           "epoch_seconds,images_per_second,bits_per_coordinate,mean_variance,qat");
  if (!resume.empty() && log.enabled()) log.keep_rows_of(log_path, from.epochs_done);
  double best = from.best;
  // Named when training diverges: nothing is written after that, so it stays as it is.
  std::string last_saved = resume.empty() ? "" : resume + " (epoch " + std::to_string(from.epochs_done) + ")";
  for (int64_t epoch = from.epochs_done; epoch < epochs; ++epoch) {
    const float epoch_lr = t.schedule.lr_at(epoch, 0);
    EpochResult train, test;
    try {
      qat_start_epoch(*t.model, epoch, f.qat);
      train = t.trainer->train_epoch(*t.train_source, epoch, epochs);
      test = evaluate(*t.model, *t.test_source, epoch);
      check_finite_loss(test.loss, str("the evaluation after epoch ", epoch + 1), epoch_lr);
    } catch (const TrainingDiverged& e) {
      throw Error(str(e.what(), last_saved.empty() ? "" : " The last checkpoint, " + last_saved + ", is kept."));
    }
    const double rate = train.images / std::max(train.seconds, 1e-9);
    std::printf("epoch %lld/%lld lr %.5f train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%%", (long long)epoch + 1,
                (long long)epochs, epoch_lr, train.loss, 100 * train.accuracy, test.loss, 100 * test.accuracy);
    if (top5) std::printf(" top-5 %.2f%%", 100 * test.top5);
    std::printf(" | %.1fs %.0f img/s", train.seconds, rate);
    if (t.hook) std::printf(" | %.2f bits/coord, variance %.4g", train.bits_per_coordinate, train.mean_variance);
    if (t.exchange)
      std::printf(" | sent %.2f MB, %.1f KB/step", double(train.bytes_sent) / 1e6, double(train.bytes_sent) / 1e3 / double(std::max<int64_t>(train.steps, 1)));
    if (qat.method != QatMethod::None) std::printf(" | qat %s", qat_label(qat).c_str());
    std::printf("\n");
    std::fflush(stdout);
    log.append(str(epoch + 1, ",", epoch_lr, ",", train.loss, ",", train.accuracy, ",", test.loss, ",", test.accuracy,
                   ",", top5 ? str(test.top5, ",") : std::string(), train.seconds, ",", rate, ",",
                   train.bits_per_coordinate, ",", train.mean_variance, ",", qat_label(qat)));
    const bool improved = test.accuracy > best;
    best = std::max(best, test.accuracy);
    if (!checkpoint_dir.empty() && writer) {
      std::map<std::string, std::string> meta = {{"arch", task.arch()}, {"epoch", std::to_string(epoch + 1)},
                                                 {"best_accuracy", str(best)}};
      record_settings(flags, recorded, meta);
      const std::vector<NamedTensor> quant_state = t.hook ? t.hook->state(kQuantizationPrefix) : std::vector<NamedTensor>{};
      save_checkpoint(checkpoint_dir + "/last.safetensors", *t.model, *t.sgd, meta, quant_state);
      if (improved) save_checkpoint(checkpoint_dir + "/best.safetensors", *t.model, *t.sgd, meta, quant_state);
      last_saved = checkpoint_dir + "/last.safetensors (epoch " + std::to_string(epoch + 1) + ")";
    }
  }
  std::printf("best test accuracy %.2f%%\n", 100 * best);
}

}  // namespace

int run_training(const std::string& app, const std::string& description, TrainingTask& task,
                 const RunDefaults& defaults, int argc, char** argv) {
  const Place place = join_world(app);
  Flags flags(app, description);
  task.add_flags(flags);
  RunFlags f = add_run_flags(flags, defaults);
  if (!task.has_qat_models())
    flags.withhold(kQatOnlyFlags, "quantization-aware training is for the CIFAR ResNets (./apps/cifar); ./apps/" + app +
                                      " has no QAT models");
  flags.parse(argc, argv);
  const std::vector<std::string> recorded = recorded_settings(task);
  const std::string& resume = f.files.resume;
  const bool evaluate_only = f.files.evaluate_only;

  if (evaluate_only && resume.empty()) flags.fail("--evaluate evaluates a trained model: give it with --resume CHECKPOINT");
  if (evaluate_only) {
    // A QAT export (docs/qat-export.md) is evaluated by the app's integer engine instead.
    const SafetensorsFile file = load_safetensors(resume);
    if (file.metadata.count("format") && file.metadata.at("format") == kQatExportFormat)
      return evaluate_integer_export(app, task, flags, file, f.files.limit_train, f.files.limit_test,
                                     f.device.loader_threads);
  }
  const ResumePoint from = read_resume_point(flags, resume, recorded, task);
  ScheduleFlags& sf = f.schedule;
  if (defaults.lr_reference_batch > 0 && !flags.was_set("--lr") && !from.checkpoint.metadata.count(setting_key("--lr")) &&
      sf.batch_size != defaults.lr_reference_batch) {
    sf.lr = defaults.lr * double(sf.batch_size) / double(defaults.lr_reference_batch);
    std::printf("note: lr %g (%g per %lld images, batch %lld)\n", sf.lr, defaults.lr,
                (long long)defaults.lr_reference_batch, (long long)sf.batch_size);
  }
  CheckedSettings settings = check_settings(flags, f, task, from, place.ranks);
  if (!resume.empty() && !evaluate_only && f.qat.export_path.empty() && f.variance.steps == 0 &&
      from.epochs_done >= sf.epochs) {
    if (flags.was_set("--epochs"))
      flags.fail(str("--epochs ", sf.epochs, ": the checkpoint ", resume, " has already completed ", from.epochs_done,
                     " epochs; give more to train further"));
    std::printf("%s: the run is complete (%lld of %lld epochs, best test accuracy %.2f%%); give --epochs N to train further\n",
                resume.c_str(), (long long)from.epochs_done, (long long)sf.epochs, 100 * from.best);
    return 0;
  }
  // Every place the run writes to is checked now, not after the first epoch.
  if (!evaluate_only && place.writer) {
    if (!f.files.checkpoint_dir.empty()) prepare_output_folder("--checkpoint", f.files.checkpoint_dir);
    if (!f.files.log_path.empty()) check_output_file("--log", f.files.log_path);
    if (f.variance.steps > 0) check_output_file("--variance-out", f.variance.out + ".csv");
  }
  const Device dev = choose_device(app, flags, f.device, settings.qat);

  if (!f.qat.export_path.empty()) {
    export_checkpoint(task, f, from, settings.qat, dev);
    return 0;
  }

  Training t(task, f, settings, dev, place);
  if (t.exchange)
    std::printf("distributed: %d ranks (%s), exchange %s: %lld coordinates quantized, %lld in fp32\n", place.ranks,
                t.exchange->communicator().transport().c_str(), exchange_algorithm_name(t.exchange->algorithm()).c_str(),
                (long long)t.exchange->quantized_coordinates(), (long long)t.exchange->fp32_coordinates());
  std::printf("training: %s, batch %lld x %lld worker(s), quantizer %s (bucket %lld, %lld levels%s)\n",
              sf.kind.c_str(), (long long)sf.batch_size, (long long)f.quant.workers, f.quant.scheme.c_str(),
              (long long)f.quant.bucket_size, (long long)f.quant.levels, f.quant.per_layer ? ", per layer" : ", network-wide");

  if (f.variance.steps > 0) {
    VarianceRecorder recorder(settings.measured, settings.quant_options, static_cast<uint64_t>(sf.seed));
    measure_variance(*t.model, *t.trainer, *t.train_source, recorder, f.variance.steps, f.variance.out);
    return 0;
  }
  if (!resume.empty()) restore(t, f, from);
  std::printf("model: %s, %lld parameters, qat %s\n", task.describe_model().c_str(), (long long)t.model->num_parameters(),
              qat_label(settings.qat).c_str());

  if (evaluate_only) {
    EpochResult test = evaluate(*t.model, *t.test_source, from.epochs_done);
    std::printf("test: loss %.4f accuracy %.2f%%", test.loss, 100 * test.accuracy);
    if (task.reports_top5()) std::printf(" top-5 %.2f%%", 100 * test.top5);
    std::printf(" (%lld images, %.1fs)\n", (long long)test.images, test.seconds);
    return 0;
  }
  train_epochs(t, task, flags, f, recorded, from, settings.qat, place.writer);
  return 0;
}

int guarded_main(const std::string& app, const std::function<int()>& body) {
  std::string message;
  try {
    return body();
  } catch (const Error& e) {
    message = e.what();
  } catch (const std::bad_alloc&) {
    message = "out of memory";
  } catch (const std::exception& e) {
    message = std::string("unexpected error: ") + e.what();
  }
  // One rank of several: the others may be waiting for it in a collective; end them all.
  abort_mpi_job(app + ": " + message);
  std::fprintf(stderr, "%s: %s\n", app.c_str(), message.c_str());
  return 1;
}

}  // namespace qnn
