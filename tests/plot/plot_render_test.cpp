// Charts as pictures: the PNG decodes (with a decoder written here on zlib, and with Python's
// zlib/struct as an independent reader) to the right size with the curve where the data puts it;
// the SVG is well-formed XML with the polyline points mapped to the same pixels; `plot_run` writes
// the four files for a run folder, with or without validation lines.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "plot/chart.hpp"
#include "plot/run_plots.hpp"
#include "test_util.hpp"

namespace ld::plot {
namespace {

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

// A PNG reader for 8-bit RGB, non-interlaced images, all five scanline filters, CRCs checked.
Decoded decode_png(const std::string& png) {
  Decoded d;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n"));
  std::string idat;
  bool ended = false;
  for (size_t at = 8; at + 12 <= png.size() && !ended;) {
    const uint32_t len = be32(png, at);
    const std::string type = png.substr(at + 4, 4), data = png.substr(at + 8, len);
    const uint32_t crc = be32(png, at + 8 + len);
    EXPECT_EQ(crc, crc32(0, reinterpret_cast<const Bytef*>(png.data() + at + 4), len + 4)) << type;
    if (type == "IHDR") {
      d.width = int(be32(data, 0));
      d.height = int(be32(data, 4));
      EXPECT_EQ(data.substr(8), std::string("\x08\x02\x00\x00\x00", 5));  // 8-bit RGB, not interlaced
    } else if (type == "IDAT") {
      idat += data;
    } else if (type == "IEND") {
      ended = true;
    }
    at += 12 + len;
  }
  EXPECT_TRUE(ended);
  const size_t stride = size_t(d.width) * 3;
  std::vector<uint8_t> raw((stride + 1) * d.height);
  uLongf raw_size = raw.size();
  EXPECT_EQ(uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()), Z_OK);
  EXPECT_EQ(raw_size, raw.size());
  d.rgb.assign(stride * d.height, 0);
  for (int y = 0; y < d.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &d.rgb[y * stride];
    const uint8_t* up = y ? &d.rgb[(y - 1) * stride] : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= 3 ? out[i - 3] : 0, b = up ? up[i] : 0, c = (up && i >= 3) ? up[i - 3] : 0;
      int pred = 0;
      if (filter == 1) pred = a;
      if (filter == 2) pred = b;
      if (filter == 3) pred = (a + b) / 2;
      if (filter == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      }
      out[i] = uint8_t(in[i] + pred);
    }
  }
  return d;
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// loss = 10 - step/10 for steps 0..100; validation one above it every 20 steps.
RunMetrics straight_line(bool with_eval) {
  RunMetrics m;
  for (int s = 0; s <= 100; ++s) m.train.push_back({.step = double(s), .loss = 10 - s / 10.0, .lr = 1e-3 * s / 100});
  if (with_eval)
    for (int s = 20; s <= 100; s += 20) m.eval.push_back({.step = double(s), .val_loss = 11 - s / 10.0});
  return m;
}

bool is_train_blue(Rgb c) { return c.b > 120 && c.b > c.r + 60; }
bool is_light(Rgb c) { return c.r > 200 && c.g > 200 && c.b > 200; }

// The straight line (with its validation points, 9 down to 1) spans steps 0..100 and losses 0..10:
// ticks 0..100 on x (step 20) and 0..10 on y (step 2), as PlotTicks checks; the pixel of a data
// point follows from the plot area alone.
struct Frame {
  Layout l;
  double x(double step) const { return l.left + l.inset + step / 100 * (l.right - l.left - 2 * l.inset); }
  double y(double loss) const { return l.bottom - l.inset - loss / 10 * (l.bottom - l.top - 2 * l.inset); }
};

TEST(PlotRender, PngShowsTheCurveWhereTheDataPutsIt) {
  const Chart chart = loss_chart(straight_line(true), "straight", PlotOptions{});
  const Frame f{layout_chart(chart)};
  ASSERT_DOUBLE_EQ(f.l.x_ticks.hi, 100);
  ASSERT_DOUBLE_EQ(f.l.y_ticks.lo, 0);
  ASSERT_DOUBLE_EQ(f.l.y_ticks.hi, 10);
  const Decoded img = decode_png(render_png(chart));
  ASSERT_EQ(img.width, 800);
  ASSERT_EQ(img.height, 500);
  for (double step : {7.0, 33.0, 61.0, 90.0}) {  // away from the validation markers
    const int px = int(f.x(step)), py = int(f.y(10 - step / 10));
    bool found = false;
    for (int dy = -2; dy <= 2; ++dy) found = found || is_train_blue(img.at(px, py + dy));
    EXPECT_TRUE(found) << "no train-coloured pixel near step " << step << " at (" << px << ", " << py << ")";
    EXPECT_TRUE(is_light(img.at(px, py + 30))) << "pixels well below the line should be background at step " << step;
    EXPECT_TRUE(is_light(img.at(px, py - 30))) << "pixels well above the line should be background at step " << step;
  }
  for (double step : {40.0, 80.0}) {  // validation markers: orange discs
    const Rgb c = img.at(int(f.x(step)), int(f.y(11 - step / 10)));
    EXPECT_GT(c.r, 200) << step;
    EXPECT_LT(c.b, 100) << step;
  }
  const Rgb axis = img.at(int(f.x(50)), int(f.l.bottom));  // the x axis is drawn dark along the bottom
  EXPECT_LT(axis.r, 100);
  int dark_in_title = 0;  // the title is drawn in the band above the plot
  for (int y = 0; y < int(f.l.top); ++y)
    for (int x = 0; x < img.width; ++x) dark_in_title += img.at(x, y).r < 100;
  EXPECT_GT(dark_in_title, 50);
}

TEST(PlotRender, PngIsReadableByAnIndependentDecoder) {
  test::TempDir dir("plot_png");
  const auto png = dir / "c.png", script = dir / "check.py";
  std::ofstream(png, std::ios::binary) << render_png(loss_chart(straight_line(true), "x", PlotOptions{}));
  std::ofstream(script) << "import sys, struct, zlib\n"
                           "b = open(sys.argv[1], 'rb').read()\n"
                           "assert b[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
                           "at, idat, w, h = 8, b'', 0, 0\n"
                           "while at < len(b):\n"
                           "    n, = struct.unpack('>I', b[at:at+4]); t = b[at+4:at+8]; d = b[at+8:at+8+n]\n"
                           "    assert struct.unpack('>I', b[at+8+n:at+12+n])[0] == zlib.crc32(t + d), t\n"
                           "    if t == b'IHDR': w, h = struct.unpack('>II', d[:8])\n"
                           "    if t == b'IDAT': idat += d\n"
                           "    at += 12 + n\n"
                           "raw = zlib.decompress(idat)\n"
                           "assert len(raw) == h * (3 * w + 1)\n"
                           "print(w, h)\n";
  const std::string out = (dir / "out.txt").string();
  ASSERT_EQ(std::system(("/usr/bin/python3 " + script.string() + " " + png.string() + " > " + out).c_str()), 0);
  EXPECT_EQ(read_all(out), "800 500\n");
}

// The "x,y x,y ..." of the first <polyline> after `after` in the SVG.
std::vector<Point> polyline_points(const std::string& svg, size_t after = 0) {
  const size_t at = svg.find("<polyline", after);
  EXPECT_NE(at, std::string::npos);
  const size_t p = svg.find("points=\"", at) + 8;
  std::istringstream in(svg.substr(p, svg.find('"', p) - p));
  std::vector<Point> pts;
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    pts.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
  }
  return pts;
}

