// Models and plans the executor tests share (the MPI engine, the device schedules, the GPU).
#pragma once

#include <string>
#include <vector>

#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/engine.hpp"
#include "shardalg/model/layout_recipe.hpp"

namespace shardalg::testing {

// A small model with every role, experts included (8 experts: EP sizes 1, 2, 4, 8 divide them),
// and a 0-d tensor (a learned scalar).
inline ModelSpec small_model(DType dtype) {
  ModelSpec m{"small",
              {{"embed", Dims{37, 12}, TensorRole::vocab_parallel},
               {"q", Dims{24, 12}, TensorRole::column_parallel},
               {"o", Dims{12, 24}, TensorRole::row_parallel},
               {"norm", Dims{12}, TensorRole::replicated},
               {"logit_scale", Dims{}, TensorRole::replicated},
               {"router", Dims{8, 12}, TensorRole::router},
               {"w1", Dims{8, 10, 12}, TensorRole::expert_w1},
               {"w2", Dims{8, 12, 10}, TensorRole::expert_w2},
               {"w3", Dims{8, 10, 12}, TensorRole::expert_w3}}};
  for (ModelTensor& t : m.tensors) t.dtype = dtype;
  return m;
}

// A plan of one tensor "t" between two mesh layouts.
inline ModelReshardPlan one_tensor(const MeshLayout& src, const MeshLayout& dst, DType dtype) {
  std::vector<NamedTensorLayout> s{{"t", dtype, TensorLayout(src)}}, d{{"t", dtype, TensorLayout(dst)}};
  return ModelReshardPlan(ModelLayout(std::move(s)), ModelLayout(std::move(d)));
}

// A rank's source buffers filled with check_data's values (seeded) and zeroed destination
// buffers, with the views an executor takes (element types from the plan).
struct Buffers {
  std::vector<std::vector<std::byte>> source_data, destination_data;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
};

inline Buffers buffers_for(const ModelReshardPlan& plan, index_t rank, std::uint64_t seed) {
  Buffers b;
  b.source_data = make_source_data(plan, rank, seed);
  b.destination_data = make_destination_buffers(plan, rank);
  for (auto& d : b.source_data) b.sources.push_back({d.data(), d.size()});
  for (auto& d : b.destination_data) b.destinations.push_back({d.data(), d.size()});
  for (std::size_t t = 0; t < plan.source().size(); ++t) b.sources[plan.source().buffer_of(t)].dtype = plan.source()[t].dtype;
  for (std::size_t t = 0; t < plan.destination().size(); ++t) b.destinations[plan.destination().buffer_of(t)].dtype = plan.destination()[t].dtype;
  return b;
}

}  // namespace shardalg::testing
