// A small command-line parser for the apps: declare flags with defaults and help, parse, done.
//
//   Flags f("cifar", "Train a ResNet on CIFAR-10.");
//   auto& epochs = f.add_int("--epochs", 200, "number of epochs");
//   f.parse(argc, argv);   // --help prints every flag with its default and exits 0;
//                          // an unknown flag or a bad value prints the usage line and exits 2
// Values are written as "--name value" or "--name=value"; boolean flags take no value.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace qnn {

// A flag value such as "81,122,164" split at its commas ("" gives none; empty items are kept,
// so that the caller can reject them).
inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (!text.empty()) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

class Flags {
 public:
  Flags(std::string program, std::string description)
      : program_(std::move(program)), description_(std::move(description)) {}

  std::string& add_string(const std::string& name, std::string value, const std::string& help) {
    strings_.push_back(std::move(value));
    std::string* target = &strings_.back();
    add(name, "STR", *target, help, [target](const std::string& v) { *target = v; return true; });
    return *target;
  }
  int64_t& add_int(const std::string& name, int64_t value, const std::string& help) {
    ints_.push_back(value);
    int64_t* target = &ints_.back();
    add(name, "N", std::to_string(value), help, [target](const std::string& v) {
      char* end = nullptr;
      const long long parsed = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') return false;
      *target = parsed;
      return true;
    });
    return *target;
  }
  double& add_float(const std::string& name, double value, const std::string& help) {
    floats_.push_back(value);
    double* target = &floats_.back();
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    add(name, "X", text, help, [target](const std::string& v) {
      char* end = nullptr;
      const double parsed = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0') return false;
      *target = parsed;
      return true;
    });
    return *target;
  }
  bool& add_bool(const std::string& name, const std::string& help) {
    bools_.push_back(false);
    bool* target = &bools_.back();
    flags_.push_back({name, "", "off", help, [target](const std::string&) { *target = true; return true; }, false});
    return *target;
  }

  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i], value;
      if (arg == "--help" || arg == "-h") {
        print_help();
        std::exit(0);
      }
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) value = arg.substr(eq + 1), arg = arg.substr(0, eq);
      Flag* flag = find(arg);
      if (!flag) fail("unknown flag '" + arg + "'");
      if (flag->takes_value && eq == std::string::npos) {
        if (i + 1 >= argc) fail(arg + " needs a value (" + flag->metavar + ")");
        value = argv[++i];
      }
      if (!flag->set(value)) fail("bad value '" + value + "' for " + arg + " (expected " + flag->metavar + ")");
    }
  }

  // Prints "program: message", the usage line and a pointer to --help, then exits with 2.
  [[noreturn]] void fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n%s\nRun '%s --help' for every flag.\n", program_.c_str(), message.c_str(),
                 usage().c_str(), program_.c_str());
    std::exit(2);
  }

  std::string usage() const {
    std::string u = "usage: " + program_;
    for (const Flag& f : flags_) u += " [" + f.name + (f.takes_value ? " " + f.metavar : "") + "]";
    return u;
  }

  void print_help() const {
    std::printf("%s\n\n%s\n\nflags:\n", usage().c_str(), description_.c_str());
    for (const Flag& f : flags_) {
      std::string left = "  " + f.name + (f.takes_value ? " " + f.metavar : "");
      std::printf("%-28s %s (default: %s)\n", left.c_str(), f.help.c_str(), f.default_text.empty() ? "\"\"" : f.default_text.c_str());
    }
  }

 private:
  struct Flag {
    std::string name, metavar, default_text, help;
    std::function<bool(const std::string&)> set;
    bool takes_value = true;
  };
  void add(const std::string& name, const std::string& metavar, const std::string& default_text,
           const std::string& help, std::function<bool(const std::string&)> set) {
    flags_.push_back({name, metavar, default_text, help, std::move(set), true});
  }
  Flag* find(const std::string& name) {
    for (Flag& f : flags_)
      if (f.name == name) return &f;
    return nullptr;
  }

  std::string program_, description_;
  std::vector<Flag> flags_;
  std::deque<std::string> strings_;  // deques keep the returned references valid
  std::deque<int64_t> ints_;
  std::deque<double> floats_;
  std::deque<bool> bools_;
};

}  // namespace qnn
