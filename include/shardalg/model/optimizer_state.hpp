// Optimizer state is part of the model state: with_optimizer adds, per parameter, the states an
// optimizer keeps, as tensors of the model laid out by the same recipes as the parameters.
//
//   adam, adamw   master      fp32 copy of the parameter (only for parameters that are not fp32:
//                             with fp32 parameters, as FSDP2 keeps them, the parameter is the master)
//                 exp_avg     fp32, the parameter's shape
//                 exp_avg_sq  fp32, the parameter's shape
//                 step        fp32 scalar (torch.optim.Adam keeps one per parameter)
//
// A state is named "optimizer.state.<parameter>.<state>", as torch.distributed.checkpoint flattens
// {"optimizer": get_optimizer_state_dict(...)}; it has its parameter's role and param group,
// so a recipe lays it out exactly as it lays out its parameter (FSDP2 shards each state like its
// parameter; ZeRO and Megatron's distributed optimizer keep each state in flat partitions of the
// same geometry as the parameters'; expert states follow their experts over the expert-replica
// group). The scalar step is replicated.
//
// Param groups: a model without groups gets Megatron's and Hugging Face's split, "decay" (weight
// decay 0.1) for matrices and "no_decay" (0.0) for vectors and scalars (norms, biases).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "shardalg/model/model_zoo.hpp"

namespace shardalg {

inline constexpr std::string_view optimizer_state_prefix = "optimizer.state.";

// The optimizers with_optimizer knows: none (parameters only), adam, adamw.
inline std::string optimizer_names() { return "none, adam, adamw"; }

// The model with each parameter's optimizer states appended (parameters first, in model order,
// then each parameter's states in that order). "none" or "" returns the model unchanged.
// Example: with_optimizer({w: bf16 [4, 6]}, "adam") adds optimizer.state.w.master,
// .exp_avg, .exp_avg_sq (fp32 [4, 6]) and optimizer.state.w.step (fp32 []), all in group "decay".
// Errors: an unknown optimizer, a model that already has states, a tensor naming an unknown group.
inline ModelSpec with_optimizer(ModelSpec model, std::string_view optimizer) {
  if (optimizer.empty() || optimizer == "none") return model;
  if (optimizer != "adam" && optimizer != "adamw")
    detail::fail("unknown optimizer '", optimizer, "' (", optimizer_names(), ")");
  for (const ModelTensor& t : model.tensors)
    if (t.is_state()) detail::fail("model '", model.name, "' already has optimizer state ('", t.name, "')");
  bool grouped = std::any_of(model.tensors.begin(), model.tensors.end(), [](const ModelTensor& t) { return !t.group.empty(); });
  if (!grouped) {
    model.param_groups = {ParamGroup{"decay", 0.1}, ParamGroup{"no_decay", 0.0}};
    for (ModelTensor& t : model.tensors) t.group = t.shape.size() >= 2 ? "decay" : "no_decay";
  }
  for (const ModelTensor& t : model.tensors)
    if (std::none_of(model.param_groups.begin(), model.param_groups.end(), [&](const ParamGroup& g) { return g.name == t.group; }))
      detail::fail("model '", model.name, "': tensor '", t.name, "' is in param group '", t.group, "', which the model does not list");
  std::size_t parameters = model.tensors.size();
  for (std::size_t p = 0; p < parameters; ++p) {
    const ModelTensor param = model.tensors[p];
    auto add = [&](std::string_view state, Dims shape, TensorRole role) {
      model.tensors.push_back(ModelTensor{detail::concat(optimizer_state_prefix, param.name, ".", state), std::move(shape), role, DType::fp32,
                                          param.group, param.name, std::string(state)});
    };
    if (param.dtype != DType::fp32) add("master", param.shape, param.role);
    add("exp_avg", param.shape, param.role);
    add("exp_avg_sq", param.shape, param.role);
    add("step", Dims{}, TensorRole::replicated);
  }
  model.optimizer = std::string(optimizer);
  return model;
}

}  // namespace shardalg
