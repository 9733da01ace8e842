// The checks of a training run's settings (train/run_flags.h): what --resume brings, the final
// values against each other, the task and the checkpoint, and the device they choose.
#include "train/run_flags.h"

#include <omp.h>

#include <cstdio>

#include "tensor/bf16.h"
#include "tensor/device.h"
#include "train/checkpoint.h"

namespace qnn {

namespace {

// The message of a library Error without its "[op] " prefix, for a flag error.
std::string without_op(const Error& e) {
  const std::string what = e.what();
  return what.substr(what.find("] ") + 2);
}

std::vector<int64_t> parse_milestones(const std::string& text, const Flags& flags) {
  std::vector<int64_t> out;
  for (const std::string& item : split_commas(text)) {
    int64_t v = 0;
    if (!parse_int64(item, v) || v < 0) flags.fail("bad --milestones '" + text + "' (expected e.g. 81,122,164)");
    out.push_back(v);
  }
  return out;
}

}  // namespace

std::vector<std::string> recorded_settings(const TrainingTask& task) {
  std::vector<std::string> recorded = task.model_settings();
  for (const std::string& flag : task.data_settings()) recorded.push_back(flag);
  for (const auto* group : {&kQatModelSettings, &kScheduleSettings, &kQatScheduleSettings, &kQuantSettings, &kOtherSettings})
    recorded.insert(recorded.end(), group->begin(), group->end());
  return recorded;
}

ResumePoint read_resume_point(Flags& flags, const std::string& path, const std::vector<std::string>& recorded,
                              const TrainingTask& task) {
  ResumePoint from;
  if (path.empty()) return from;
  from.checkpoint = read_checkpoint(path);
  from.changes = adopt_settings(flags, recorded, from.checkpoint);
  const std::vector<std::string> model_settings = task.model_settings();
  for (const SettingChange& c : from.changes)
    QNN_CHECK(!is_one_of(model_settings, c.flag) && !is_one_of(kQatModelSettings, c.flag), path,
              ": the checkpoint holds a model built with ", c.flag, " ", c.recorded, "; ", c.flag, " ", c.given,
              " builds another one");
  from.epochs_done = metadata_int(from.checkpoint, "epoch");
  from.best = metadata_number(from.checkpoint, "best_accuracy");
  QNN_CHECK(from.best >= 0 && from.best <= 1, path, ": metadata 'best_accuracy' should be in [0, 1], found ", from.best);
  return from;
}

CheckedSettings check_settings(const Flags& flags, RunFlags& f, TrainingTask& task, const ResumePoint& from,
                               int ranks) {
  const std::string& resume = f.files.resume;
  CheckedSettings s;
  try {
    s.exchange = parse_exchange_algorithm(f.distributed.exchange);
  } catch (const Error& e) {
    flags.fail("--exchange: " + without_op(e));
  }
  int64_t& workers = f.quant.workers;
  if (ranks > 1) {  // K ranks are K workers, the emulated --workers K made real
    if (!resume.empty() && workers != ranks)
      throw Error(str(resume, ": the checkpoint's run had ", workers, " worker(s); this run has ", ranks,
                      " ranks: resume it with mpirun -np ", workers, " (or without mpirun when it is 1)"));
    if (flags.was_set("--workers") && workers != ranks)
      flags.fail(str("--workers ", workers, " under mpirun with ", ranks, " ranks: the ranks are the workers (leave --workers out)"));
    if (f.variance.steps > 0) flags.fail("--variance-steps measures in one process: run it without mpirun");
    if (f.distributed.transport != "mpi" && f.distributed.transport != "nccl")
      flags.fail("bad --transport '" + f.distributed.transport + "'; valid: mpi, nccl");
    workers = ranks;
  }
  s.quant_options.bucket_size = f.quant.bucket_size;
  s.quant_options.levels = static_cast<int>(f.quant.levels);
  s.quant_options.bits = static_cast<int>(f.quant.bits);
  s.quant_options.sample_fraction = f.quant.sample;
  s.measured = split_commas(f.variance.schemes);
  try {
    s.quantizer = make_quantizer(f.quant.scheme, s.quant_options);
    if (f.variance.steps > 0)
      for (const std::string& name : s.measured) make_quantizer(name, s.quant_options);
  } catch (const Error& e) {
    flags.fail(without_op(e));
  }
  if (f.quant.bits > 0 && f.quant.levels != 16 && f.quant.levels > (int64_t(1) << f.quant.bits))
    flags.fail("--quant-levels " + std::to_string(f.quant.levels) + " does not fit in --quant-bits " + std::to_string(f.quant.bits));
  const std::string& device = f.device.device;
  if (device != "auto" && device != "cpu" && device != "cuda")
    flags.fail("bad --device '" + device + "'; valid: auto, cpu, cuda");
  const std::string& kind = f.schedule.kind;
  if (kind != "multistep" && kind != "cosine" && kind != "onecycle")
    flags.fail("bad --schedule '" + kind + "'; valid: multistep, cosine, onecycle");
  s.milestones = parse_milestones(f.schedule.milestones, flags);
  try {
    s.qat = qat_spec(f.qat);
  } catch (const FlagError& e) {
    flags.fail(e.what());
  }
  task.check_flags(flags, s.qat);
  if (!resume.empty() && from.checkpoint.metadata.count("arch"))
    QNN_CHECK(from.checkpoint.metadata.at("arch") == task.arch(), resume, ": checkpoint is for ",
              from.checkpoint.metadata.at("arch"), ", --arch is ", task.arch());
  if (!f.qat.export_path.empty() && resume.empty())
    flags.fail("--export-qat exports a trained model: give it with --resume CHECKPOINT");
  if (!f.qat.init_weights.empty() && !resume.empty())
    flags.fail("--init-weights starts a new run from a checkpoint's weights; --resume continues a run: give one of them");
  return s;
}

Device choose_device(const std::string& app, const Flags& flags, const DeviceFlags& d, const QatSpec& qat) {
  const CudaStatus& cuda = cuda_status();
  if (d.device == "cuda" && !cuda.usable)
    throw Error(str("--device cuda: ", describe_cuda(cuda), "; use --device cpu or auto"));
  const Device dev = (d.device == "cuda" || (d.device == "auto" && cuda.usable)) ? Device::CUDA : Device::CPU;
  apply_precision_flag(flags, d.precision);
  const bool bf16 = d.precision == "bf16";
  if (bf16 && dev == Device::CUDA && qat.method != QatMethod::None)
    flags.fail("--precision bf16 on the GPU trains float models with bf16 activations; --qat needs --precision fp32 "
               "there (or --device cpu)");
  if (d.channels_last && dev != Device::CUDA)
    flags.fail("--channels-last is a layout of GPU activations; this run trains on the CPU");
  backend_options().cudnn = !d.no_cudnn;
  backend_options().deterministic = d.deterministic;
  backend_options().channels_last = d.channels_last;
  const char* build = cuda.built ? "cuda" : "cpu-only";
  if (dev == Device::CUDA)
    std::printf("qnn %s: build %s, device cuda: %s%s%s%s%s%s\n", app.c_str(), build, describe_cuda(cuda).c_str(),
                d.no_graph ? ", no graph" : ", CUDA graph", d.no_cudnn ? ", no cuDNN" : "",
                d.channels_last ? ", channels-last" : "", bf16 ? ", bf16 activations" : "",
                d.deterministic ? ", deterministic" : "");
  else
    std::printf("qnn %s: build %s, device cpu, threads %d%s\n", app.c_str(), build, omp_get_max_threads(),
                !bf16                        ? ""
                : bf16_instructions_built() ? ", bf16 convolutions"
                                            : ", bf16 convolutions (operands rounded, float arithmetic: built without AVX-512 BF16)");
  if (d.device == "auto" && dev == Device::CPU) std::printf("note: %s; training on the CPU\n", describe_cuda(cuda).c_str());
  return dev;
}

}  // namespace qnn
