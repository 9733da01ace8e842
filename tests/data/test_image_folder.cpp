// Image folders with torchvision ImageFolder's semantics: class order and labels, which files
// count as images (extensions in any case, subfolders) and which are ignored, and every error.
// With HYMENOPTERA_DIR (the ants/bees folder) the real folder lists as torchvision lists it.
#include <doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_folder.h"
#include "tensor/check.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;
namespace fs = std::filesystem;

namespace {

void touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "x";
}

std::vector<std::string> relative_paths(const ImageFolder& folder) {
  std::vector<std::string> paths;
  for (const ImageFolderSample& s : folder.samples)
    paths.push_back(fs::relative(s.path, folder.root).string() + ":" + std::to_string(s.label));
  return paths;
}

}  // namespace

TEST_CASE("image folder: classes sorted by name, images sorted, other files ignored") {
  TempDir dir;
  for (const char* name : {"alpha/b.png", "alpha/a.JPG", "alpha/c.Jpeg", "alpha/notes.txt",
                           "alpha/anim.gif", "alpha/sub/z.webp", "alpha/zz.bmp", "beta/1.TIFF",
                           "beta/2.tif", "beta/3.ppm", "beta/4.pgm", "Zeta/photo one.jpg", "loose.jpg"})
    touch(dir.file(name));
  const ImageFolder folder = scan_image_folder(dir.path);
  // Byte order, as Python sorts: upper case first.
  CHECK(folder.classes == std::vector<std::string>{"Zeta", "alpha", "beta"});
  // Files of a folder before its subfolders' (os.walk order), each folder's files by name.
  CHECK(relative_paths(folder) ==
        std::vector<std::string>{"Zeta/photo one.jpg:0", "alpha/a.JPG:1", "alpha/b.png:1", "alpha/c.Jpeg:1",
                                 "alpha/zz.bmp:1", "alpha/sub/z.webp:1", "beta/1.TIFF:2", "beta/2.tif:2",
                                 "beta/3.ppm:2", "beta/4.pgm:2"});
  CHECK(has_image_extension("x.WebP"));
  CHECK(!has_image_extension("x.gif"));
  CHECK(!has_image_extension("jpg"));
}

TEST_CASE("image folder: errors name the folder and what was expected") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(scan_image_folder(dir.file("missing")),
                       doctest::Contains(("image folder " + dir.file("missing") + " does not exist").c_str()), Error);
  touch(dir.file("file.jpg"));
  CHECK_THROWS_WITH_AS(scan_image_folder(dir.file("file.jpg")), doctest::Contains("is not a folder"), Error);
  // Only files, no class folders.
  CHECK_THROWS_WITH_AS(scan_image_folder(dir.path), doctest::Contains("has no class folders"), Error);
  // A class folder with only non-images, beside one with images.
  touch(dir.file("ants/a.jpg"));
  touch(dir.file("bees/anim.gif"));
  fs::create_directories(dir.file("wasps"));
  CHECK_THROWS_WITH_AS(scan_image_folder(dir.path),
                       doctest::Contains("found no image file for the classes bees, wasps"), Error);
  // No image anywhere.
  fs::remove(dir.file("ants/a.jpg"));
  CHECK_THROWS_WITH_AS(scan_image_folder(dir.path),
                       doctest::Contains("found no image file for the classes ants, bees, wasps"), Error);
}

TEST_CASE("image folder: the hymenoptera folder lists as torchvision's ImageFolder does") {
  const char* root = std::getenv("HYMENOPTERA_DIR");
  if (root == nullptr) {
    MESSAGE("hymenoptera checks skipped: HYMENOPTERA_DIR is not set (point it at the ants/bees "
            "folder holding train/ and val/)");
    return;
  }
  const ImageFolder train = scan_image_folder(std::string(root) + "/train");
  const ImageFolder val = scan_image_folder(std::string(root) + "/val");
  CHECK(train.classes == std::vector<std::string>{"ants", "bees"});
  CHECK(val.classes == train.classes);
  // train: 11 ants (12 files less the GIF) + 11 bees; val: 6 + 6.
  CHECK(train.count() == 22);
  CHECK(val.count() == 12);
  int train_ants = 0, space = 0, gif = 0;
  for (const ImageFolderSample& s : train.samples) {
    train_ants += s.label == 0;
    space += s.path.find("ant photos.jpg") != std::string::npos;
    gif += s.path.find(".gif") != std::string::npos;
  }
  CHECK(train_ants == 11);
  CHECK(space == 1);
  CHECK(gif == 0);
}
