// Training progress for the terminal and for files.
//
// Progress: on a terminal, one line per epoch redrawn in place (a bar, loss, accuracy, images/s
// and time left), at most ten times a second; when stdout is a file or a pipe, nothing until the
// epoch's summary line, so logs stay readable. CsvLog: one row per epoch, the whole file
// rewritten to a temporary file and renamed each time, so a crash never leaves half a row.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "train/flags.h"
#include "tensor/check.h"

namespace qnn {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  Progress(int64_t epoch, int64_t epochs, int64_t batches)
      : epoch_(epoch), epochs_(epochs), batches_(batches), tty_(isatty(fileno(stdout))), start_(Clock::now()) {}

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // Whether update(batch, ...) would draw now: callers whose loss and accuracy live on the GPU
  // read them (a synchronisation) only then.
  bool due(int64_t batch) const { return tty_ && (batch + 1 >= batches_ || seconds() - last_draw_ >= 0.1); }

  void update(int64_t batch, double loss, double accuracy, int64_t images) {
    if (!due(batch)) return;
    const double now = seconds();
    last_draw_ = now;
    const int width = 24, filled = static_cast<int>(width * (batch + 1) / std::max<int64_t>(batches_, 1));
    const double rate = images / std::max(now, 1e-9);
    const double eta = now / (batch + 1) * (batches_ - batch - 1);
    std::printf("\repoch %lld/%lld [%s%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s eta %.0fs   ",
                (long long)epoch_ + 1, (long long)epochs_, std::string(filled, '=').c_str(),
                std::string(width - filled, ' ').c_str(), (long long)batch + 1, (long long)batches_, loss,
                100.0 * accuracy, rate, eta);
    std::fflush(stdout);
  }

  void finish_line() const {
    if (tty_) std::printf("\r\033[K");
  }

 private:
  int64_t epoch_, epochs_, batches_;
  bool tty_;
  Clock::time_point start_;
  double last_draw_ = -1.0;
};

class CsvLog {
 public:
  CsvLog(std::string path, std::string header) : path_(std::move(path)) { rows_.push_back(std::move(header)); }
  bool enabled() const { return !path_.empty(); }
  // Keeps the rows of an earlier run (for --resume) up to and including epoch `last_epoch`.
  void keep_rows_of(const std::string& existing, int64_t last_epoch) {
    std::ifstream in(existing);
    std::string line;
    if (!std::getline(in, line)) return;
    for (int64_t row = 2; std::getline(in, line); ++row) {
      if (line.empty()) continue;
      int64_t epoch = 0;
      QNN_CHECK(parse_int64(line.substr(0, line.find(',')), epoch), existing, ": row ", row,
                " should start with an epoch number, found '", line.substr(0, 40), "'");
      if (epoch <= last_epoch) rows_.push_back(line);
    }
  }
  void append(const std::string& row) {
    rows_.push_back(row);
    if (!enabled()) return;
    const std::string tmp = path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      QNN_CHECK(out.good(), "cannot write log file ", tmp);
      for (const std::string& r : rows_) out << r << "\n";
      QNN_CHECK(out.good(), "error writing log file ", tmp);
    }
    QNN_CHECK(std::rename(tmp.c_str(), path_.c_str()) == 0, "cannot rename ", tmp, " to ", path_);
  }

 private:
  std::string path_;
  std::vector<std::string> rows_;
};

}  // namespace qnn
