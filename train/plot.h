// PNG line plots for the training tools: loss, accuracy or gradient-variance curves per epoch/step.
//
// write_line_plot_png draws one polyline per series (y values at x = 0, 1, 2, ...) on a white
// canvas: a framed plot area with light grid lines, tick marks with numeric labels, a title, axis
// labels, and a legend boxed in the corner of the plot area that hides the least of the curves.
// The y axis is logarithmic by default, with decades labelled "1e-3"; on a log axis values <= 0
// are skipped, and NaN or infinite values are skipped on any axis; a skipped value breaks its line.
//
// Header-only so that reporting stays in the apps layer. Text is stb_easy_font's quads rasterised
// at 2x; the PNG is encoded by stb_image_write compiled here as *static* functions, so several
// translation units of one program may include this header (a translation unit that needs the
// extern stb_image_write API must not also include this header). The file is written to a
// temporary name and renamed into place, so a reader never sees a half-written image.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_easy_font.h>
#include <stb_image_write.h>

#include "tensor/check.h"

namespace qnn {

struct PlotSeries {
  std::string name;
  std::vector<double> values;  // y values at x = 0, 1, 2, ...
};

struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_y = true;  // values <= 0 are skipped on a log axis
  int width = 900, height = 560;
};

struct PlotColor {
  unsigned char r, g, b;
  bool operator==(const PlotColor& o) const { return r == o.r && g == o.g && b == o.b; }
};

// The colour of the i-th series: ten distinct colours, then they repeat.
inline PlotColor plot_series_color(size_t i) {
  static const PlotColor palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                      {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {188, 189, 34},
                                      {23, 190, 207},  {90, 90, 90}};
  return palette[i % 10];
}

namespace plot_detail {

constexpr PlotColor kWhite{255, 255, 255}, kInk{30, 30, 30}, kFrame{60, 60, 60}, kGrid{228, 228, 228},
                    kLegendEdge{190, 190, 190};
constexpr int kScale = 2;             // text is drawn at twice stb_easy_font's size
constexpr int kCapHeight = 7 * kScale;  // height of digits and capitals; descenders reach 9 * kScale

struct Rect {
  int x0, y0, x1, y1;  // half-open: [x0, x1) x [y0, y1)
  bool contains(int x, int y) const { return x >= x0 && x < x1 && y >= y0 && y < y1; }
};

struct Canvas {
  int width, height;
  std::vector<unsigned char> rgb;
  Canvas(int w, int h) : width(w), height(h), rgb(size_t(w) * size_t(h) * 3, 255) {}

