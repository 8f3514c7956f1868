// ModelLayout: the layouts of a whole model state, one per named tensor. Tensors of one flat
// layout (a ZeRO or Megatron partition) share each rank's partition buffer; every mesh-laid-out
// tensor has a buffer of its own.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "shardalg/core/dtype.hpp"
#include "shardalg/layout/tensor_layout.hpp"

namespace shardalg {

struct NamedTensorLayout {
  std::string name;
  DType dtype;
  TensorLayout layout;
};

class ModelLayout {
 public:
  // Errors: no tensors, a repeated name, tensors of different dtypes in one buffer (a flat
  // partition holds one dtype, as the frameworks' flat buffers do).
  explicit ModelLayout(std::vector<NamedTensorLayout> tensors) : tensors_(std::move(tensors)) {
    if (tensors_.empty()) detail::fail("model layout: no tensors");
    std::unordered_map<const void*, std::size_t> buffer_by_owner;
    std::vector<std::size_t> first_of_buffer;
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      if (!by_name_.emplace(tensors_[t].name, t).second) detail::fail("model layout: tensor '", tensors_[t].name, "' is listed twice");
      auto [it, added] = buffer_by_owner.emplace(tensors_[t].layout.buffer_owner(), buffer_by_owner.size());
      if (added) {
        first_of_buffer.push_back(t);
        const TensorLayout& layout = tensors_[t].layout;
        buffer_names_.push_back(layout.is_flat() ? detail::concat(to_string(layout.flat_layout()->options().scheme), ":", tensors_[t].name)
                                                 : tensors_[t].name);
      }
      const NamedTensorLayout& first = tensors_[first_of_buffer[it->second]];
      if (first.dtype != tensors_[t].dtype)
        detail::fail("model layout: tensors '", first.name, "' (", first.dtype, ") and '", tensors_[t].name, "' (", tensors_[t].dtype,
                     ") share a flat partition; a partition holds one dtype");
      buffer_of_.push_back(it->second);
    }
    buffer_count_ = buffer_by_owner.size();
    // Models use a few meshes for many tensors: each distinct device list is merged once (sorting
    // every tensor's ranks took 40 ms for Llama-3-405B on 1,024 ranks).
    std::vector<const std::vector<index_t>*> merged;
    for (const NamedTensorLayout& t : tensors_) {
      const std::vector<index_t>& devices = t.layout.mesh().devices();
      if (std::any_of(merged.begin(), merged.end(), [&](const std::vector<index_t>* m) { return *m == devices; })) continue;
      merged.push_back(&devices);
      ranks_.insert(ranks_.end(), devices.begin(), devices.end());
    }
    std::sort(ranks_.begin(), ranks_.end());
    ranks_.erase(std::unique(ranks_.begin(), ranks_.end()), ranks_.end());
  }

  const std::vector<NamedTensorLayout>& tensors() const { return tensors_; }
  std::size_t size() const { return tensors_.size(); }
  const NamedTensorLayout& operator[](std::size_t t) const { return tensors_[t]; }
  std::optional<std::size_t> find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? std::nullopt : std::optional<std::size_t>(it->second);
  }

  // Buffers per rank: tensors with the same buffer index share a rank's buffer.
  std::size_t buffer_count() const { return buffer_count_; }
  std::size_t buffer_of(std::size_t t) const { return buffer_of_[t]; }

  // A buffer's name: a mesh-laid-out tensor's tile is named by its tensor; a flat partition,
  // which holds many, by its scheme and first tensor ("zero3:model.embed_tokens.weight",
  // "zero3:optimizer.state.model.embed_tokens.weight.exp_avg").
  const std::string& buffer_name(std::size_t b) const { return buffer_names_[b]; }

  // Every rank any tensor's layout uses, ascending.
  const std::vector<index_t>& ranks() const { return ranks_; }

 private:
  std::vector<NamedTensorLayout> tensors_;
  std::unordered_map<std::string, std::size_t> by_name_;
  std::vector<std::size_t> buffer_of_;
  std::vector<std::string> buffer_names_;
  std::size_t buffer_count_ = 0;
  std::vector<index_t> ranks_;
};

}  // namespace shardalg
