#pragma once
// Classification metrics over string labels: the confusion matrix, accuracy, and precision, recall and
// F1 per class with their micro, macro and support-weighted averages, following scikit-learn's
// precision_recall_fscore_support with zero_division=0: a ratio whose denominator is 0 (a class never
// predicted: precision; a class with no support: recall; both 0: F1) counts as 0, and such a class
// still counts in the macro average when it is in the label set.
#include <cstdint>
#include <string>
#include <vector>

namespace ld::eval {

struct ConfusionMatrix {
  std::vector<std::string> labels;         // row/column order
  std::vector<std::vector<int64_t>> counts;  // counts[true][predicted]
};

// labels: the label set in the order to report; empty means the sorted union of the labels seen.
// A reference or prediction outside a given label set is an error naming its 1-based position.
ConfusionMatrix confusion_matrix(const std::vector<std::string>& references, const std::vector<std::string>& predictions,
                                 const std::vector<std::string>& labels = {});

struct PrecisionRecallF1 {
  double precision = 0, recall = 0, f1 = 0;
};

struct ClassReport {
  std::string label;
  PrecisionRecallF1 scores;
  int64_t support = 0;    // references with this label
  int64_t predicted = 0;  // predictions with this label
};

struct ClassificationReport {
  double accuracy = 0;
  int64_t correct = 0, total = 0;
  PrecisionRecallF1 micro, macro, weighted;
  std::vector<ClassReport> per_class;  // in the matrix's label order
  ConfusionMatrix matrix;
};

ClassificationReport classification_report(const ConfusionMatrix& matrix);

// Fraction of positions where prediction == reference.
double accuracy(const std::vector<std::string>& references, const std::vector<std::string>& predictions);

// Fraction of rows whose target class is among the k highest scores. Ties are broken as scikit-learn's
// top_k_accuracy_score does (a stable ascending sort, reversed: of equal scores the higher class index
// ranks first).
double top_k_accuracy(const std::vector<std::vector<double>>& scores, const std::vector<int64_t>& targets, int k);

}  // namespace ld::eval
