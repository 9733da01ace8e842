// An image-classification folder in the ImageNet / torchvision ImageFolder layout:
//
//   root/<class name>/<image file>
//
// with torchvision.datasets.ImageFolder's semantics: every subfolder of `root` is a class; the
// classes are sorted by name (byte order, as Python sorts str) and a class's index is its
// position in that order; inside a class folder, files (searched recursively, following
// symbolic links, as os.walk(followlinks=True) does) whose extension is one of torchvision's
// IMG_EXTENSIONS, compared case-insensitively (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp),
// are the samples, sorted by path; every other file is ignored without a word. Samples are
// listed class by class, so sample i of the folder is the i-th of torchvision's dataset.samples.
//
// Errors (qnn::Error naming the folder): root missing or not a folder; root without class
// folders; a class folder without a single image file (torchvision: "Found no valid file for
// the classes ..."; here every such class is named).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

struct ImageFolderSample {
  std::string path;  // root/<class>/.../<file>
  int32_t label = 0;
};

struct ImageFolder {
  std::string root;
  std::vector<std::string> classes;  // sorted; label = position
  std::vector<ImageFolderSample> samples;
  int64_t count() const { return static_cast<int64_t>(samples.size()); }
};

// Whether `filename` ends with one of torchvision's IMG_EXTENSIONS, in any letter case.
bool has_image_extension(const std::string& filename);

// Lists the folder (reads no image).
ImageFolder scan_image_folder(const std::string& root);

}  // namespace qnn