TEST(PlotRender, SvgMapsPointsAndCarriesLabels) {
  const Chart chart = loss_chart(straight_line(true), "run-42 & co", PlotOptions{});
  const Frame f{layout_chart(chart)};
  const std::string svg = render_svg(chart);
  const auto pts = polyline_points(svg);
  ASSERT_EQ(pts.size(), 101u);
  for (int step : {0, 25, 100}) {
    EXPECT_NEAR(pts[step].x, f.x(step), 0.01) << step;
    EXPECT_NEAR(pts[step].y, f.y(10 - step / 10.0), 0.01) << step;
  }
  const auto val = polyline_points(svg, svg.find("<polyline") + 1);
  ASSERT_EQ(val.size(), 5u);
  EXPECT_NEAR(val[1].y, f.y(7), 0.01);
  test::expect_mentions(svg, {">step</text>", ">loss</text>", ">train</text>", ">validation</text>",
                              ">run-42 &amp; co</text>", "<circle", ">10</text>", ">100</text>"});
  // Well-formed XML, checked by Python's parser.
  test::TempDir dir("plot_svg");
  std::ofstream(dir / "c.svg") << svg;
  const std::string cmd = "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])\" " +
                          (dir / "c.svg").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST(PlotRender, LongSeriesKeepTheirEnvelopeInFewerPoints) {
  Series s{.name = "n", .x = {}, .y = {}, .color = {0, 0, 0}, .line = true, .markers = false, .opacity = 1.0};
  for (int i = 0; i < 20000; ++i) {
    s.x.push_back(i);
    s.y.push_back(std::sin(i * 0.01) + ((i * 7919) % 13) * 0.05);  // a wave with jitter
  }
  Chart c{.title = "t", .x_label = "step", .y_label = "loss", .series = {s}, .log_y = false, .width = 800, .height = 500};
  const Layout l = layout_chart(c);
  const auto pts = pixel_points(c.series[0], l);
  EXPECT_LE(pts.size(), 4 * size_t(l.right - l.left + 2));
  // Per pixel column, the drawn points reach the same lowest and highest y as the data.
  std::map<int, std::pair<double, double>> want, got;
  auto note = [](std::map<int, std::pair<double, double>>& m, double x, double y) {
    auto [it, fresh] = m.try_emplace(int(std::floor(x)), y, y);
    if (!fresh) it->second = {std::min(it->second.first, y), std::max(it->second.second, y)};
  };
  for (int i = 0; i < 20000; ++i) note(want, l.px(s.x[i]), l.py(s.y[i]));
  for (const Point& p : pts) note(got, p.x, p.y);
  EXPECT_EQ(got, want);
  EXPECT_DOUBLE_EQ(pts.front().x, l.px(0));
  EXPECT_DOUBLE_EQ(pts.back().y, l.py(s.y.back()));
}

TEST(PlotRender, LegendMovesOffTheData) {
  const Chart falling = loss_chart(straight_line(true), "f", PlotOptions{});
  const Layout lf = layout_chart(falling);
  EXPECT_TRUE(lf.legend_right && lf.legend_top);  // a falling loss leaves the top right free
  RunMetrics m;
  for (int s = 0; s <= 100; ++s) m.train.push_back({.step = double(s), .loss = 2 + s / 10.0, .lr = std::nullopt});
  const Chart rising = loss_chart(m, "r", PlotOptions{});
  const Layout lr = layout_chart(rising);
  EXPECT_FALSE(lr.legend_right && lr.legend_top);
  // The SVG's legend box is then on the left.
  const std::string svg = render_svg(rising);
  const size_t rect = svg.find("<rect x=\"", svg.find("</g>"));
  ASSERT_NE(rect, std::string::npos);
  EXPECT_LT(std::stod(svg.substr(rect + 9)), (lr.left + lr.right) / 2);
}

TEST(PlotRender, EmaIsDebiased) {
  const auto flat = ema({3, 3, 3}, 0.9);
  for (double v : flat) EXPECT_NEAR(v, 3, 1e-12);  // no pull towards the zero start
  const auto two = ema({0, 10}, 0.5);
  EXPECT_NEAR(two[1], 20.0 / 3, 1e-12);  // (0.25*0 + 0.5*10) / 0.75
  test::expect_mentions(test::error_message([] { ema({1}, 1.0); }), {"--smooth", "[0, 1)"});
}

TEST(PlotRender, SmoothingDrawsTheRawCurveFaintUnderTheSmoothedOne) {
  const Chart c = loss_chart(straight_line(false), "s", PlotOptions{.smooth = 0.9, .log_y = LogY::kAuto, .width = 800, .height = 500});
  ASSERT_EQ(c.series.size(), 2u);
  EXPECT_LT(c.series[0].opacity, 0.5);
  EXPECT_TRUE(c.series[0].name.empty());
  EXPECT_EQ(c.series[1].name, "train (EMA 0.9)");
  EXPECT_GT(c.series[1].y[50], c.series[0].y[50]);  // a falling line: the average lags behind, above it
}

TEST(PlotRender, LogScaleWhenLossesSpanOverADecade) {
  RunMetrics m;
  for (int s = 1; s <= 50; ++s) m.train.push_back({.step = double(s), .loss = 100.0 / s, .lr = std::nullopt});
  EXPECT_TRUE(loss_chart(m, "t", PlotOptions{}).log_y);
  EXPECT_FALSE(loss_chart(m, "t", PlotOptions{.smooth = 0, .log_y = LogY::kOff, .width = 800, .height = 500}).log_y);
  EXPECT_FALSE(loss_chart(straight_line(false), "t", PlotOptions{}).log_y);  // reaches 0: stays linear
  test::expect_mentions(test::error_message([] {
                          loss_chart(straight_line(false), "t", PlotOptions{.smooth = 0, .log_y = LogY::kOn, .width = 800, .height = 500});
                        }),
                        {"--log-y on", "log scale"});
  const Chart c = loss_chart(m, "t", PlotOptions{});
  const Layout l = layout_chart(c);
  EXPECT_NEAR(l.py(10), (l.top + l.bottom) / 2, 1e-9);  // 1..100: 10 sits halfway up
  EXPECT_NEAR(polyline_points(render_svg(c))[9].y, l.py(10), 0.01);  // step 10: loss 10
}

std::filesystem::path write_run(const test::TempDir& dir, const std::string& name, const std::string& jsonl) {
  const auto run = dir / name;
  std::filesystem::create_directories(run);
  std::ofstream(run / "metrics.jsonl") << jsonl;
  return run;
}

std::string jsonl_of(const RunMetrics& m) {
  std::ostringstream os;
  for (const auto& p : m.train)
    os << "{\"type\": \"train\", \"step\": " << p.step << ", \"loss\": " << p.loss << ", \"lr\": " << *p.lr
       << ", \"tokens_per_s\": 1000.0, \"tokens\": " << p.step * 512 << "}\n";
  for (const auto& p : m.eval) os << "{\"type\": \"eval\", \"step\": " << p.step << ", \"val_loss\": " << p.val_loss << "}\n";
  return os.str();
}

TEST(PlotRender, PlotRunWritesLossAndLrChartsAndNothingElse) {
  test::TempDir dir("plot_run");
  const auto run = write_run(dir, "my-run", jsonl_of(straight_line(true)));
  const PlotReport r = plot_run(run / "", PlotOptions{});
  EXPECT_EQ(r.written.size(), 4u);
  EXPECT_TRUE(r.warnings.empty());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(run)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"loss.png", "loss.svg", "lr.png", "lr.svg", "metrics.jsonl"}));
  const std::string svg = read_all(run / "loss.svg");
  test::expect_mentions(svg, {">my-run</text>", ">validation</text>"});
  EXPECT_EQ(decode_png(read_all(run / "lr.png")).width, 800);
  const std::string lr_svg = read_all(run / "lr.svg");
  const Chart lr = lr_chart(straight_line(false), "my-run", PlotOptions{});
  const Layout l = layout_chart(lr);
  const auto pts = polyline_points(lr_svg);
  ASSERT_EQ(pts.size(), 101u);
  EXPECT_NEAR(pts[50].y, (l.bottom + l.top) / 2, 0.01);  // lr 5e-4 on a 0..1e-3 axis
  test::expect_mentions(lr_svg, {">learning rate</text>", ">1.0e-3</text>"});
}

