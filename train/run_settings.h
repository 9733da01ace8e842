// A run's settings, recorded in its checkpoints and taken back on --resume.
//
// Each setting is a flag whose value is written into the checkpoint's metadata as
// "setting.<flag without -->" (e.g. setting.lr = 0.10000000000000001), in the text that
// Flags::set_value() reads back bit for bit. On --resume every recorded setting that the command
// line does not give again takes the checkpoint's value, so `--resume ck/last.safetensors` alone
// continues the interrupted run as it was started: same schedule over the same epochs, same
// quantizer, same log and checkpoint folder. A setting given again with another value is a
// change the app must refuse or announce (adopt_settings returns them). A recorded value that
// does not parse is an error naming the checkpoint and the setting.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "train/flags.h"
#include "tensor/check.h"
#include "tensor/safetensors.h"

namespace qnn {

// A setting the command line gives with a value other than the checkpoint's.
struct SettingChange {
  std::string flag, given, recorded;
};

inline std::string setting_key(const std::string& flag) { return "setting." + flag.substr(2); }

// Writes each flag's current value into `metadata`.
inline void record_settings(const Flags& flags, const std::vector<std::string>& names,
                            std::map<std::string, std::string>& metadata) {
  for (const std::string& name : names) metadata[setting_key(name)] = flags.value_text(name);
}

// Takes each recorded setting the command line did not give; returns the ones it gave with a
// different value. Settings the checkpoint does not record keep the command line's value.
inline std::vector<SettingChange> adopt_settings(Flags& flags, const std::vector<std::string>& names,
                                                 const SafetensorsFile& checkpoint) {
  std::vector<SettingChange> changes;
  for (const std::string& name : names) {
    auto it = checkpoint.metadata.find(setting_key(name));
    if (it == checkpoint.metadata.end()) continue;
    if (flags.was_set(name)) {
      // Compare as the flag reads them, so "0.1" and "0.10000000000000001" are the same value.
      const std::string given = flags.value_text(name);
      try {
        flags.set_value(name, it->second);
      } catch (const FlagError& e) {
        throw Error(str(checkpoint.path, ": recorded setting ", name, ": ", e.what()));
      }
      const std::string recorded = flags.value_text(name);
      flags.set_value(name, given);
      if (given != recorded) changes.push_back({name, given, it->second});
      continue;
    }
    try {
      flags.set_value(name, it->second);
    } catch (const FlagError& e) {
      throw Error(str(checkpoint.path, ": recorded setting ", name, ": ", e.what()));
    }
  }
  return changes;
}

}  // namespace qnn
