#pragma once
// Axis ticks at "nice" values: a step of 1, 2 or 5 times a power of ten, and an axis range that
// starts and ends on a tick, so the data fits and the labels are short.
#include <string>
#include <vector>

namespace ld::plot {

struct Ticks {
  double lo = 0, hi = 1;        // the axis range (the first and last tick)
  double step = 1;              // distance between ticks (linear axes only)
  std::vector<double> values;   // tick positions, ascending, lo and hi included
};

// Ticks covering [data_lo, data_hi] with about `target` intervals. A degenerate range (lo == hi) is
// widened around the value so a flat series still gets an axis.
Ticks nice_ticks(double data_lo, double data_hi, int target = 5);

// Ticks for a log10 axis over positive data: whole decades, plus 2 and 5 within each decade when the
// range spans few decades. lo/hi are decade bounds (powers of ten); step is 0.
Ticks log_ticks(double data_lo, double data_hi);

// Short labels for the ticks of one axis, consistent across the axis: fixed notation with just
// enough decimals for the step ("0.5", "1.0", "1.5"), thousands and millions with a suffix
// ("50k", "1.5M"), or scientific for very small magnitudes ("1.5e-4").
std::vector<std::string> tick_labels(const Ticks& ticks);

}  // namespace ld::plot
