// Benchmark: images/s on one core of the image-folder loader (data/image_folder_source.h):
// read, decode, transform and normalise into float32 NCHW batches of 32, for the training
// transform (RandomResizedCrop(224) + flip) and the evaluation one (Resize(256) +
// CenterCrop(224)), with stb_image and (when built) TurboJPEG decoding the JPEGs. The folder is
// cycled to --images samples (default 128) so that small folders still time several batches.
// The loader runs with workers = 0, building each batch on the calling thread: a per-core
// figure. In the same invocation it runs bench/image_loader_torch.py (PyTorch's DataLoader with
// PIL and torchvision, num_workers=0, one thread) under /usr/bin/python3 when both are found,
// from the repository root or from bench/, and prints qnn's ratio to it; and the load average,
// since other work on the machine slows every figure.
//   build/bench/image_loader --dir FOLDER [--images 128] [--batch-size 32] [--no-torch]
//   e.g. build/bench/image_loader --dir $HYMENOPTERA_DIR/train
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "data/image_folder_source.h"
#include "data/loader.h"

using namespace qnn;

namespace {

double images_per_second(const ImageFolder& folder, bool train, ImageDecoder decoder, int64_t batch_size) {
  ImageFolderOptions options;
  options.train = train;
  options.decoder = decoder;
  const ImageFolderSource source(folder, options);
  LoaderConfig config;
  config.batch_size = batch_size;
  config.workers = 0;
  config.shuffle = train;
  Loader loader(source, config);
  loader.start_epoch(1000);  // warm-up: the first batch of another epoch
  Batch batch;
  loader.next(batch);
  loader.start_epoch(0);
  int64_t seen = 0;
  const auto start = std::chrono::steady_clock::now();
  while (loader.next(batch)) seen += batch.images.shape()[0];
  return seen / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// Runs the PyTorch peer; its lines "torch train: R images/s ..." as {"train": R, "eval": R}.
std::map<std::string, double> torch_rates(const std::string& dir, int64_t images, int64_t batch_size) {
  std::map<std::string, double> rates;
  std::string script;
  for (const char* candidate : {"bench/image_loader_torch.py", "image_loader_torch.py"})
    if (std::ifstream(candidate).good()) script = candidate;
  if (script.empty() || !std::ifstream("/usr/bin/python3").good()) {
    std::printf("torch: not run (needs bench/image_loader_torch.py here and /usr/bin/python3)\n");
    return rates;
  }
  const std::string command = "/usr/bin/python3 " + script + " --dir '" + dir + "' --images " +
                              std::to_string(images) + " --batch-size " + std::to_string(batch_size);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return rates;
  char line[512];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::printf("%s", line);
    char which[16];
    double rate = 0;
    if (std::sscanf(line, "torch %15[a-z]: %lf", which, &rate) == 2) rates[which] = rate;
  }
  pclose(pipe);
  return rates;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int64_t images = 128, batch_size = 32;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (arg == "--images" && i + 1 < argc) images = std::atoll(argv[++i]);
    else if (arg == "--batch-size" && i + 1 < argc) batch_size = std::atoll(argv[++i]);
    else if (arg == "--no-torch") torch = false;
    else {
      std::fprintf(stderr, "usage: %s --dir FOLDER [--images 128] [--batch-size 32] [--no-torch]\n", argv[0]);
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "image_loader: --dir FOLDER is required (an ImageFolder layout, e.g. $HYMENOPTERA_DIR/train)\n");
    return 2;
  }
  try {
    const ImageFolder scanned = scan_image_folder(dir);
    ImageFolder folder = scanned;  // cycled to `images` samples
    folder.samples.clear();
    for (int64_t i = 0; i < images; ++i) folder.samples.push_back(scanned.samples[i % scanned.count()]);
    std::printf("image loader: %s (%lld images cycled to %lld), batch %lld, one core; load average %s\n",
                dir.c_str(), static_cast<long long>(scanned.count()), static_cast<long long>(images),
                static_cast<long long>(batch_size), load_average().c_str());
    std::vector<ImageDecoder> decoders{ImageDecoder::stb};
    if (turbojpeg_available()) decoders.push_back(ImageDecoder::turbojpeg);
    std::map<std::string, double> best;  // per transform, the faster decoder's rate
    for (bool train : {true, false}) {
      const std::string name = train ? "train" : "eval";
      for (ImageDecoder decoder : decoders) {
        const double rate = images_per_second(folder, train, decoder, batch_size);
        std::printf("qnn %s %s: %.1f images/s\n", name.c_str(), jpeg_decoder_name(decoder), rate);
        if (rate > best[name]) best[name] = rate;
      }
    }
    if (torch) {
      const std::map<std::string, double> peer = torch_rates(dir, images, batch_size);
      for (const auto& [name, rate] : peer)
        if (best.count(name)) std::printf("ratio qnn / torch, %s: %.2fx\n", name.c_str(), best[name] / rate);
    }
    std::printf("load average after: %s\n", load_average().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
