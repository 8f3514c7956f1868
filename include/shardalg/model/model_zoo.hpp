// Built-in models with real shapes, from each model's public Hugging Face config.json (hidden,
// intermediate and expert sizes, layers, heads): the tensor sets users actually move.
// Weight shapes follow the Hugging Face layout [out_features, in_features].
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shardalg/core/dims.hpp"
#include "shardalg/core/dtype.hpp"

namespace shardalg {

// How frameworks shard a tensor; layout recipes turn a role into placements.
enum class TensorRole {
  column_parallel,  // TP splits the output dim (dim 0)
  row_parallel,     // TP splits the input dim (dim 1)
  vocab_parallel,   // embeddings and the LM head: TP splits the vocabulary (dim 0)
  replicated,       // norms, small projections: never TP-split
  router,           // MoE router weights and biases: replicated
  expert_w1,        // stacked routed experts [E, I, H] (gate)
  expert_w2,        // stacked routed experts [E, H, I] (down)
  expert_w3,        // stacked routed experts [E, I, H] (up)
};

constexpr std::string_view to_string(TensorRole role) {
  switch (role) {
    case TensorRole::column_parallel: return "column_parallel";
    case TensorRole::row_parallel: return "row_parallel";
    case TensorRole::vocab_parallel: return "vocab_parallel";
    case TensorRole::replicated: return "replicated";
    case TensorRole::router: return "router";
    case TensorRole::expert_w1: return "expert_w1";
    case TensorRole::expert_w2: return "expert_w2";
    case TensorRole::expert_w3: return "expert_w3";
  }
  return "?";
}

// A parameter, or one optimizer state of a parameter (model/optimizer_state.hpp adds them).
struct ModelTensor {
  std::string name;
  Dims shape;
  TensorRole role;
  DType dtype = DType::bf16;
  std::string group = {};      // the optimizer param group ("": the model has one)
  std::string parameter = {};  // for a state: the parameter it belongs to; "" for a parameter
  std::string state = {};      // for a state: its name (master, exp_avg, exp_avg_sq, step)

  bool is_state() const { return !state.empty(); }
};

// An optimizer param group: its members share hyperparameters, and DeepSpeed flattens each
// group into partitions of its own.
struct ParamGroup {
  std::string name;
  double weight_decay = 0;
};

// The role named by its to_string form; Error listing the roles otherwise.
inline TensorRole parse_tensor_role(std::string_view text) {
  for (TensorRole role : {TensorRole::column_parallel, TensorRole::row_parallel, TensorRole::vocab_parallel, TensorRole::replicated,
                          TensorRole::router, TensorRole::expert_w1, TensorRole::expert_w2, TensorRole::expert_w3})
    if (text == to_string(role)) return role;
  detail::fail("unknown tensor role '", text,
               "' (column_parallel, row_parallel, vocab_parallel, replicated, router, expert_w1, expert_w2, expert_w3)");
}

inline bool is_expert(TensorRole role) {
  return role == TensorRole::expert_w1 || role == TensorRole::expert_w2 || role == TensorRole::expert_w3;
}

// A model state: parameters, and optimizer states with their param groups when an optimizer
// is named (with_optimizer).
struct ModelSpec {
  std::string name;
  std::vector<ModelTensor> tensors;
  std::string optimizer = {};              // "": parameters only
  std::vector<ParamGroup> param_groups = {};

  // Elements of the parameters, and of the optimizer states.
  index_t parameter_count() const { return element_count(false); }
  index_t state_count() const { return element_count(true); }

