#include "../test_support.hpp"

using namespace shardalg;

namespace {

ModelSpec tiny_moe() {
  using R = TensorRole;
  return ModelSpec{"tiny-moe",
                   {{"embed", Dims{10, 6}, R::vocab_parallel},
                    {"q", Dims{6, 6}, R::column_parallel},
                    {"o", Dims{6, 6}, R::row_parallel},
                    {"norm", Dims{6}, R::replicated},
                    {"router", Dims{4, 6}, R::router},
                    {"w1", Dims{4, 5, 6}, R::expert_w1},
                    {"w2", Dims{4, 6, 5}, R::expert_w2},
                    {"head", Dims{10, 6}, R::vocab_parallel, DType::fp32}}};
}

bool same_pieces(const std::vector<Piece>& a, const std::vector<Piece>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i].global == b[i].global) || a[i].local != b[i].local || a[i].strides != b[i].strides) return false;
  return true;
}

}  // namespace

TEST_CASE("with_optimizer adam: fp32 master (for non-fp32 parameters), exp_avg, exp_avg_sq, a scalar step; param groups") {
  ModelSpec model = with_optimizer(tiny_moe(), "adam");
  CHECK(model.optimizer == "adam");
  REQUIRE(model.param_groups.size() == 2);
  CHECK(model.param_groups[0].name == "decay");
  CHECK(model.param_groups[1].weight_decay == 0.0);
  // 8 parameters; 7 bf16 with 4 states each, the fp32 head with 3.
  REQUIRE(model.tensors.size() == 8 + 7 * 4 + 3);
  CHECK(model.parameter_count() == tiny_moe().parameter_count());
  const ModelTensor& master = model.tensors[8];
  CHECK(master.name == "optimizer.state.embed.master");
  CHECK(master.dtype == DType::fp32);
  CHECK(master.shape == Dims{10, 6});
  CHECK(master.role == TensorRole::vocab_parallel);
  CHECK(master.parameter == "embed");
  CHECK(master.group == "decay");
  const ModelTensor& step = model.tensors[11];
  CHECK(step.name == "optimizer.state.embed.step");
  CHECK(step.shape.empty());
  CHECK(step.role == TensorRole::replicated);
  auto norm_avg = std::find_if(model.tensors.begin(), model.tensors.end(), [](const ModelTensor& t) { return t.name == "optimizer.state.norm.exp_avg"; });
  REQUIRE(norm_avg != model.tensors.end());
  CHECK(norm_avg->group == "no_decay");
  CHECK(std::none_of(model.tensors.begin(), model.tensors.end(), [](const ModelTensor& t) { return t.name == "optimizer.state.head.master"; }));
  // exp_avg, exp_avg_sq and master are the parameter's size each; step one element.
  CHECK(model.state_count() == 3 * tiny_moe().parameter_count() - 60 + 8);
  CHECK(with_optimizer(tiny_moe(), "none").tensors.size() == 8);
  SHARDALG_CHECK_THROWS_CONTAINING(with_optimizer(tiny_moe(), "sgd"), Error, "unknown optimizer 'sgd' (none, adam, adamw)");
  SHARDALG_CHECK_THROWS_CONTAINING(with_optimizer(model, "adam"), Error, "already has optimizer state ('optimizer.state.embed.master')");
  ModelSpec grouped = tiny_moe();
  grouped.tensors[0].group = "embeddings";
  SHARDALG_CHECK_THROWS_CONTAINING(with_optimizer(grouped, "adam"), Error, "tensor 'embed' is in param group 'embeddings', which the model does not list");
}

TEST_CASE("every recipe lays each optimizer state out exactly as its parameter, in buffers of its own") {
  ModelSpec model = with_optimizer(tiny_moe(), "adam");
  for (const char* recipe : {"fsdp dp=3", "fsdp-tp dp=2,tp=2", "zero1 dp=4", "zero2 dp=3,tp=2", "zero3 dp=5", "megatron-distopt dp=2,tp=2,bucket=40",
                             "ep ep=2,dp=4", "ep ep=2,dp=4,experts=zero1", "ep ep=4,dp=4,experts=zero3,dense=fsdp", "replicated ranks=2"}) {
    CAPTURE(recipe);
    ModelLayout layout = layout_model(model, recipe);
    REQUIRE(layout.size() == model.tensors.size());
    for (std::size_t t = 0; t < model.tensors.size(); ++t) {
      const ModelTensor& state = model.tensors[t];
      if (!state.is_state()) continue;
      CAPTURE(state.name);
      if (state.state == "step") {  // a scalar, whole on every rank
        for (index_t rank : layout.ranks()) CHECK(layout[t].layout.held_elements(rank) == 1);
        continue;
      }
      std::size_t p = *layout.find(state.parameter);
      CHECK(layout.buffer_of(t) != layout.buffer_of(p));
      CHECK(layout[t].dtype == DType::fp32);
      for (index_t rank : layout.ranks()) {
        CHECK(same_pieces(layout[t].layout.pieces(rank), layout[p].layout.pieces(rank)));
        CHECK(layout[t].layout.buffer_elements(rank) == layout[p].layout.buffer_elements(rank));
      }
    }
  }
}

TEST_CASE("flat buffers: ZeRO one per param group, dtype and state; Megatron one per dtype and state; named by scheme and first tensor") {
  ModelSpec model = with_optimizer(tiny_moe(), "adam");
  std::size_t scalars = 8;  // each parameter's step
  // ZeRO: (decay, no_decay) x bf16 parameters and their master, exp_avg, exp_avg_sq; the fp32 head's
  // own parameter, exp_avg and exp_avg_sq buffers.
  ModelLayout zero = layout_model(model, "zero3 dp=4");
  CHECK(zero.buffer_count() == 2 * 4 + 3 + scalars);
  CHECK(zero.buffer_name(zero.buffer_of(*zero.find("q"))) == "zero3:embed");
  CHECK(zero.buffer_of(*zero.find("norm")) != zero.buffer_of(*zero.find("q")));
  CHECK(zero.buffer_name(zero.buffer_of(*zero.find("optimizer.state.o.exp_avg_sq"))) == "zero3:optimizer.state.embed.exp_avg_sq");
  CHECK(zero.buffer_name(zero.buffer_of(*zero.find("optimizer.state.q.step"))) == "optimizer.state.q.step");
  ModelLayout megatron = layout_model(model, "megatron-distopt dp=2,tp=2");
  CHECK(megatron.buffer_count() == 4 + 3 + scalars);
  CHECK(megatron.buffer_of(*megatron.find("norm")) == megatron.buffer_of(*megatron.find("q")));
  // Without an optimizer the model has one group: one buffer per dtype, as before.
  CHECK(layout_model(tiny_moe(), "zero3 dp=4").buffer_count() == 2);
}
