// The PNG line-plot writer: the image reads back at the requested size on a white background with
// every series' colour drawn; bad input and unwritable paths throw naming the path and leave no file.
#include <doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>

#include "train/plot.h"

#define STBI_ONLY_PNG
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

using namespace qnn;

namespace {

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  PlotColor at(int x, int y) const {
    const unsigned char* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
    return {p[0], p[1], p[2]};
  }
  int count(PlotColor c) const {
    int n = 0;
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) n += at(x, y) == c;
    return n;
  }
};

Image read_png(const std::string& path) {
  Image image;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &image.width, &image.height, &channels, 3);
  REQUIRE(data != nullptr);
  image.rgb.assign(data, data + size_t(image.width) * size_t(image.height) * 3);
  stbi_image_free(data);
  return image;
}

std::string temp_dir() {
  char pattern[] = "/tmp/qnn_plot_XXXXXX";
  return mkdtemp(pattern);
}

// The message of the qnn::Error that f throws ("" when it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<PlotSeries> three_series() {
  std::vector<PlotSeries> series = {{"train loss", {}}, {"test loss", {}}, {"variance", {}}};
  for (int i = 0; i < 40; ++i) {
    series[0].values.push_back(10.0 * std::pow(1e-4, i / 39.0));  // 1e1 down to 1e-3
    series[1].values.push_back(3.0 * std::exp(-i / 15.0) + 0.05);
    series[2].values.push_back(1e-2 * (1.5 + std::sin(i * 0.4)));
  }
  return series;
}

}  // namespace

TEST_CASE("plot: a log-axis PNG of three series reads back with every colour on white") {
  const std::string dir = temp_dir(), path = dir + "/loss.png";
  PlotOptions options;
  options.title = "ResNet-20 on CIFAR-10";
  options.x_label = "epoch";
  options.y_label = "loss";
  write_line_plot_png(path, three_series(), options);

  const Image image = read_png(path);
  CHECK(image.width == 900);
  CHECK(image.height == 560);
  const PlotColor white{255, 255, 255};
  CHECK(image.at(0, 0) == white);
  CHECK(image.at(image.width - 1, image.height - 1) == white);
  CHECK(image.count(white) > image.width * image.height / 2);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(image.count(plot_series_color(i)) > 100);  // a 40-point curve, not just its legend swatch
  }
  CHECK(image.count(plot_series_color(3)) == 0);
  CHECK(access((path + ".tmp").c_str(), F_OK) != 0);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("plot: a linear axis, gaps, a lone point and a custom size") {
  const std::string dir = temp_dir(), path = dir + "/acc.png";
  PlotOptions options;
  options.log_y = false;
  options.width = 400, options.height = 300;
  std::vector<PlotSeries> series = {{"accuracy", {0.1, 0.5, NAN, 0.7, 0.8, 0.85}}, {"single", {0.3}}};
  write_line_plot_png(path, series, options);
  const Image image = read_png(path);
  CHECK(image.width == 400);
  CHECK(image.height == 300);
  CHECK(image.count(plot_series_color(0)) > 50);
  CHECK(image.count(plot_series_color(1)) > 0);

  // On a log axis the non-positive values are skipped, not an error.
  options.log_y = true;
  write_line_plot_png(path, {{"with zeros", {0.0, -1.0, 1e-3, 1e-2, 0.0, 1e-1}}}, options);
  CHECK(read_png(path).count(plot_series_color(0)) > 20);

  // A constant series gets a range around its value: half of it each way (or 1 around zero),
  // its line drawn across the middle.
  options.log_y = false;
  write_line_plot_png(path, {{"flat", {0.25, 0.25, 0.25}}}, options);
  CHECK(read_png(path).count(plot_series_color(0)) > 50);
  const plot_detail::Axis flat = plot_detail::linear_axis(4, 4, 5, false, false),
                          zero = plot_detail::linear_axis(0, 0, 5, false, false);
  CHECK(flat.lo == 2);
  CHECK(flat.hi == 6);
  CHECK(zero.lo == -1);
  CHECK(zero.hi == 1);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("plot: errors name the path and leave no file behind") {
  const std::string dir = temp_dir(), path = dir + "/bad.png";
  const PlotOptions options;
  std::string message = error_of([&] { write_line_plot_png(path, {}, options); });
  CHECK(message.find(path) != std::string::npos);
  message = error_of([&] { write_line_plot_png(path, {{"a", {1.0}}, {"empty", {}}}, options); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("empty") != std::string::npos);
  CHECK(access(path.c_str(), F_OK) != 0);

  const std::string unwritable = dir + "/no_such_dir/loss.png";
  message = error_of([&] { write_line_plot_png(unwritable, {{"a", {1.0, 2.0}}}, options); });
  CHECK(message.find(unwritable) != std::string::npos);

  PlotOptions tiny;
  tiny.width = 10;
  message = error_of([&] { write_line_plot_png(path, {{"a", {1.0}}}, tiny); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(access(path.c_str(), F_OK) != 0);
  std::system(("rm -rf " + dir).c_str());
}