 private:
  index_t element_count(bool states) const {
    index_t total = 0;
    for (const ModelTensor& t : tensors)
      if (t.is_state() == states) total = checked_add(total, volume(t.shape));
    return total;
  }
};

// The model with every dimension divided by `factor`, rounding up (real shapes made small enough
// to execute on one machine). Example: [128256, 4096] / 16 -> [8016, 256].
inline ModelSpec scale_down(ModelSpec model, index_t factor) {
  if (factor <= 0) detail::fail("scale-down factor ", factor, " must be positive");
  for (ModelTensor& t : model.tensors)
    for (index_t& extent : t.shape) extent = ceil_div(extent, factor);
  return model;
}

namespace detail {

struct LlamaConfig {
  index_t hidden, intermediate, layers, heads, kv_heads;
};

inline ModelSpec llama3(std::string name, const LlamaConfig& c) {
  constexpr index_t head_dim = 128, vocab = 128256;
  ModelSpec m{std::move(name), {}};
  using R = TensorRole;
  m.tensors.push_back({"model.embed_tokens.weight", Dims{vocab, c.hidden}, R::vocab_parallel});
  for (index_t i = 0; i < c.layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    m.tensors.push_back({p + "self_attn.q_proj.weight", Dims{c.heads * head_dim, c.hidden}, R::column_parallel});
    m.tensors.push_back({p + "self_attn.k_proj.weight", Dims{c.kv_heads * head_dim, c.hidden}, R::column_parallel});
    m.tensors.push_back({p + "self_attn.v_proj.weight", Dims{c.kv_heads * head_dim, c.hidden}, R::column_parallel});
    m.tensors.push_back({p + "self_attn.o_proj.weight", Dims{c.hidden, c.heads * head_dim}, R::row_parallel});
    m.tensors.push_back({p + "mlp.gate_proj.weight", Dims{c.intermediate, c.hidden}, R::column_parallel});
    m.tensors.push_back({p + "mlp.up_proj.weight", Dims{c.intermediate, c.hidden}, R::column_parallel});
    m.tensors.push_back({p + "mlp.down_proj.weight", Dims{c.hidden, c.intermediate}, R::row_parallel});
    m.tensors.push_back({p + "input_layernorm.weight", Dims{c.hidden}, R::replicated});
    m.tensors.push_back({p + "post_attention_layernorm.weight", Dims{c.hidden}, R::replicated});
  }
  m.tensors.push_back({"model.norm.weight", Dims{c.hidden}, R::replicated});
  m.tensors.push_back({"lm_head.weight", Dims{vocab, c.hidden}, R::vocab_parallel});
  return m;
}

inline ModelSpec deepseek_v3() {
  constexpr index_t hidden = 7168, dense_intermediate = 18432, moe_intermediate = 2048, experts = 256, heads = 128;
  constexpr index_t q_lora = 1536, kv_lora = 512, nope = 128, rope = 64, v_head = 128, vocab = 129280;
  ModelSpec m{"deepseek-v3", {}};
  using R = TensorRole;
  m.tensors.push_back({"model.embed_tokens.weight", Dims{vocab, hidden}, R::vocab_parallel});
  for (index_t i = 0; i < 61; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    m.tensors.push_back({p + "self_attn.q_a_proj.weight", Dims{q_lora, hidden}, R::replicated});
    m.tensors.push_back({p + "self_attn.q_a_layernorm.weight", Dims{q_lora}, R::replicated});
    m.tensors.push_back({p + "self_attn.q_b_proj.weight", Dims{heads * (nope + rope), q_lora}, R::column_parallel});
    m.tensors.push_back({p + "self_attn.kv_a_proj_with_mqa.weight", Dims{kv_lora + rope, hidden}, R::replicated});
    m.tensors.push_back({p + "self_attn.kv_a_layernorm.weight", Dims{kv_lora}, R::replicated});
    m.tensors.push_back({p + "self_attn.kv_b_proj.weight", Dims{heads * (nope + v_head), kv_lora}, R::column_parallel});
    m.tensors.push_back({p + "self_attn.o_proj.weight", Dims{hidden, heads * v_head}, R::row_parallel});
    m.tensors.push_back({p + "input_layernorm.weight", Dims{hidden}, R::replicated});
    m.tensors.push_back({p + "post_attention_layernorm.weight", Dims{hidden}, R::replicated});
    if (i < 3) {
      m.tensors.push_back({p + "mlp.gate_proj.weight", Dims{dense_intermediate, hidden}, R::column_parallel});
      m.tensors.push_back({p + "mlp.up_proj.weight", Dims{dense_intermediate, hidden}, R::column_parallel});
      m.tensors.push_back({p + "mlp.down_proj.weight", Dims{hidden, dense_intermediate}, R::row_parallel});
    } else {
      m.tensors.push_back({p + "mlp.gate.weight", Dims{experts, hidden}, R::router});
      m.tensors.push_back({p + "mlp.gate.e_score_correction_bias", Dims{experts}, R::router});
      m.tensors.push_back({p + "mlp.experts.w1", Dims{experts, moe_intermediate, hidden}, R::expert_w1});
      m.tensors.push_back({p + "mlp.experts.w3", Dims{experts, moe_intermediate, hidden}, R::expert_w3});
      m.tensors.push_back({p + "mlp.experts.w2", Dims{experts, hidden, moe_intermediate}, R::expert_w2});
      m.tensors.push_back({p + "mlp.shared_experts.gate_proj.weight", Dims{moe_intermediate, hidden}, R::column_parallel});
      m.tensors.push_back({p + "mlp.shared_experts.up_proj.weight", Dims{moe_intermediate, hidden}, R::column_parallel});
      m.tensors.push_back({p + "mlp.shared_experts.down_proj.weight", Dims{hidden, moe_intermediate}, R::row_parallel});
    }
  }
  m.tensors.push_back({"model.norm.weight", Dims{hidden}, R::replicated});
  m.tensors.push_back({"lm_head.weight", Dims{vocab, hidden}, R::vocab_parallel});
  return m;
}

}  // namespace detail

// The built-in models: llama3-8b, llama3-70b, llama3-405b, deepseek-v3.
inline std::vector<std::string> model_zoo_names() { return {"llama3-8b", "llama3-70b", "llama3-405b", "deepseek-v3"}; }

// A built-in model by name; Error listing the known names otherwise.
inline ModelSpec model_from_zoo(std::string_view name) {
  if (name == "llama3-8b") return detail::llama3("llama3-8b", {4096, 14336, 32, 32, 8});
  if (name == "llama3-70b") return detail::llama3("llama3-70b", {8192, 28672, 80, 64, 8});
  if (name == "llama3-405b") return detail::llama3("llama3-405b", {16384, 53248, 126, 128, 8});
  if (name == "deepseek-v3") return detail::deepseek_v3();
  detail::fail("unknown model '", name, "' (built-in: llama3-8b, llama3-70b, llama3-405b, deepseek-v3)");
}

}  // namespace shardalg
