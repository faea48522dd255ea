#include "eval/classification.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.hpp"
#include "eval/exact_match.hpp"

namespace ld::eval {

namespace {

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

PrecisionRecallF1 prf(double tp, double fp, double fn) {
  PrecisionRecallF1 s;
  s.precision = ratio(tp, tp + fp);
  s.recall = ratio(tp, tp + fn);
  // scikit-learn's F from counts: 2tp / (2tp + fp + fn), 0 when that denominator is 0.
  s.f1 = ratio(2 * tp, 2 * tp + fp + fn);
  return s;
}

}  // namespace

ConfusionMatrix confusion_matrix(const std::vector<std::string>& references, const std::vector<std::string>& predictions,
                                 const std::vector<std::string>& labels) {
  LD_CHECK(references.size() == predictions.size(), "classification: ", references.size(), " references but ",
           predictions.size(), " predictions");
  LD_CHECK(!references.empty(), "classification: no examples");
  ConfusionMatrix m;
  if (labels.empty()) {
    std::set<std::string> seen(references.begin(), references.end());
    seen.insert(predictions.begin(), predictions.end());
    m.labels.assign(seen.begin(), seen.end());
  } else {
    m.labels = labels;
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < m.labels.size(); ++i)
    LD_CHECK(index.emplace(m.labels[i], i).second, "classification: label '", m.labels[i], "' is listed twice");
  m.counts.assign(m.labels.size(), std::vector<int64_t>(m.labels.size(), 0));
  auto find = [&](const std::string& label, const char* what, size_t pos) {
    auto it = index.find(label);
    LD_CHECK(it != index.end(), "classification: ", what, " ", pos + 1, " has label '", label,
             "', which is not in the label set");
    return it->second;
  };
  for (size_t i = 0; i < references.size(); ++i)
    ++m.counts[find(references[i], "reference", i)][find(predictions[i], "prediction", i)];
  return m;
}

ClassificationReport classification_report(const ConfusionMatrix& matrix) {
  const size_t n = matrix.labels.size();
  ClassificationReport r;
  r.matrix = matrix;
  double sum_tp = 0, sum_fp = 0, sum_fn = 0;
  for (size_t c = 0; c < n; ++c) {
    int64_t tp = matrix.counts[c][c], support = 0, predicted = 0;
    for (size_t k = 0; k < n; ++k) {
      support += matrix.counts[c][k];
      predicted += matrix.counts[k][c];
    }
    ClassReport cls{matrix.labels[c], prf(double(tp), double(predicted - tp), double(support - tp)), support, predicted};
    r.per_class.push_back(cls);
    r.correct += tp;
    r.total += support;
    sum_tp += double(tp);
    sum_fp += double(predicted - tp);
    sum_fn += double(support - tp);
  }
  r.accuracy = ratio(double(r.correct), double(r.total));
  r.micro = prf(sum_tp, sum_fp, sum_fn);
  for (const ClassReport& cls : r.per_class) {
    const double w = ratio(double(cls.support), double(r.total));
    r.macro.precision += cls.scores.precision / double(n);
    r.macro.recall += cls.scores.recall / double(n);
    r.macro.f1 += cls.scores.f1 / double(n);
    r.weighted.precision += w * cls.scores.precision;
    r.weighted.recall += w * cls.scores.recall;
    r.weighted.f1 += w * cls.scores.f1;
  }
  return r;
}

double accuracy(const std::vector<std::string>& references, const std::vector<std::string>& predictions) {
  return exact_match(references, predictions);
}

double top_k_accuracy(const std::vector<std::vector<double>>& scores, const std::vector<int64_t>& targets, int k) {
  LD_CHECK(scores.size() == targets.size(), "top_k_accuracy: ", scores.size(), " score rows but ", targets.size(),
           " targets");
  LD_CHECK(!scores.empty(), "top_k_accuracy: no examples");
  LD_CHECK(k >= 1, "top_k_accuracy: k must be at least 1, got ", k);
  int64_t hits = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const auto& row = scores[i];
    const int64_t t = targets[i];
    LD_CHECK(t >= 0 && t < int64_t(row.size()), "top_k_accuracy: row ", i + 1, " has target ", t, " outside [0, ",
             row.size(), ")");
    // Rank of the target: classes with a higher score, and with an equal score but a higher index.
    int64_t rank = 0;
    for (size_t c = 0; c < row.size(); ++c)
      if (row[c] > row[t] || (row[c] == row[t] && int64_t(c) > t)) ++rank;
    hits += rank < k ? 1 : 0;
  }
  return double(hits) / double(scores.size());
}

}  // namespace ld::eval
