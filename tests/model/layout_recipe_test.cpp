#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("recipes parse into a kind and options") {
  LayoutRecipe r = LayoutRecipe::parse("megatron-distopt dp=4, tp=2,bucket=1000");
  CHECK(r.kind == "megatron-distopt");
  CHECK(r.positive("dp", 0) == 4);
  CHECK(r.positive("bucket", 0) == 1000);
  CHECK(LayoutRecipe::parse("replicated").options.empty());
  SHARDALG_CHECK_THROWS_CONTAINING(LayoutRecipe::parse("zero4 dp=2"), ParseError, "unknown kind 'zero4'");
  SHARDALG_CHECK_THROWS_CONTAINING(LayoutRecipe::parse("zero3 dp"), ParseError, "expected key=value, got 'dp'");
  SHARDALG_CHECK_THROWS_CONTAINING(LayoutRecipe::parse("zero3 dp=2,dp=3"), ParseError, "option 'dp' is given twice");
  SHARDALG_CHECK_THROWS_CONTAINING(LayoutRecipe::parse(""), ParseError, "is empty");
}

TEST_CASE("recipe options are checked against the kind") {
  ModelSpec model = model_from_zoo("llama3-8b");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "fsdp tp=2"), Error, "unknown option 'tp' for fsdp (options: dp)");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "zero3 tp=2"), Error, "zero3 needs dp=N");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "fsdp dp=0"), Error, "dp=0 is not a positive integer");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "fsdp dp=x"), Error, "dp=x is not a positive integer");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "ep ep=3,dp=8"), Error, "ep=3 does not divide dp=8");
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "ep ep=2,dp=8,experts=tp"), Error, "experts=tp");
}

TEST_CASE("fsdp-tp: TP by role, FSDP2 on top; TP splits first where both shard dim 0") {
  ModelLayout layout = layout_model(model_from_zoo("llama3-8b"), "fsdp-tp dp=4,tp=2");
  const MeshLayout& q = *layout[*layout.find("model.layers.0.self_attn.q_proj.weight")].layout.mesh_layout();
  CHECK(format_placements(q.placements()) == "S(0), S(0)");
  REQUIRE(q.application_order());
  CHECK(format_shard_order(*q.application_order()) == format_shard_order(ShardOrder{{0, {1, 0}}}));
  const MeshLayout& o = *layout[*layout.find("model.layers.0.self_attn.o_proj.weight")].layout.mesh_layout();
  CHECK(format_placements(o.placements()) == "S(0), S(1)");
  const MeshLayout& norm = *layout[*layout.find("model.norm.weight")].layout.mesh_layout();
  CHECK(format_placements(norm.placements()) == "S(0), R");
  // Rank (dp=1, tp=1) = 3 holds rows [2048 + 512, 2048 + 1024) of q_proj (4096 rows).
  CHECK(q.tile(3).dim(0).runs()[0].global_begin == 2560);
  CHECK(q.tile(3).dim(0).size() == 512);
}

TEST_CASE("flat recipes share one partition per rank; ep puts experts on their own") {
  ModelSpec model = model_from_zoo("llama3-8b");
  ModelLayout zero3 = layout_model(model, "zero3 dp=8");
  CHECK(zero3.buffer_count() == 1);
  CHECK(zero3[0].layout.is_flat());
  CHECK(zero3.ranks().size() == 8);
  ModelLayout fsdp = layout_model(model, "fsdp dp=8");
  CHECK(fsdp.buffer_count() == model.tensors.size());
  ModelSpec moe = scale_down(model_from_zoo("deepseek-v3"), 16);
  ModelLayout ep = layout_model(moe, "ep ep=4,dp=8,experts=zero3,dense=fsdp");
  CHECK(ep.buffer_count() == 1 + (moe.tensors.size() - 3 * 58));  // experts share one partition
  const auto& w1 = ep[*ep.find("model.layers.3.mlp.experts.w1")].layout;
  CHECK(w1.is_flat());
  CHECK(w1.mesh().names() == std::vector<std::string>{"edp", "ep"});
  ModelLayout titan = layout_model(moe, "ep ep=4,dp=8");
  const MeshLayout& w2 = *titan[*titan.find("model.layers.3.mlp.experts.w2")].layout.mesh_layout();
  CHECK(w2.mesh().names() == std::vector<std::string>{"efsdp", "ep"});
  CHECK(w2.tile(1).dim(0).runs()[0].global_begin == 4);  // EP rank 1 of 4: experts [4, 8)
}

TEST_CASE("flat recipes keep one partition per dtype, as the frameworks' flat buffers do") {
  ModelSpec mixed{"mixed",
                  {{"embed", Dims{10, 4}, TensorRole::vocab_parallel, DType::fp32},
                   {"q", Dims{8, 4}, TensorRole::column_parallel, DType::bf16},
                   {"o", Dims{4, 8}, TensorRole::row_parallel, DType::bf16},
                   {"norm", Dims{4}, TensorRole::replicated, DType::fp32}}};
  for (const char* recipe : {"zero1 dp=2", "zero3 dp=2,tp=2", "megatron-distopt dp=2,tp=2"}) {
    CAPTURE(recipe);
    ModelLayout layout = layout_model(mixed, recipe);
    CHECK(layout.buffer_count() == 2);
    CHECK(layout.buffer_of(0) == layout.buffer_of(3));  // fp32: embed and norm
    CHECK(layout.buffer_of(1) == layout.buffer_of(2));  // bf16: q and o
    CHECK(layout.buffer_of(0) != layout.buffer_of(1));
  }
  // Built by hand, one flat partition of two dtypes is refused: no executor can fill it.
  ModelLayout zero3 = layout_model(ModelSpec{"one", {{"a", Dims{4}, TensorRole::replicated}, {"b", Dims{4}, TensorRole::replicated}}}, "zero3 dp=2");
  std::vector<NamedTensorLayout> tensors = zero3.tensors();
  tensors[1].dtype = DType::fp32;
  SHARDALG_CHECK_THROWS_CONTAINING(ModelLayout(tensors), Error, "tensors 'a' (bf16) and 'b' (fp32) share a flat partition; a partition holds one dtype");
}

TEST_CASE("scale_down divides every dimension, rounding up") {
  ModelSpec small = scale_down(model_from_zoo("llama3-8b"), 16);
  CHECK(small.tensors[0].shape == Dims{8016, 256});
  CHECK(scale_down(ModelSpec{"m", {{"x", Dims{17, 1}, TensorRole::replicated}}}, 16).tensors[0].shape == Dims{2, 1});
  SHARDALG_CHECK_THROWS_CONTAINING(scale_down(small, 0), Error, "scale-down factor 0 must be positive");
}
