// Classification JSONL: label sets from the file (sorted) or the config, and errors naming file:line.
#include "tune/classify_data.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
using ld::test::TempDir;
using test::write_text;

TEST(ClassifyData, LabelSetFromFileIsSorted) {
  TempDir dir;
  write_text(dir / "s.jsonl", "{\"text\": \"x\", \"label\": \"pos\"}\n{\"text\": \"y\", \"label\": \"neg\"}\n"
                              "{\"text\": \"z\", \"label\": \"pos\"}\n");
  EXPECT_EQ(label_set_from_file(dir / "s.jsonl"), (std::vector<std::string>{"neg", "pos"}));
  // Integer labels sort as numbers, not as strings ("10" after "2").
  write_text(dir / "i.jsonl", "{\"text\": \"x\", \"label\": 10}\n{\"text\": \"y\", \"label\": 2}\n"
                              "{\"text\": \"z\", \"label\": 1}\n");
  EXPECT_EQ(label_set_from_file(dir / "i.jsonl"), (std::vector<std::string>{"1", "2", "10"}));
  const ClassifyData d = read_classify_jsonl(dir / "i.jsonl", label_set_from_file(dir / "i.jsonl"));
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.examples[0].label, 2);
  EXPECT_EQ(d.examples[1].label, 1);
  EXPECT_EQ(d.examples[2].label, 0);
  EXPECT_EQ(d.examples[1].text, "y");
  EXPECT_EQ(d.examples[1].source, (dir / "i.jsonl").string() + ":2");
}

TEST(ClassifyData, ConfigLabelSetKeepsItsOrder) {
  TempDir dir;
  write_text(dir / "d.jsonl", "{\"text\": \"x\", \"label\": \"neg\"}\n{\"text\": \"y\", \"label\": 1}\n");
  const ClassifyData d = read_classify_jsonl(dir / "d.jsonl", {"pos", "1", "neg"});
  EXPECT_EQ(d.examples[0].label, 2);
  EXPECT_EQ(d.examples[1].label, 1);  // integer 1 matches the label "1"
}

TEST(ClassifyData, BadRecordsNameFileAndLine) {
  TempDir dir;
  write_text(dir / "d.jsonl", "{\"text\": \"x\", \"label\": \"pos\"}\n{\"text\": \"y\", \"label\": \"maybe\"}\n");
  expect_mentions(error_message([&] { read_classify_jsonl(dir / "d.jsonl", {"neg", "pos"}); }),
                  {"d.jsonl:2", "label 'maybe' is not in the label set"});
  write_text(dir / "m.jsonl", "{\"text\": \"x\", \"label\": \"pos\"}\n{\"text\": \"y\", \"label\": \n");
  expect_mentions(error_message([&] { label_set_from_file(dir / "m.jsonl"); }), {"m.jsonl:2", "malformed JSON"});
  write_text(dir / "k.jsonl", "{\"text\": \"x\"}\n");
  expect_mentions(error_message([&] { read_classify_jsonl(dir / "k.jsonl", {"a"}); }), {"k.jsonl:1", "missing key \"label\""});
  write_text(dir / "f.jsonl", "{\"text\": \"x\", \"label\": 1.5}\n");
  expect_mentions(error_message([&] { label_set_from_file(dir / "f.jsonl"); }), {"f.jsonl:1", "string or an integer"});
  expect_mentions(error_message([&] { read_classify_jsonl(dir / "d.jsonl", {"pos", "pos"}); }), {"'pos' is listed twice"});
}

}  // namespace
}  // namespace ld::tune