  void fill(int x0, int y0, int x1, int y1, PlotColor c, const Rect* clip = nullptr) {
    Rect r{std::max(x0, 0), std::max(y0, 0), std::min(x1, width), std::min(y1, height)};
    if (clip) r = {std::max(r.x0, clip->x0), std::max(r.y0, clip->y0), std::min(r.x1, clip->x1), std::min(r.y1, clip->y1)};
    for (int y = r.y0; y < r.y1; ++y)
      for (int x = r.x0; x < r.x1; ++x) {
        unsigned char* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }

  // A line of the given thickness (a square brush stepped along Bresenham's path), clipped.
  void line(int x0, int y0, int x1, int y1, PlotColor c, int thickness, const Rect& clip) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    const int lo = thickness / 2, hi = thickness - lo;
    int err = dx + dy;
    for (;;) {
      fill(x0 - lo, y0 - lo, x0 + hi, y0 + hi, c, &clip);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
};

// Width in pixels of text drawn by draw_text (stb_easy_font counts one column of spacing after the
// last glyph; it is left out so centred and right-aligned text sits where it should).
inline int text_width(const std::string& text) {
  if (text.empty()) return 0;
  std::string copy = text;
  return (stb_easy_font_width(copy.data()) - 1) * kScale;
}

// Draws one line of text whose top-left corner is (x, y). Vertical text reads bottom to top: the
// text is turned a quarter counter-clockwise about (x, y), so it extends upwards from y and its
// glyph tops face left.
inline void draw_text(Canvas& canvas, int x, int y, const std::string& text, PlotColor color, bool vertical = false) {
  if (text.empty()) return;
  std::string copy = text;
  std::vector<char> vertices(copy.size() * 1024 + 64);  // 64 bytes a quad, well under 16 quads a glyph
  const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, vertices.data(), int(vertices.size()));
  for (int q = 0; q < quads; ++q) {
    float lo[2] = {1e9f, 1e9f}, hi[2] = {-1e9f, -1e9f};
    for (int v = 0; v < 4; ++v) {  // each vertex: x, y, z as float, then 4 colour bytes
      float xy[2];
      std::memcpy(xy, vertices.data() + (q * 4 + v) * 16, sizeof xy);
      for (int k = 0; k < 2; ++k) lo[k] = std::min(lo[k], xy[k]), hi[k] = std::max(hi[k], xy[k]);
    }
    const int ax = int(std::lround(lo[0] * kScale)), bx = int(std::lround(hi[0] * kScale));
    const int ay = int(std::lround(lo[1] * kScale)), by = int(std::lround(hi[1] * kScale));
    if (vertical) canvas.fill(x + ay, y - bx, x + by, y - ax, color);
    else canvas.fill(x + ax, y + ay, x + bx, y + by, color);
  }
}

// Shortens text with "..." until it fits in max_width pixels.
inline std::string fit_text(std::string text, int max_width) {
  if (text_width(text) <= max_width) return text;
  while (!text.empty() && text_width(text + "...") > max_width) text.pop_back();
  return text + "...";
}

struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // in axis units: log10(value) on a log axis
  std::vector<double> ticks, minor;
  std::vector<std::string> labels;
};

// 1, 2 or 5 times a power of ten, close to raw.
inline double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

inline std::string format_number(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0" or "1e-17"
  char buf[32];
  const double big = std::max(std::fabs(v), step);
  if (big >= 1e6 || step < 1e-4) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.*f", std::max(0, int(-std::floor(std::log10(step) + 1e-9))), v);
  return buf;
}

// A linear axis over [lo, hi] with about `count` ticks; extend widens the range to whole ticks.
inline Axis linear_axis(double lo, double hi, int count, bool extend, bool integer_ticks) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.5;
    lo -= pad, hi += pad;
  }
  Axis axis;
  double step = nice_step((hi - lo) / count);
  if (integer_ticks) step = std::max(step, 1.0);
  if (extend) lo = std::floor(lo / step + 1e-9) * step, hi = std::ceil(hi / step - 1e-9) * step;
  axis.lo = lo, axis.hi = hi;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    axis.ticks.push_back(t);
    axis.labels.push_back(format_number(t, step));
  }
  return axis;
}

// A log axis over whole decades covering [min_value, max_value] (both > 0): every decade gets a
// grid line, at most about ten are labelled, and 2..9 get small ticks when there are few decades.
inline Axis log_axis(double min_value, double max_value) {
  Axis axis;
  axis.log = true;
  int k0 = int(std::floor(std::log10(min_value) + 1e-9)), k1 = int(std::ceil(std::log10(max_value) - 1e-9));
  if (k1 <= k0) k1 = k0 + 1;
  axis.lo = k0, axis.hi = k1;
  const int every = (k1 - k0 + 9) / 10;
  for (int k = k0; k <= k1; ++k) {
    axis.ticks.push_back(k);
    axis.labels.push_back((k - k0) % every == 0 ? "1e" + std::to_string(k) : "");
    if (k < k1 && k1 - k0 <= 6)
      for (int m = 2; m <= 9; ++m) axis.minor.push_back(k + std::log10(double(m)));
  }
  return axis;
}

// The legend: a white box inside the plot area, in whichever corner hides the fewest curve pixels
// (those neither background nor grid), with a colour swatch and the name of each series.
inline void draw_legend(Canvas& canvas, const Rect& plot, const std::vector<PlotSeries>& series) {
  const int margin = 8, gap = 10, swatch = 28, line_height = 11 * kScale;
  const int rows = std::min(int(series.size()), std::max(1, (plot.y1 - plot.y0 - 2 * margin - 2 * gap) / line_height));
  const int name_room = std::max(4 * kScale * 6, (plot.x1 - plot.x0) / 2 - 2 * gap - swatch - 8);
  std::vector<std::string> names;
  int name_width = 0;
  for (int i = 0; i < rows; ++i) {
    names.push_back(fit_text(series[size_t(i)].name, name_room));
    name_width = std::max(name_width, text_width(names.back()));
  }
  const int w = gap + swatch + 8 + name_width + gap, h = gap + (rows - 1) * line_height + kCapHeight + gap;
  const Rect corners[] = {{plot.x1 - margin - w, plot.y0 + margin, plot.x1 - margin, plot.y0 + margin + h},
                          {plot.x0 + margin, plot.y0 + margin, plot.x0 + margin + w, plot.y0 + margin + h},
                          {plot.x1 - margin - w, plot.y1 - margin - h, plot.x1 - margin, plot.y1 - margin},
                          {plot.x0 + margin, plot.y1 - margin - h, plot.x0 + margin + w, plot.y1 - margin}};
  Rect box = corners[0];
  long best = -1;
  for (const Rect& r : corners) {
    long covered = 0;
    for (int y = std::max(r.y0, 0); y < std::min(r.y1, canvas.height); ++y)
      for (int x = std::max(r.x0, 0); x < std::min(r.x1, canvas.width); ++x) {
        const unsigned char* p = &canvas.rgb[(size_t(y) * size_t(canvas.width) + size_t(x)) * 3];
        const PlotColor c{p[0], p[1], p[2]};
        covered += !(c == kWhite) && !(c == kGrid);
      }
    if (best < 0 || covered < best) best = covered, box = r;
  }
  canvas.fill(box.x0, box.y0, box.x1, box.y1, kLegendEdge);
  canvas.fill(box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1, kWhite);
  for (int i = 0; i < rows; ++i) {
    const int y = box.y0 + gap + i * line_height;
    canvas.fill(box.x0 + gap, y + kCapHeight / 2 - 1, box.x0 + gap + swatch, y + kCapHeight / 2 + 2, plot_series_color(size_t(i)));
    draw_text(canvas, box.x0 + gap + swatch + 8, y, names[size_t(i)], kInk);
  }
}

