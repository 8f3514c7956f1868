#include "../test_support.hpp"

using namespace shardalg;

namespace {
std::vector<std::string> kinds(const std::vector<LintFinding>& findings) {
  std::vector<std::string> result;
  for (const LintFinding& f : findings) result.push_back(f.kind);
  return result;
}
}  // namespace

TEST_CASE("lint: clean layouts have no findings") {
  CHECK(lint_layout(MeshLayout::parse("dp=4,tp=2", "_S(0,2),S(0)", Dims{14336, 4096})).empty());
  CHECK(lint_layout(MeshLayout::parse("dp=4", "R", Dims{3})).empty());
  CHECK(lint_layout(MeshLayout::parse("dp=4", "S(0)", Dims{0})).empty());  // nothing anywhere: not uneven
  CHECK(lint_layout(fsdp_over_tp_label(DeviceMesh::parse("dp=3,tp=2"), "dp", "tp", Dims{12, 4})).empty());  // label == bytes
}

TEST_CASE("lint: an uneven split that leaves ranks empty names the first") {
  std::vector<LintFinding> findings = lint_layout(MeshLayout::parse("dp=4,tp=2", "S(0),R", Dims{2, 3}));
  REQUIRE(kinds(findings) == std::vector<std::string>{"empty_shards"});
  // Replicas count once: 4 distinct tiles, rows of dp 2 and 3 are empty; dp=2 is rank 4.
  CHECK(findings[0].message.find("S(0), R of [2, 3] on dp=4,tp=2: 2 of 4 distinct tiles hold nothing, the first at mesh coordinate [2, 0] (rank 4)") !=
        std::string::npos);
}

TEST_CASE("lint: a strided label that is not the bytes of its shard order names a rank and an element") {
  MeshLayout label = fsdp_over_tp_label(DeviceMesh::parse("dp=3,tp=2"), "dp", "tp", Dims{7, 4});
  std::vector<LintFinding> findings = lint_layout(label);
  // n=7, T=2, D=3: the label gives rank 4 (dp 2, tp 0) row 6; the bytes give it nothing.
  REQUIRE(kinds(findings) == std::vector<std::string>{"empty_shards", "label_differs_from_bytes"});
  CHECK(findings[1].message.find("rank 4 holds element [6, 0] under the label and not in the bytes") != std::string::npos);
  // The bytes themselves only leave rank 4 (dp 2, tp 0) empty.
  MeshLayout bytes = fsdp_over_tp_physical(DeviceMesh::parse("dp=3,tp=2"), "dp", "tp", Dims{7, 4});
  CHECK(kinds(lint_layout(bytes)) == std::vector<std::string>{"empty_shards"});
  CHECK_FALSE(compare_layouts(label, bytes).equivalent());
}

TEST_CASE("lint: strided placements that express no shard order") {
  std::vector<LintFinding> findings = lint_layout(MeshLayout::parse("a=4,b=8", "_S(0,2),_S(1,2)", Dims{16, 16}));
  REQUIRE(kinds(findings) == std::vector<std::string>{"strided_without_order"});
  CHECK(findings[0].message.find("_S(0, 2), _S(1, 2) of [16, 16] on a=4,b=8: the strided placements express no shard order") != std::string::npos);
}
