// The shared command-line training run (see train/run.h).
#include "train/run.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "dist/exchange.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "nn/init.h"
#include "quant/variance_recorder.h"
#include "tensor/bf16.h"
#include "tensor/device.h"
#include "train/checkpoint.h"
#include "train/output_paths.h"
#include "train/precision.h"
#include "train/qat_setup.h"
#include "train/run_modes.h"
#include "train/run_settings.h"
#include "train/trainer.h"

namespace qnn {

namespace {

std::vector<int64_t> parse_milestones(const std::string& text, const Flags& flags) {
  std::vector<int64_t> out;
  for (const std::string& item : split_commas(text)) {
    int64_t v = 0;
    if (!parse_int64(item, v) || v < 0) flags.fail("bad --milestones '" + text + "' (expected e.g. 81,122,164)");
    out.push_back(v);
  }
  return out;
}

// The shared settings a checkpoint records and --resume takes back (train/run_settings.h); the
// task adds its model settings.
const std::vector<std::string> kScheduleSettings = {"--epochs", "--schedule", "--milestones", "--lr",
                                                    "--batch-size", "--workers", "--limit-train"};
const std::vector<std::string> kQuantSettings = {"--quant", "--bucket-size", "--quant-levels", "--quant-bits",
                                                 "--quant-sample", "--quant-per-layer"};
const std::vector<std::string> kOtherSettings = {"--momentum", "--wd", "--nesterov", "--seed", "--limit-test",
                                                 "--checkpoint", "--log", "--precision"};

bool in(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string valid_schemes() {
  std::string valid;
  for (const std::string& n : quantizer_names()) valid += (valid.empty() ? "" : ", ") + n;
  return valid;
}

}  // namespace

int run_training(const std::string& app, const std::string& description, TrainingTask& task,
                 const RunDefaults& defaults, int argc, char** argv) {
  // Under mpirun: one rank of a data-parallel run (docs/distributed.md). Rank 0 alone prints,
  // writes the log and the checkpoints; the others' standard output is discarded.
  QNN_CHECK(!launched_by_mpirun() || mpi_built(), "started by mpirun, but this ", app,
            " was built without MPI (mpicxx was not found): install libopenmpi-dev and openmpi-bin and make again");
  Communicator* world = launched_by_mpirun() ? &mpi_world() : nullptr;
  const int ranks = world ? world->size() : 1;
  const bool writer = !world || world->rank() == 0;
  if (!writer && !std::freopen("/dev/null", "w", stdout)) throw Error("cannot discard rank " + std::to_string(world->rank()) + "'s output");
  Flags flags(app, description);
  task.add_flags(flags);
  auto& epochs = flags.add_int("--epochs", defaults.epochs, "number of epochs", 1, 1000000);
  auto& batch_size = flags.add_int("--batch-size", defaults.batch_size, "training batch size", 1, 65536);
  auto& lr = flags.add_float("--lr", defaults.lr, "base learning rate", 0);
  auto& momentum = flags.add_float("--momentum", 0.9, "SGD momentum", 0);
  auto& wd = flags.add_float("--wd", 1e-4, "weight decay", 0);
  auto& nesterov = flags.add_bool("--nesterov", "Nesterov momentum");
  auto& schedule_kind = flags.add_string("--schedule", "multistep", "multistep|cosine|onecycle");
  auto& milestones = flags.add_string("--milestones", defaults.milestones, "multistep: epochs where lr is multiplied by 0.1");
  auto& seed = flags.add_int("--seed", 0, "seed for initialisation, shuffling and augmentation", 0);
  auto& device = flags.add_string("--device", "auto", "auto (the GPU when one is usable, else the CPU)|cpu|cuda");
  auto& loader_threads = flags.add_int("--loader-threads", defaults.loader_threads, "threads preparing the next batches on the CPU", 1, 256);
  auto& precision = add_precision_flag(flags);
  auto& no_graph = flags.add_bool("--no-graph", "GPU: run every step eagerly instead of replaying a captured CUDA graph");
  auto& no_cudnn = flags.add_bool("--no-cudnn", "GPU: convolution through qnn's im2col + cuBLAS kernels instead of cuDNN");
  auto& channels_last = flags.add_bool("--channels-last", "GPU: activations stored channels-last (NHWC), the layout cuDNN's fastest convolutions use; same results to rounding");
  auto& deterministic = flags.add_bool("--deterministic", "GPU: deterministic cuDNN algorithms chosen by heuristics, not timing, so a resumed run repeats the results bit for bit (the CPU always does)");
  auto& checkpoint_dir = flags.add_string("--checkpoint", "", "folder for last.safetensors and best.safetensors");
  auto& resume = flags.add_string("--resume", "", "checkpoint file to continue from; the run's settings come from it unless given again");
  auto& evaluate_only = flags.add_bool("--evaluate", "only evaluate the --resume checkpoint on the test set");
  auto& log_path = flags.add_string("--log", "", "per-epoch CSV file");
  auto& limit_train = flags.add_int("--limit-train", 0, "use only the first N training images (0: all)", 0);
  auto& limit_test = flags.add_int("--limit-test", 0, "use only the first N test images (0: all)", 0);
  auto& quant = flags.add_string("--quant", "none", "gradient quantizer: " + valid_schemes());
  auto& bucket_size = flags.add_int("--bucket-size", 512, "quantization bucket size (coordinates)", 1, kMaxBucketSize);
  auto& quant_levels = flags.add_int("--quant-levels", 16, "quantization levels", 2, kMaxLevels);
  auto& quant_bits = flags.add_int("--quant-bits", 0, "qsgd/qinf/nuq/alq/amq: 2^B levels, sign included (0: from --quant-levels)", 0, kMaxBits);
  auto& quant_sample = flags.add_float("--quant-sample", 0.05, "smart: fraction of a bucket sampled as level candidates", 0, 1);
  auto& per_layer = flags.add_bool("--quant-per-layer", "quantize each parameter on its own, not in network-wide buckets");
  auto& workers = flags.add_int("--workers", 1, "emulated data-parallel workers: K batches per step, each gradient quantized on its own, then averaged", 1, 1024);
  auto& exchange_name = flags.add_string("--exchange", "automatic", "under mpirun: how ranks exchange gradients: automatic|fp32|allgather|scatter-reduce (docs/distributed.md)");
  auto& transport = flags.add_string("--transport", "mpi", "under mpirun: mpi, or nccl (GPU collectives; one GPU per rank)");
  auto& check_replicas = flags.add_bool("--check-replicas", "under mpirun: compare a hash of every rank's model after every step");
  auto& variance_steps = flags.add_int("--variance-steps", 0, "measure: N steps of unquantized SGD recording each scheme's variance, then exit", 0, 100000000);
  auto& variance_schemes = flags.add_string("--variance-schemes", "standard,exponential,hadamard,smart", "schemes measured by --variance-steps");
  auto& variance_out = flags.add_string("--variance-out", "variance", "--variance-steps writes PREFIX.csv and PREFIX.png");
  const QatFlags qat = add_qat_flags(flags);
  flags.parse(argc, argv);
  const std::vector<std::string> model_settings = task.model_settings();
  std::vector<std::string> recorded = model_settings;
  for (const std::string& flag : task.data_settings()) recorded.push_back(flag);
  for (const auto* group : {&kQatModelSettings, &kScheduleSettings, &kQatScheduleSettings, &kQuantSettings, &kOtherSettings})
    recorded.insert(recorded.end(), group->begin(), group->end());
  auto shapes_model = [&](const std::string& flag) { return in(model_settings, flag) || in(kQatModelSettings, flag); };

  if (evaluate_only && resume.empty()) flags.fail("--evaluate evaluates a trained model: give it with --resume CHECKPOINT");
  if (evaluate_only) {
    // A QAT export (docs/qat-export.md) is evaluated by the app's integer engine instead.
    const SafetensorsFile file = load_safetensors(resume);
    if (file.metadata.count("format") && file.metadata.at("format") == kQatExportFormat)
      return evaluate_integer_export(app, task, flags, file, limit_train, limit_test, loader_threads);
  }
  // --resume: the checkpoint is read first, so that its settings fill the flags not given again.
  SafetensorsFile checkpoint;
  std::vector<SettingChange> changes;
  int64_t start_epoch = 0;
  double best = 0;
  if (!resume.empty()) {
    checkpoint = read_checkpoint(resume);
    changes = adopt_settings(flags, recorded, checkpoint);
    for (const SettingChange& c : changes)
      QNN_CHECK(!shapes_model(c.flag), resume, ": the checkpoint holds a model built with ", c.flag, " ", c.recorded, "; ",
                c.flag, " ", c.given, " builds another one");
    start_epoch = metadata_int(checkpoint, "epoch");
    best = metadata_number(checkpoint, "best_accuracy");
    QNN_CHECK(best >= 0 && best <= 1, resume, ": metadata 'best_accuracy' should be in [0, 1], found ", best);
  }
  if (defaults.lr_reference_batch > 0 && !flags.was_set("--lr") && !checkpoint.metadata.count(setting_key("--lr")) &&
      batch_size != defaults.lr_reference_batch) {
    lr = defaults.lr * double(batch_size) / double(defaults.lr_reference_batch);
    std::printf("note: lr %g (%g per %lld images, batch %lld)\n", lr, defaults.lr, (long long)defaults.lr_reference_batch,
                (long long)batch_size);
  }
  ExchangeAlgorithm exchange_algorithm = ExchangeAlgorithm::automatic;
  try {
    exchange_algorithm = parse_exchange_algorithm(exchange_name);
  } catch (const Error& e) {
    flags.fail(std::string("--exchange: ") + std::string(e.what()).substr(std::string(e.what()).find("] ") + 2));
  }
  if (ranks > 1) {  // K ranks are K workers, the emulated --workers K made real
    if (!resume.empty() && workers != ranks)
      throw Error(str(resume, ": the checkpoint's run had ", workers, " worker(s); this run has ", ranks,
                      " ranks: resume it with mpirun -np ", workers, " (or without mpirun when it is 1)"));
    if (flags.was_set("--workers") && workers != ranks)
      flags.fail(str("--workers ", workers, " under mpirun with ", ranks, " ranks: the ranks are the workers (leave --workers out)"));
    if (variance_steps > 0) flags.fail("--variance-steps measures in one process: run it without mpirun");
    if (transport != "mpi" && transport != "nccl") flags.fail("bad --transport '" + transport + "'; valid: mpi, nccl");
    workers = ranks;
  }
  const bool quantizer_changed =
      std::any_of(changes.begin(), changes.end(), [](const SettingChange& c) { return in(kQuantSettings, c.flag); });

  QuantizerOptions quant_options;
  quant_options.bucket_size = bucket_size;
  quant_options.levels = static_cast<int>(quant_levels);
  quant_options.bits = static_cast<int>(quant_bits);
  quant_options.sample_fraction = quant_sample;
  std::unique_ptr<GradientQuantizer> quantizer;
  std::vector<std::string> measured = split_commas(variance_schemes);
  try {
    quantizer = make_quantizer(quant, quant_options);
    if (variance_steps > 0)
      for (const std::string& name : measured) make_quantizer(name, quant_options);
  } catch (const Error& e) {
    flags.fail(std::string(e.what()).substr(std::string(e.what()).find("] ") + 2));
  }
  if (quant_bits > 0 && quant_levels != 16 && quant_levels > (int64_t(1) << quant_bits))
    flags.fail("--quant-levels " + std::to_string(quant_levels) + " does not fit in --quant-bits " + std::to_string(quant_bits));
  if (device != "auto" && device != "cpu" && device != "cuda")
    flags.fail("bad --device '" + device + "'; valid: auto, cpu, cuda");
  if (schedule_kind != "multistep" && schedule_kind != "cosine" && schedule_kind != "onecycle")
    flags.fail("bad --schedule '" + schedule_kind + "'; valid: multistep, cosine, onecycle");
  const std::vector<int64_t> milestone_list = parse_milestones(milestones, flags);
  const QatSpec qat_spec_ = qat_spec(qat, flags);
  task.check_flags(flags, qat_spec_);
  if (!resume.empty() && checkpoint.metadata.count("arch"))
    QNN_CHECK(checkpoint.metadata.at("arch") == task.arch(), resume, ": checkpoint is for ",
              checkpoint.metadata.at("arch"), ", --arch is ", task.arch());
  if (!qat.export_path.empty() && resume.empty())
    flags.fail("--export-qat exports a trained model: give it with --resume CHECKPOINT");
  if (!qat.init_weights.empty() && !resume.empty())
    flags.fail("--init-weights starts a new run from a checkpoint's weights; --resume continues a run: give one of them");
  if (!resume.empty() && !evaluate_only && qat.export_path.empty() && variance_steps == 0 && start_epoch >= epochs) {
    if (flags.was_set("--epochs"))
      flags.fail(str("--epochs ", epochs, ": the checkpoint ", resume, " has already completed ", start_epoch,
                     " epochs; give more to train further"));
    std::printf("%s: the run is complete (%lld of %lld epochs, best test accuracy %.2f%%); give --epochs N to train further\n",
                resume.c_str(), (long long)start_epoch, (long long)epochs, 100 * best);
    return 0;
  }
  // Every place the run writes to is checked now, not after the first epoch.
  if (!evaluate_only && writer) {
    if (!checkpoint_dir.empty()) prepare_output_folder("--checkpoint", checkpoint_dir);
    if (!log_path.empty()) check_output_file("--log", log_path);
    if (variance_steps > 0) check_output_file("--variance-out", variance_out + ".csv");
  }

  const CudaStatus& cuda = cuda_status();
  if (device == "cuda" && !cuda.usable) {
    std::fprintf(stderr, "%s: --device cuda: %s; use --device cpu or auto\n", app.c_str(), describe_cuda(cuda).c_str());
    return 1;
  }
  const Device dev = (device == "cuda" || (device == "auto" && cuda.usable)) ? Device::CUDA : Device::CPU;
  apply_precision_flag(flags, precision);
  if (precision == "bf16" && dev == Device::CUDA && qat_spec_.method != QatMethod::None)
    flags.fail("--precision bf16 on the GPU trains float models with bf16 activations; --qat needs --precision fp32 "
               "there (or --device cpu)");
  if (channels_last && dev != Device::CUDA)
    flags.fail("--channels-last is a layout of GPU activations; this run trains on the CPU");
  backend_options().cudnn = !no_cudnn;
  backend_options().deterministic = deterministic;
  backend_options().channels_last = channels_last;
  if (dev == Device::CUDA)
    std::printf("qnn %s: build %s, device cuda: %s%s%s%s%s%s\n", app.c_str(), cuda.built ? "cuda" : "cpu-only",
                describe_cuda(cuda).c_str(), no_graph ? ", no graph" : ", CUDA graph", no_cudnn ? ", no cuDNN" : "",
                channels_last ? ", channels-last" : "", precision == "bf16" ? ", bf16 activations" : "",
                deterministic ? ", deterministic" : "");
  else
    std::printf("qnn %s: build %s, device cpu, threads %d%s\n", app.c_str(), cuda.built ? "cuda" : "cpu-only",
                omp_get_max_threads(),
                precision != "bf16"          ? ""
                : bf16_instructions_built() ? ", bf16 convolutions"
                                            : ", bf16 convolutions (operands rounded, float arithmetic: built without AVX-512 BF16)");
  if (device == "auto" && dev == Device::CPU) std::printf("note: %s; training on the CPU\n", describe_cuda(cuda).c_str());

  // --export-qat writes the checkpoint's QAT model: no data, optimizer step or training needed.
  if (!qat.export_path.empty()) {
    QNN_CHECK(qat_spec_.method != QatMethod::None, "--export-qat needs a QAT checkpoint; ", resume,
              " was trained with --qat none");
    manual_seed(static_cast<uint64_t>(seed));
    const std::shared_ptr<Module> built = task.build_model(qat_spec_);
    built->to(dev);
    SGD sgd(built->flatten(), {float(lr), float(momentum), 0.0f, float(wd), nesterov});
    restore_checkpoint(checkpoint, *built, sgd);
    qat_after_load(*built);
    std::printf("model: %s, %lld parameters, qat %s\n", task.describe_model().c_str(),
                (long long)built->num_parameters(), qat_label(qat_spec_).c_str());
    export_qat(*built, qat.export_path, task.arch(), task.export_metadata());
    return 0;
  }

  task.load_data(limit_train, limit_test);

  manual_seed(static_cast<uint64_t>(seed));
  const std::shared_ptr<Module> built = task.build_model(qat_spec_);
  Module& model = *built;
  model.to(dev);
  if (!qat.init_weights.empty()) init_model_weights(model, qat.init_weights, qat);
  FlatParameters& flat = model.flatten();
  SGD sgd(flat, {float(lr), float(momentum), 0.0f, float(wd), nesterov});

  SourceRequest request;
  request.batch_size = batch_size;
  request.seed = static_cast<uint64_t>(seed);
  request.loader_threads = static_cast<int>(loader_threads);
  request.device = dev;
  std::unique_ptr<BatchSource> train_source = task.make_source(request);
  request.training = false;
  std::unique_ptr<BatchSource> test_source = task.make_source(request);

  LRSchedule schedule;
  schedule.kind = schedule_kind;
  schedule.base_lr = float(lr);
  schedule.milestones = milestone_list;
  schedule.epochs = epochs;
  schedule.steps_per_epoch = Trainer::steps_per_epoch(train_source->batches_per_epoch(), static_cast<int>(workers));
  validate(schedule);

  std::unique_ptr<GradientQuantizationHook> hook;
  if (quantizer) {
    HookOptions hook_options;
    hook_options.seed = static_cast<uint64_t>(seed);
    hook_options.flattening = per_layer ? Flattening::per_layer : Flattening::network_wide;
    hook_options.record_variance = true;
    hook = std::make_unique<GradientQuantizationHook>(std::move(quantizer), hook_options);
    if (workers == 1) hook->install(flat);
    else hook->set_layer_sizes([&] {
      std::vector<int64_t> sizes;
      for (const Variable& p : flat.leaves()) sizes.push_back(p.numel());
      return sizes;
    }());
  }
  // QAT steps make host-side decisions (an observer's first range, LSQ's initial step): no CUDA graph.
  const bool graph = !no_graph && variance_steps == 0 && qat_spec_.method == QatMethod::None;
  Trainer trainer(model, sgd, schedule, hook.get(), static_cast<int>(workers), graph);
  std::unique_ptr<GradientExchange> exchange;
  std::unique_ptr<Communicator> nccl;
  if (ranks > 1) {
    if (transport == "nccl") {
      QNN_CHECK(dev == Device::CUDA, "--transport nccl exchanges between GPUs: train on them (--device cuda)");
      nccl = make_nccl_communicator(*world);
    }
    exchange = std::make_unique<GradientExchange>(nccl ? *nccl : *world, hook.get(), exchange_layers(flat), ExchangeOptions{exchange_algorithm});
    trainer.set_exchange(exchange.get(), check_replicas);
    std::printf("distributed: %d ranks (%s), exchange %s: %lld coordinates quantized, %lld in fp32\n", ranks,
                exchange->communicator().transport().c_str(), exchange_algorithm_name(exchange->algorithm()).c_str(),
                (long long)exchange->quantized_coordinates(), (long long)exchange->fp32_coordinates());
  }
  std::printf("training: %s, batch %lld x %lld worker(s), quantizer %s (bucket %lld, %lld levels%s)\n",
              schedule_kind.c_str(), (long long)batch_size, (long long)workers, quant.c_str(), (long long)bucket_size,
              (long long)quant_levels, per_layer ? ", per layer" : ", network-wide");

  if (variance_steps > 0) {
    VarianceRecorder recorder(measured, quant_options, static_cast<uint64_t>(seed));
    measure_variance(model, trainer, *train_source, recorder, variance_steps, variance_out);
    return 0;
  }

  if (!resume.empty()) {
    restore_checkpoint(checkpoint, model, sgd);
    qat_after_load(model);
    if (hook && !quantizer_changed) {
      // The hook's step and the adaptive schemes' fitted levels (quant/hook.h); a checkpoint
      // of an older format records the step alone, in its metadata.
      if (checkpoint.has(std::string(kQuantizationPrefix) + "step")) hook->load_state(checkpoint, kQuantizationPrefix);
      else if (checkpoint.metadata.count("quant_step")) hook->set_step(metadata_int(checkpoint, "quant_step"));
      else throw Error(str(resume, ": the checkpoint's run used --quant ", quant, " but it holds no quantizer state (",
                           kQuantizationPrefix, "step)"));
    }
    std::printf("resumed %s: %lld epochs done, best test accuracy %.2f%%\n", resume.c_str(), (long long)start_epoch,
                100 * best);
    for (const SettingChange& c : changes) {
      std::string effect = "the new value applies from here on";
      if (in(kScheduleSettings, c.flag))
        effect = str("the learning-rate schedule changes: epoch ", start_epoch + 1, " starts at lr ",
                     schedule.lr_at(std::min(start_epoch, epochs - 1), 0));
      else if (c.flag == "--seed")
        effect = "data order and augmentation follow the new seed: not a bit-identical continuation";
      else if (in(kQuantSettings, c.flag))
        effect = "the gradient quantizer starts afresh; the checkpoint's quantizer state is not loaded";
      std::printf("note: %s %s given, the checkpoint's run had %s: %s\n", c.flag.c_str(), c.given.c_str(),
                  c.recorded.c_str(), effect.c_str());
    }
  }
  std::printf("model: %s, %lld parameters, qat %s\n", task.describe_model().c_str(), (long long)model.num_parameters(),
              qat_label(qat_spec_).c_str());

  const bool top5 = task.reports_top5();
  if (evaluate_only) {
    EpochResult test = evaluate(model, *test_source, start_epoch);
    std::printf("test: loss %.4f accuracy %.2f%%", test.loss, 100 * test.accuracy);
    if (top5) std::printf(" top-5 %.2f%%", 100 * test.top5);
    std::printf(" (%lld images, %.1fs)\n", (long long)test.images, test.seconds);
    return 0;
  }

  CsvLog log(writer ? log_path : std::string(), std::string("epoch,lr,train_loss,train_acc,test_loss,test_acc,") + (top5 ? "test_top5," : "") +
                           "epoch_seconds,images_per_second,bits_per_coordinate,mean_variance,qat");
  if (!resume.empty() && log.enabled()) log.keep_rows_of(log_path, start_epoch);
  // Named when training diverges: nothing is written after that, so it stays as it is.
  std::string last_saved = resume.empty() ? "" : resume + " (epoch " + std::to_string(start_epoch) + ")";
  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    const float epoch_lr = schedule.lr_at(epoch, 0);
    EpochResult train, test;
    try {
      qat_start_epoch(model, epoch, qat);
      train = trainer.train_epoch(*train_source, epoch, epochs);
      test = evaluate(model, *test_source, epoch);
      check_finite_loss(test.loss, str("the evaluation after epoch ", epoch + 1), epoch_lr);
    } catch (const TrainingDiverged& e) {
      throw Error(str(e.what(), last_saved.empty() ? "" : " The last checkpoint, " + last_saved + ", is kept."));
    }
    const double rate = train.images / std::max(train.seconds, 1e-9);
    std::printf("epoch %lld/%lld lr %.5f train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%%", (long long)epoch + 1,
                (long long)epochs, epoch_lr, train.loss, 100 * train.accuracy, test.loss, 100 * test.accuracy);
    if (top5) std::printf(" top-5 %.2f%%", 100 * test.top5);
    std::printf(" | %.1fs %.0f img/s", train.seconds, rate);
    if (hook) std::printf(" | %.2f bits/coord, variance %.4g", train.bits_per_coordinate, train.mean_variance);
    if (exchange)
      std::printf(" | sent %.2f MB, %.1f KB/step", double(train.bytes_sent) / 1e6, double(train.bytes_sent) / 1e3 / double(std::max<int64_t>(train.steps, 1)));
    if (qat_spec_.method != QatMethod::None) std::printf(" | qat %s", qat_label(qat_spec_).c_str());
    std::printf("\n");
    std::fflush(stdout);
    log.append(str(epoch + 1, ",", epoch_lr, ",", train.loss, ",", train.accuracy, ",", test.loss, ",", test.accuracy,
                   ",", top5 ? str(test.top5, ",") : std::string(), train.seconds, ",", rate, ",",
                   train.bits_per_coordinate, ",", train.mean_variance, ",", qat_label(qat_spec_)));
    const bool improved = test.accuracy > best;
    best = std::max(best, test.accuracy);
    if (!checkpoint_dir.empty() && writer) {
      std::map<std::string, std::string> meta = {{"arch", task.arch()}, {"epoch", std::to_string(epoch + 1)},
                                                 {"best_accuracy", str(best)}};
      record_settings(flags, recorded, meta);
      const std::vector<NamedTensor> quant_state = hook ? hook->state(kQuantizationPrefix) : std::vector<NamedTensor>{};
      save_checkpoint(checkpoint_dir + "/last.safetensors", model, sgd, meta, quant_state);
      if (improved) save_checkpoint(checkpoint_dir + "/best.safetensors", model, sgd, meta, quant_state);
      last_saved = checkpoint_dir + "/last.safetensors (epoch " + std::to_string(epoch + 1) + ")";
    }
  }
  std::printf("best test accuracy %.2f%%\n", 100 * best);
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
