// Listing an ImageFolder-layout folder (see data/image_folder.h) with std::filesystem.
#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>

#include "tensor/check.h"

namespace qnn {

namespace fs = std::filesystem;

bool has_image_extension(const std::string& filename) {
  static const char* const extensions[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                           ".pgm", ".tif",  ".tiff", ".webp"};
  std::string lower = filename;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* ext : extensions) {
    const size_t n = std::char_traits<char>::length(ext);
    if (lower.size() >= n && lower.compare(lower.size() - n, n, ext) == 0) return true;
  }
  return false;
}

namespace {

// The image files under `folder`, recursively, in torchvision's order: sorted by the folder
// holding them, then by file name (sorted(os.walk(...)), then sorted(fnames)).
std::vector<std::string> image_files_under(const fs::path& folder) {
  std::vector<std::pair<std::string, std::string>> found;  // (holding folder, file name)
  std::error_code ec;
  fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, ec);
  QNN_CHECK(!ec, "cannot list ", folder.string(), ": ", ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    QNN_CHECK(!ec, "cannot list ", folder.string(), ": ", ec.message());
    if (it->is_regular_file(ec) && has_image_extension(it->path().filename().string()))
      found.emplace_back(it->path().parent_path().string(), it->path().filename().string());
  }
  QNN_CHECK(!ec, "cannot list ", folder.string(), ": ", ec.message());
  std::sort(found.begin(), found.end());
  std::vector<std::string> files;
  for (const auto& [parent, name] : found) files.push_back((fs::path(parent) / name).string());
  return files;
}

}  // namespace

ImageFolder scan_image_folder(const std::string& root) {
  std::error_code ec;
  QNN_CHECK(fs::exists(root, ec), "image folder ", root, " does not exist");
  QNN_CHECK(fs::is_directory(root, ec), "image folder ", root, " is not a folder");
  ImageFolder folder;
  folder.root = root;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory(ec)) folder.classes.push_back(entry.path().filename().string());
  QNN_CHECK(!ec, "cannot list image folder ", root, ": ", ec.message());
  std::sort(folder.classes.begin(), folder.classes.end());
  QNN_CHECK(!folder.classes.empty(), "image folder ", root,
            " has no class folders: expected one subfolder of images per class");
  std::string empty_classes;
  for (size_t label = 0; label < folder.classes.size(); ++label) {
    const std::vector<std::string> files = image_files_under(fs::path(root) / folder.classes[label]);
    if (files.empty()) empty_classes += (empty_classes.empty() ? "" : ", ") + folder.classes[label];
    for (const std::string& path : files)
      folder.samples.push_back({path, static_cast<int32_t>(label)});
  }
  QNN_CHECK(empty_classes.empty(), "image folder ", root, ": found no image file for the classes ",
            empty_classes, " (expected files ending in .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)");
  return folder;
}

}  // namespace qnn
