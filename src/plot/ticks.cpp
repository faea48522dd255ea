#include "plot/ticks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace ld::plot {

namespace {

// The smallest 1, 2 or 5 times a power of ten that is >= raw.
double nice_step(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double residual = raw / magnitude;
  for (double m : {1.0, 2.0, 5.0})
    if (residual <= m * (1 + 1e-9)) return m * magnitude;
  return 10.0 * magnitude;
}

// "1.5e-4" rather than printf's "1.5e-04": the mantissa and exponent printed separately.
std::string scientific(double v, int mantissa_decimals) {
  int exponent = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  double mantissa = v / std::pow(10.0, exponent);
  if (std::fabs(std::round(mantissa * std::pow(10.0, mantissa_decimals))) >= 10 * std::pow(10.0, mantissa_decimals)) {
    mantissa /= 10;
    ++exponent;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*fe%d", mantissa_decimals, mantissa, exponent);
  return buf;
}

}  // namespace

Ticks nice_ticks(double data_lo, double data_hi, int target) {
  LD_ASSERT(std::isfinite(data_lo) && std::isfinite(data_hi) && data_lo <= data_hi && target > 0);
  if (data_hi == data_lo) {
    const double pad = data_lo == 0 ? 1.0 : std::fabs(data_lo) * 0.1;
    data_lo -= pad;
    data_hi += pad;
  }
  Ticks t;
  t.step = nice_step((data_hi - data_lo) / target);
  const long first = static_cast<long>(std::floor(data_lo / t.step + 1e-9));
  const long last = static_cast<long>(std::ceil(data_hi / t.step - 1e-9));
  for (long i = first; i <= last; ++i) {
    double v = static_cast<double>(i) * t.step;  // multiply (not accumulate) so 0.1*3 stays 0.3-ish
    if (std::fabs(v) < t.step * 1e-9) v = 0;
    t.values.push_back(v);
  }
  t.lo = t.values.front();
  t.hi = t.values.back();
  return t;
}

Ticks log_ticks(double data_lo, double data_hi) {
  LD_ASSERT(data_lo > 0 && data_hi >= data_lo);
  const int first = static_cast<int>(std::floor(std::log10(data_lo) + 1e-9));
  int last = static_cast<int>(std::ceil(std::log10(data_hi) - 1e-9));
  if (last == first) ++last;
  const bool minor = last - first <= 3;
  Ticks t;
  t.step = 0;
  for (int e = first; e <= last; ++e) {
    const double decade = std::pow(10.0, e);
    t.values.push_back(decade);
    if (minor && e < last) {
      t.values.push_back(2 * decade);
      t.values.push_back(5 * decade);
    }
  }
  t.lo = t.values.front();
  t.hi = t.values.back();
  return t;
}

std::vector<std::string> tick_labels(const Ticks& ticks) {
  double largest = 0;
  for (double v : ticks.values) largest = std::max(largest, std::fabs(v));
  std::vector<std::string> labels;
  if (ticks.step == 0) {  // log axis: each label on its own
    for (double v : ticks.values) {
      char buf[64];
      if (v >= 1e-3 && v < 1e5)
        std::snprintf(buf, sizeof buf, "%g", v);
      else
        std::snprintf(buf, sizeof buf, "%s", scientific(v, 0).c_str());
      labels.push_back(buf);
    }
    return labels;
  }
  const int step_exp = static_cast<int>(std::floor(std::log10(ticks.step) + 1e-9));
  // Step counts read better as "50k" than "50000" or "5.0e4": thousands from 10k on, millions from
  // 1M on, when the step is at least a tenth of the unit (so one decimal at most).
  struct Unit {
    double size, min_largest;
    const char* suffix;
  };
  for (const Unit& u : {Unit{1e6, 1e6, "M"}, Unit{1e3, 1e4, "k"}}) {
    if (largest < u.min_largest || ticks.step < u.size / 10 || largest >= 1e10) continue;
    const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(ticks.step / u.size) + 1e-9)));
    for (double v : ticks.values) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v / u.size, u.suffix);
      labels.push_back(v == 0 ? "0" : buf);
    }
    return labels;
  }
  const bool use_scientific = largest != 0 && (largest < 1e-2 || largest >= 1e10);
  // Scientific labels share one mantissa precision: enough for the finest tick ("5.0e-5", "1.0e-4").
  int mantissa_decimals = 0;
  for (double v : ticks.values)
    if (v != 0)
      mantissa_decimals =
          std::max(mantissa_decimals, static_cast<int>(std::floor(std::log10(std::fabs(v)) + 1e-9)) - step_exp);
  for (double v : ticks.values) {
    if (v == 0) {
      labels.push_back("0");
    } else if (use_scientific) {
      labels.push_back(scientific(v, mantissa_decimals));
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.*f", std::max(0, -step_exp), v);
      labels.push_back(buf);
    }
  }
  return labels;
}

}  // namespace ld::plot
