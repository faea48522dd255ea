// Batches of instruction examples: padding, packing, label alignment, one use of every example per
// epoch, and exact resume from a saved cursor.
#include "tune/sft_loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "train/objectives.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
constexpr int32_t kIgnore = int32_t(train::kIgnoreLabel);

// Example i: ids 1000*i + 0..len-1 (distinct everywhere, so a token tells its example and place);
// the second half is trained.
std::vector<SftExample> make_examples(const std::vector<int>& lengths) {
  std::vector<SftExample> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    SftExample e;
    for (int t = 0; t < lengths[i]; ++t) {
      e.ids.push_back(int32_t(1000 * (i + 1) + t));
      e.labels.push_back(t >= lengths[i] / 2 ? e.ids.back() : kIgnore);
    }
    out.push_back(std::move(e));
  }
  return out;
}

struct Flat {
  std::vector<int64_t> ids, mask, targets;
  int64_t rows = 0, length = 0;
};
Flat flat(const SftBatch& b) {
  return {b.input_ids.to_vector<int64_t>(), b.attention_mask.to_vector<int64_t>(), b.targets.to_vector<int64_t>(),
          b.input_ids.shape()[0], b.input_ids.shape()[1]};
}

// The next-token target an id should have: the label of the following token of its example.
std::map<int64_t, int64_t> expected_targets(const std::vector<SftExample>& examples) {
  std::map<int64_t, int64_t> m;
  for (const SftExample& e : examples)
    for (size_t t = 0; t < e.ids.size(); ++t) m[e.ids[t]] = t + 1 < e.ids.size() ? e.labels[t + 1] : kIgnore;
  return m;
}

TEST(SftLoader, UnpackedEpochUsesEveryExampleOnce) {
  const std::vector<SftExample> examples = make_examples({5, 9, 3, 7, 6, 4, 8});
  const auto want = expected_targets(examples);
  SftLoader loader(examples, {.batch_size = 3, .seq_len = 16, .seed = 5, .pad_id = 77});
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  std::vector<int64_t> seen;
  for (int b = 0; b < 3; ++b) {
    const Flat f = flat(loader.next());
    EXPECT_EQ(f.rows, b < 2 ? 3 : 1);  // the last batch holds the remainder
    int64_t longest = 0;
    for (int64_t r = 0; r < f.rows; ++r) {
      int64_t real = 0;
      for (int64_t t = 0; t < f.length; ++t) {
        const size_t at = size_t(r * f.length + t);
        if (f.mask[at] == 1) {
          ASSERT_EQ(real, t) << "right padding: real tokens come first";
          ++real;
          seen.push_back(f.ids[at]);
          EXPECT_EQ(f.targets[at], want.at(f.ids[at])) << "id " << f.ids[at];
        } else {
          EXPECT_EQ(f.ids[at], 77);
          EXPECT_EQ(f.targets[at], kIgnore);
        }
      }
      longest = std::max(longest, real);
    }
    EXPECT_EQ(longest, f.length) << "padded to the longest example of the batch";
  }
  EXPECT_EQ(loader.cursor(), (SftCursor{1, 0}));
  std::vector<int64_t> all;
  for (const SftExample& e : examples) all.insert(all.end(), e.ids.begin(), e.ids.end());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, all);
}