inline void on_png_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  out->insert(out->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
}

// Encodes the canvas and writes it to path through path + ".tmp" and a rename.
inline void save_png(const Canvas& canvas, const std::string& path) {
  std::vector<unsigned char> png;
  const int ok = stbi_write_png_to_func(on_png_bytes, &png, canvas.width, canvas.height, 3, canvas.rgb.data(), canvas.width * 3);
  QNN_CHECK(ok && !png.empty(), "cannot encode plot ", path);
  const std::string tmp = path + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  QNN_CHECK(file, "cannot write plot ", path, ": ", std::strerror(errno));
  const bool written = std::fwrite(png.data(), 1, png.size(), file) == png.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) std::remove(tmp.c_str());
  QNN_CHECK(written && closed, "error writing plot ", path);
  const bool renamed = std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!renamed) std::remove(tmp.c_str());
  QNN_CHECK(renamed, "cannot rename ", tmp, " to ", path, ": ", std::strerror(errno));
}

}  // namespace plot_detail

// Draws the series as a line plot and writes it as an RGB PNG to path (see the top of this file).
// Throws qnn::Error naming the path when there are no series, a series has no values, the canvas
// is too small, or the file cannot be written.
inline void write_line_plot_png(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  using namespace plot_detail;
  QNN_CHECK(!series.empty(), "no series to plot in ", path);
  for (const PlotSeries& s : series) QNN_CHECK(!s.values.empty(), "series '", s.name, "' has no values, plotting ", path);
  QNN_CHECK(options.width >= 240 && options.height >= 180, "plot ", path, " must be at least 240x180, not ",
            options.width, "x", options.height);

  // Data ranges. A value is drawn when it is finite (and positive on a log axis).
  auto drawn = [&](double v) { return std::isfinite(v) && (!options.log_y || v > 0); };
  size_t points = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (const PlotSeries& s : series) {
    points = std::max(points, s.values.size());
    for (double v : s.values)
      if (drawn(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(lo <= hi)) lo = options.log_y ? 1 : 0, hi = options.log_y ? 10 : 1;  // nothing drawable: empty axes
  const Axis y_axis = options.log_y ? log_axis(lo, hi) : linear_axis(lo, hi, 6, true, false);
  const Axis x_axis = linear_axis(0, double(std::max<size_t>(points, 2) - 1), std::max(2, std::min(10, options.width / 100)),
                                  false, true);

  // Layout: margins sized to the text they hold.
  const int pad = 14, tick = 6;
  int y_label_width = 0;
  for (const std::string& l : y_axis.labels) y_label_width = std::max(y_label_width, text_width(l));
  Rect plot;
  plot.x0 = pad + (options.y_label.empty() ? 0 : kCapHeight + 2 * pad) + y_label_width + 8 + tick;
  plot.y0 = options.title.empty() ? pad + 8 : pad + 9 * kScale + pad;
  plot.x1 = options.width - std::max(2 * pad, text_width(x_axis.labels.back()) / 2 + 4);
  plot.y1 = options.height - (pad + tick + 8 + kCapHeight + (options.x_label.empty() ? 0 : pad + 9 * kScale) + 4);
  QNN_CHECK(plot.x1 - plot.x0 >= 60 && plot.y1 - plot.y0 >= 60, "plot ", path, " is too small for its labels at ",
            options.width, "x", options.height);

  // Axis units to pixels; the curves keep a small inset from the frame so they never hide under it.
  const int inset = 4;
  auto px = [&](double x) {
    return plot.x0 + inset + int(std::lround((x - x_axis.lo) / (x_axis.hi - x_axis.lo) * (plot.x1 - plot.x0 - 1 - 2 * inset)));
  };
  auto py = [&](double u) {
    return plot.y1 - 1 - inset - int(std::lround((u - y_axis.lo) / (y_axis.hi - y_axis.lo) * (plot.y1 - plot.y0 - 1 - 2 * inset)));
  };

  Canvas canvas(options.width, options.height);
  for (double t : y_axis.ticks) canvas.fill(plot.x0, py(t), plot.x1, py(t) + 1, kGrid);
  for (double t : x_axis.ticks) canvas.fill(px(t), plot.y0, px(t) + 1, plot.y1, kGrid);

  // The curves, clipped to the inside of the frame; a lone point between gaps becomes a dot.
  const Rect inside{plot.x0 + 1, plot.y0 + 1, plot.x1 - 1, plot.y1 - 1};
  for (size_t i = 0; i < series.size(); ++i) {
    const PlotColor color = plot_series_color(i);
    const std::vector<double>& v = series[i].values;
    for (size_t j = 0; j < v.size(); ++j) {
      if (!drawn(v[j])) continue;
      const int x = px(double(j)), y = py(options.log_y ? std::log10(v[j]) : v[j]);
      const bool prev = j > 0 && drawn(v[j - 1]), next = j + 1 < v.size() && drawn(v[j + 1]);
      if (next) {
        const int x2 = px(double(j + 1)), y2 = py(options.log_y ? std::log10(v[j + 1]) : v[j + 1]);
        canvas.line(x, y, x2, y2, color, 2, inside);
      } else if (!prev) {
        canvas.fill(x - 2, y - 2, x + 3, y + 3, color, &inside);
      }
    }
  }

  // Frame, tick marks and tick labels.
  canvas.fill(plot.x0, plot.y0, plot.x1, plot.y0 + 1, kFrame);
  canvas.fill(plot.x0, plot.y1 - 1, plot.x1, plot.y1, kFrame);
  canvas.fill(plot.x0, plot.y0, plot.x0 + 1, plot.y1, kFrame);
  canvas.fill(plot.x1 - 1, plot.y0, plot.x1, plot.y1, kFrame);
  for (size_t i = 0; i < y_axis.ticks.size(); ++i) {
    const int y = py(y_axis.ticks[i]);
    const std::string& label = y_axis.labels[i];
    canvas.fill(plot.x0 - (label.empty() ? tick / 2 : tick), y, plot.x0, y + 1, kFrame);
    draw_text(canvas, plot.x0 - tick - 8 - text_width(label), y - kCapHeight / 2, label, kInk);
  }
  for (double m : y_axis.minor) canvas.fill(plot.x0 - tick / 2, py(m), plot.x0, py(m) + 1, kFrame);
  for (size_t i = 0; i < x_axis.ticks.size(); ++i) {
    const int x = px(x_axis.ticks[i]);
    canvas.fill(x, plot.y1, x + 1, plot.y1 + tick, kFrame);
    const std::string& label = x_axis.labels[i];
    const int left = std::clamp(x - text_width(label) / 2, 0, options.width - text_width(label));
    draw_text(canvas, left, plot.y1 + tick + 8, label, kInk);
  }

  // Title and axis labels, each shortened to the room it has; then the legend.
  const int plot_mid_x = (plot.x0 + plot.x1) / 2, plot_mid_y = (plot.y0 + plot.y1) / 2;
  if (!options.title.empty()) {
    const std::string title = fit_text(options.title, options.width - 2 * pad);
    const int left = std::clamp(plot_mid_x - text_width(title) / 2, pad, options.width - pad - text_width(title));
    draw_text(canvas, left, pad, title, kInk);
  }
  if (!options.x_label.empty()) {
    const std::string label = fit_text(options.x_label, plot.x1 - plot.x0);
    draw_text(canvas, plot_mid_x - text_width(label) / 2, plot.y1 + tick + 8 + kCapHeight + pad, label, kInk);
  }
  if (!options.y_label.empty()) {
    const std::string label = fit_text(options.y_label, plot.y1 - plot.y0);
    draw_text(canvas, pad, plot_mid_y + text_width(label) / 2, label, kInk, true);
  }
  draw_legend(canvas, plot, series);
  save_png(canvas, path);
}

}  // namespace qnn