TEST(PlotRender, TrainOnlyRunStillGetsAPlot) {
  test::TempDir dir("plot_run");
  const auto run = write_run(dir, "r", jsonl_of(straight_line(false)));
  plot_run(run, PlotOptions{});
  const std::string svg = read_all(run / "loss.svg");
  EXPECT_NE(svg.find(">train</text>"), std::string::npos);
  EXPECT_EQ(svg.find("validation"), std::string::npos);
  EXPECT_EQ(decode_png(read_all(run / "loss.png")).height, 500);
}

TEST(PlotRender, EmptyOrBrokenRunsAreErrorsAndWriteNothing) {
  test::TempDir dir("plot_run");
  auto run = write_run(dir, "empty", "");
  test::expect_mentions(test::error_message([&] { plot_run(run, PlotOptions{}); }),
                        {"metrics.jsonl: no \"train\" or \"eval\" lines"});
  run = write_run(dir, "broken", "{\"type\":\"train\",\"step\":1,\"loss\":2,\"lr\":1}\nnot json\n");
  test::expect_mentions(test::error_message([&] { plot_run(run, PlotOptions{}); }), {"metrics.jsonl:2: not valid JSON"});
  EXPECT_FALSE(std::filesystem::exists(run / "loss.png"));
  test::expect_mentions(test::error_message([&] { plot_run(dir / "missing", PlotOptions{}); }), {"missing", "not a folder"});
  std::filesystem::create_directories(dir / "bare");
  test::expect_mentions(test::error_message([&] { plot_run(dir / "bare", PlotOptions{}); }),
                        {"bare/metrics.jsonl: no such file"});
}

TEST(PlotRender, EvalOnlyRunPlotsValidationAndSkipsLr) {
  test::TempDir dir("plot_run");
  const auto run = write_run(dir, "e", "{\"type\":\"eval\",\"step\":10,\"val_loss\":3}\n{\"type\":\"eval\",\"step\":20,\"val_loss\":2.5}\n");
  const PlotReport r = plot_run(run, PlotOptions{});
  EXPECT_EQ(r.written.size(), 2u);
  ASSERT_EQ(r.warnings.size(), 1u);
  test::expect_mentions(r.warnings[0], {"no \"lr\" values"});
  EXPECT_FALSE(std::filesystem::exists(run / "lr.png"));
}

}  // namespace
}  // namespace ld::plot