TEST(SftLoader, PackedRowsKeepEveryTrainedTargetOnce) {
  const std::vector<SftExample> examples = make_examples({5, 8, 3, 7, 6, 4, 8, 1});  // 42 tokens
  const auto want = expected_targets(examples);
  int64_t trained = 0;
  for (const auto& [id, target] : want) trained += target != kIgnore;
  SftLoader loader(examples, {.batch_size = 2, .seq_len = 8, .packing = true, .seed = 9});
  EXPECT_EQ(loader.units_per_epoch(), 6);  // ceil(42 / 8)
  std::vector<int64_t> stream, stream_targets;
  for (int b = 0; b < 3; ++b) {
    const Flat f = flat(loader.next());
    ASSERT_EQ(f.length, 8);
    for (size_t i = 0; i < f.ids.size(); ++i) {
      if (f.mask[i] == 0) {
        EXPECT_EQ(f.targets[i], kIgnore);
        continue;
      }
      stream.push_back(f.ids[i]);
      stream_targets.push_back(f.targets[i]);
    }
  }
  ASSERT_EQ(stream.size(), 42u) << "only the last row is padded";
  int64_t scored = 0;
  for (size_t j = 0; j < stream.size(); ++j) {
    EXPECT_EQ(stream_targets[j], want.at(stream[j])) << "id " << stream[j];
    if (stream_targets[j] != kIgnore) {
      ++scored;
      ASSERT_LT(j + 1, stream.size());
      EXPECT_EQ(stream_targets[j], stream[j + 1]) << "a target is the next token, also across rows";
    }
  }
  EXPECT_EQ(scored, trained);
  std::sort(stream.begin(), stream.end());
  EXPECT_EQ(stream.size(), std::set<int64_t>(stream.begin(), stream.end()).size()) << "no token twice";
}

std::vector<std::vector<int64_t>> take(SftLoader& loader, int n) {
  std::vector<std::vector<int64_t>> out;
  for (int i = 0; i < n; ++i) {
    const SftBatch b = loader.next();
    std::vector<int64_t> v = b.input_ids.to_vector<int64_t>();
    const std::vector<int64_t> t = b.targets.to_vector<int64_t>();
    v.insert(v.end(), t.begin(), t.end());
    out.push_back(std::move(v));
  }
  return out;
}

TEST(SftLoader, ResumeFromSavedCursorContinuesIdentically) {
  const std::vector<SftExample> examples = make_examples({5, 9, 3, 7, 6, 4, 8, 2, 5});
  for (const bool packing : {false, true}) {
    const SftLoaderOptions options{.batch_size = 2, .seq_len = 10, .packing = packing, .seed = 3};
    SftLoader full(examples, options);
    take(full, 4);
    const nlohmann::json saved = full.cursor();  // as trainer_state.json would hold it
    const auto expected = take(full, 9);         // crosses at least one epoch boundary
    SftLoader resumed(examples, options, saved.get<SftCursor>());
    EXPECT_EQ(take(resumed, 9), expected) << "packing=" << packing;
  }
}

TEST(SftLoader, EpochOrderDependsOnSeedAndEpoch) {
  const std::vector<SftExample> examples = make_examples(std::vector<int>(20, 3));
  SftLoader a(examples, {.batch_size = 20, .seq_len = 4, .seed = 1});
  SftLoader b(examples, {.batch_size = 20, .seq_len = 4, .seed = 1});
  SftLoader c(examples, {.batch_size = 20, .seq_len = 4, .seed = 2});
  const auto first = take(a, 1);
  EXPECT_EQ(take(b, 1), first);
  EXPECT_NE(take(c, 1), first);
  EXPECT_NE(take(a, 1), first);
  SftLoader plain(examples, {.batch_size = 20, .seq_len = 4, .shuffle = false});
  EXPECT_EQ(plain.next().input_ids.to_vector<int64_t>()[0], 1000);
}

TEST(SftLoader, BadOptionsAreErrors) {
  const std::vector<SftExample> examples = make_examples({5, 9});
  expect_mentions(error_message([&] { SftLoader(examples, {.seq_len = 8}); }), {"example 1", "9 tokens", "seq_len=8"});
  expect_mentions(error_message([&] { SftLoader(examples, {.seq_len = 9}, {0, 2}); }), {"cursor", "position 2"});
  expect_mentions(error_message([&] { SftLoader({}, {.seq_len = 9}); }), {"no examples"});
  expect_mentions(error_message([] { nlohmann::json{{"epoch", 1}}.get<SftCursor>(); }), {"cursor", "position"});
}

}  // namespace
}  // namespace ld::tune
