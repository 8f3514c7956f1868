// Verification of a reshard plan, of one tensor or of a whole model, before anything is
// executed: every destination element is written exactly once (once per partial contributor for
// reductions), from a source that holds that same global element, and nothing is out of bounds.
//
// The check is derived from the layouts alone (what each rank holds, where), never from how the
// planner found its transfers; it is linear in the plan's size apart from sorting each
// destination's few boxes.
#pragma once

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "shardalg/layout/equivalent_layouts.hpp"
#include "shardalg/plan/model_reshard_plan.hpp"
#include "shardalg/plan/reshard_plan.hpp"

namespace shardalg {

namespace detail {

// True when the box (offset, shape) lies in `tile` as one contiguous local block starting at `local`.
inline bool holds_at(const Tile& tile, std::span<const index_t> offset, std::span<const index_t> shape, std::span<const index_t> local) {
  if (shape.size() != tile.ndim() || local.size() != shape.size()) return false;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0) return false;
    auto first = tile.dim(d).local_of_range(offset[d], shape[d]);
    if (!first || *first != local[d]) return false;
  }
  return true;
}

// True when boxes i and j of `list` share an element.
inline bool overlap(const TransferList& list, std::size_t i, std::size_t j) {
  auto ai = list.offset(i), as = list.shape(i), bi = list.offset(j), bs = list.shape(j);
  for (std::size_t d = 0; d < ai.size(); ++d)
    if (ai[d] + as[d] <= bi[d] || bi[d] + bs[d] <= ai[d]) return false;
  return true;
}

// What each rank of one layout holds: its tile for a mesh layout (a check is a few index-map
// lookups), its pieces for a flat layout. Computed once per rank and kept in a slot per rank of
// the mesh (verifying a whole plan), kept for the ranks looked up only (verifying many
// destinations one at a time), or only the last rank's kept (memory independent of the mesh).
// Serves every layout that is a shift of this one (TensorLayout::shift_from): repeated layers
// share it.
class Holdings {
 public:
  enum class Keep { every_rank, ranks_used, last_rank };
  explicit Holdings(const TensorLayout& layout, Keep keep = Keep::every_rank)
      : layout_(layout), slots_(keep == Keep::every_rank ? static_cast<std::size_t>(layout.mesh().size()) : keep == Keep::last_rank ? 1 : 0),
        keep_(keep) {}
  const TensorLayout& layout() const { return layout_; }

  // True when the rank at mesh position `position` holds all of the box (offset, shape) as one
  // block starting at `local`, for a layout whose local positions are this one's plus `shift`.
  // Precondition: 0 <= position < the mesh's size.
  bool holds_at(index_t position, std::span<const index_t> offset, std::span<const index_t> shape, std::span<const index_t> local,
                index_t shift = 0) {
    const Slot& slot = slot_at(position);
    if (slot.tile) return detail::holds_at(*slot.tile, offset, shape, local);
    if (shape.size() != layout_.tensor_ndim() || local.size() != 1) return false;
    for (const Piece& piece : slot.pieces) {  // flat pieces: local = local[0] + (point - offset) . strides
      bool inside = true;
      for (std::size_t d = 0; d < shape.size() && inside; ++d)
        inside = shape[d] > 0 && offset[d] >= piece.global.offset[d] && shape[d] <= piece.global.end(d) - offset[d];
      if (!inside) continue;
      index_t at = piece.local[0] + shift;  // within the piece: no overflow
      for (std::size_t d = 0; d < shape.size(); ++d) at += (offset[d] - piece.global.offset[d]) * piece.strides[d];
      return at == local[0];
    }
    return false;
  }

  // Precondition: the rank is in the mesh.
  index_t held_elements(index_t position) { return slot_at(position).held; }

 private:
  struct Slot {
    bool ready = false;
    std::optional<Tile> tile;   // mesh layouts
    std::vector<Piece> pieces;  // flat layouts
    index_t held = 0;
  };
  const Slot& slot_at(index_t position) {
    bool every_rank = keep_ == Keep::every_rank;
    Slot& slot = keep_ == Keep::ranks_used ? used_[position] : slots_[every_rank ? static_cast<std::size_t>(position) : 0];
    if (slot.ready && (keep_ != Keep::last_rank || last_position_ == position)) return slot;
    slot = Slot{};
    last_position_ = position;
    index_t rank = layout_.mesh().devices()[static_cast<std::size_t>(position)];
    if (const MeshLayout* mesh = layout_.mesh_layout()) {
      slot.tile = mesh->tile(rank);
      slot.held = slot.tile->volume();
    } else {
      slot.pieces = layout_.pieces(rank);
      for (const Piece& piece : slot.pieces) slot.held += piece.global.volume();
    }
    slot.ready = true;
    return slot;
  }

  const TensorLayout& layout_;
  std::vector<Slot> slots_;
  std::unordered_map<index_t, Slot> used_;
  Keep keep_;
  index_t last_position_ = -1;
};

// The shifts of a plan's source and destination from the layouts its Holdings describe.
struct HoldingShifts {
  index_t src = 0;
  index_t dst = 0;
};

// True when transfers `copy` of `list` are transfers `original`, one for one, with the first
// source and destination local coordinates shifted by `shifts` and everything else equal.
inline bool shifted_copy(const TransferList& list, std::span<const std::size_t> copy, std::span<const std::size_t> original,
                         HoldingShifts shifts) {
  if (copy.size() != original.size()) return false;
  auto equal_shifted = [](std::span<const index_t> a, std::span<const index_t> b, index_t shift) {
    if (a.size() != b.size()) return false;
    for (std::size_t k = 0; k < a.size(); ++k)
      if (a[k] != b[k] + (k == 0 ? shift : 0)) return false;
    return true;
  };
  for (std::size_t k = 0; k < copy.size(); ++k) {
    std::size_t i = copy[k], j = original[k];
    if (list.src_rank(i) != list.src_rank(j) || list.dst_rank(i) != list.dst_rank(j) || list.contributors(i) != list.contributors(j) ||
        !equal_shifted(list.offset(i), list.offset(j), 0) || !equal_shifted(list.shape(i), list.shape(j), 0) ||
        !equal_shifted(list.src_local(i), list.src_local(j), shifts.src) || !equal_shifted(list.dst_local(i), list.dst_local(j), shifts.dst))
      return false;
  }
  return true;
}

// Destination mesh positions [first, end): those whose receives a verification covers.
struct PositionRange {
  index_t first = 0;
  index_t end = 0;
};

// Verifies the transfers `indices` of `list` against `plan`: they must be every transfer into
// the destination ranks at mesh positions `covered` (all of them by default).
// `src_holdings` / `dst_holdings`: lookups of layouts the plan's source and destination are
// shifts of (by `shifts`).
inline void verify_transfers(const ReshardPlan& plan, Holdings& src_holdings, Holdings& dst_holdings, HoldingShifts shifts,
                             const TransferList& list, std::span<const std::size_t> indices,
                             std::optional<PositionRange> covered = std::nullopt) {
  const TensorLayout& src = plan.source();
  const DeviceMesh& dst_mesh = plan.destination().mesh();
  // One entry per transfer, sorted by destination, then contributor class, then start on dim 0.
  struct Entry {
    index_t position;  // of the destination in its mesh
    index_t partial;   // contributor class of the sender
    index_t start;     // the box's start on dim 0
    std::size_t index;
    auto key() const { return std::tie(position, partial, start); }
  };
  std::vector<Entry> entries;
  entries.reserve(indices.size());
  for (std::size_t i : indices) {
    index_t from = list.src_rank(i), to = list.dst_rank(i);
    auto offset = list.offset(i), shape = list.shape(i);
    std::optional<index_t> from_position = src.mesh().position_of(from);
    if (!from_position) fail("plan: transfer from rank ", from, ", which is not in the source mesh");
    std::optional<index_t> position = dst_mesh.position_of(to);
    if (!position) fail("plan: transfer to rank ", to, ", which is not in the destination mesh");
    if (covered && (*position < covered->first || *position >= covered->end))
      fail("plan: transfer to rank ", to, ", which is not among the destination ranks verified");
    bool box = shape.size() == src.tensor_ndim();
    for (std::size_t d = 0; d < shape.size() && box; ++d)
      box = offset[d] >= 0 && shape[d] > 0 && shape[d] <= std::numeric_limits<index_t>::max() - offset[d];
    if (!box)
      fail("plan: transfer ", from, " -> ", to, " moves offset ", Dims(offset), " shape ", Dims(shape), ", not a non-empty box of the tensor");
    if (!src_holdings.holds_at(*from_position, offset, shape, list.src_local(i), shifts.src))
      fail("plan: source rank ", from, " does not hold ", list[i].global, " at local ", list[i].src_local);
    if (!dst_holdings.holds_at(*position, offset, shape, list.dst_local(i), shifts.dst))
      fail("plan: destination rank ", to, " does not hold ", list[i].global, " at local ", list[i].dst_local);
    entries.push_back(Entry{*position, plan.partial_class(from), offset.empty() ? 0 : offset[0], i});
  }
  // Plans list each destination's transfers together: then only those few need sorting.
  auto key_less = [](const Entry& a, const Entry& b) { return a.key() < b.key(); };
  if (std::is_sorted(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.position < b.position; })) {
    for (auto first = entries.begin(); first != entries.end();) {
      auto last = std::find_if(first, entries.end(), [&](const Entry& e) { return e.position != first->position; });
      std::sort(first, last, key_less);
      first = last;
    }
  } else {
    std::sort(entries.begin(), entries.end(), key_less);
  }
  // Each destination gets, from each contributor class, disjoint boxes covering what it holds:
  // every element exactly once per class.
  index_t contributors = plan.partial_contributors();
  std::vector<std::size_t> active;  // boxes of the current class still reaching past the sweep on dim 0
  std::size_t next = 0;
  PositionRange range = covered.value_or(PositionRange{0, dst_mesh.size()});
  for (index_t position = range.first; position < range.end; ++position) {
    index_t rank = dst_mesh.devices()[static_cast<std::size_t>(position)];
    index_t held = dst_holdings.held_elements(position), classes = 0;
    while (next < entries.size() && entries[next].position == position) {
      index_t partial = entries[next].partial, volume = 0;
      active.clear();
      for (; next < entries.size() && entries[next].position == position && entries[next].partial == partial; ++next) {
        std::size_t box = entries[next].index;
        volume = checked_add(volume, list.volume(box));
        if (src.tensor_ndim() == 0) continue;  // one element: the volume check decides
        std::erase_if(active, [&](std::size_t a) { return list.offset(a)[0] + list.shape(a)[0] <= entries[next].start; });
        for (std::size_t a : active)
          if (overlap(list, a, box)) fail("plan: destination rank ", rank, " receives ", list[box].global, " twice");
        active.push_back(box);
      }
      if (volume != held)
        fail("plan: destination rank ", rank, " receives ", volume, " elements from one contributor class but holds ", held);
      ++classes;
    }
    index_t expected = held == 0 ? 0 : contributors;
    if (classes != expected) fail("plan: destination rank ", rank, " receives from ", classes, " contributor classes, expected ", expected);
  }
}

// A transfer list's indices grouped by tensor, plan order kept within each (a counting sort).
// Error: a transfer naming a tensor the plan does not have.
class TransfersByTensor {
 public:
  void group(const TransferList& transfers, std::size_t tensors) {
    first_.assign(tensors + 1, 0);
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      index_t tensor = transfers.tensor(i);
      if (tensor < 0 || tensor >= static_cast<index_t>(tensors))
        fail("plan: transfer ", transfers.src_rank(i), " -> ", transfers.dst_rank(i), " names tensor ", tensor, " of ", tensors);
      ++first_[static_cast<std::size_t>(tensor) + 1];
    }
    for (std::size_t t = 0; t < tensors; ++t) first_[t + 1] += first_[t];
    grouped_.resize(transfers.size());
    next_.assign(first_.begin(), first_.end() - 1);
    for (std::size_t i = 0; i < transfers.size(); ++i) grouped_[next_[static_cast<std::size_t>(transfers.tensor(i))]++] = i;
  }
  // Tensor t's transfer indices.
  std::span<const std::size_t> of(std::size_t t) const { return std::span<const std::size_t>(grouped_).subspan(first_[t], first_[t + 1] - first_[t]); }

 private:
  std::vector<std::size_t> first_, grouped_, next_;
};

}  // namespace detail

// Throws Error naming the first violation.
inline void verify_plan(const ReshardPlan& plan, const TransferList& transfers) {
  detail::Holdings src_holdings(plan.source()), dst_holdings(plan.destination());
  std::vector<std::size_t> indices(transfers.size());
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  detail::verify_transfers(plan, src_holdings, dst_holdings, {}, transfers, indices);
}

// Verifies every tensor's part of a model plan (see verify_plan); errors name the tensor.
// Transfers tagged with a tensor index the plan does not have are an error.
//
// Repeated layers: when a tensor's source and destination layouts are shifts of an already
// verified tensor's (TensorLayout::shift_from) and its transfers are that tensor's, shifted
// alike, they are valid for the same reasons (what each rank holds shifts with the layout), so
// they are compared instead of checked again. Anything else is checked in full.
inline void verify_plan(const ModelReshardPlan& plan, const TransferList& transfers) {
  detail::TransfersByTensor by_tensor;
  by_tensor.group(transfers, plan.size());
  auto part_of = [&](std::size_t t) { return by_tensor.of(t); };

  // Layouts that are shifts of one already seen share its lookups of what each rank holds. Other
  // flat layouts (one tensor of a shared partition) are looked up for their tensor only, so
  // memory stays bounded by the distinct layouts.
  std::vector<std::unique_ptr<detail::Holdings>> holdings;
  EquivalentLayouts<detail::Holdings*> classes;
  std::unique_ptr<detail::Holdings> single_src, single_dst;
  auto holdings_of = [&](const TensorLayout& layout, std::unique_ptr<detail::Holdings>& single) -> std::pair<detail::Holdings*, index_t> {
    if (layout.is_flat() && !layout.own_bucket()) {
      single = std::make_unique<detail::Holdings>(layout);
      return {single.get(), 0};
    }
    auto match = classes.find({&layout}, [](detail::Holdings* h) { return std::array{&h->layout()}; });
    if (match) return {match->key, match->shifts[0]};
    holdings.push_back(std::make_unique<detail::Holdings>(layout));
    classes.add({&layout}, holdings.back().get());
    return {holdings.back().get(), 0};
  };
  struct Verified {
    std::size_t tensor;
    detail::HoldingShifts shifts;
  };
  std::map<std::pair<const detail::Holdings*, const detail::Holdings*>, Verified> verified;  // per pair of shared holdings
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const ReshardPlan& tensor_plan = plan.tensor_plan(t);
    try {
      auto [src_holdings, src_shift] = holdings_of(tensor_plan.source(), single_src);
      auto [dst_holdings, dst_shift] = holdings_of(tensor_plan.destination(), single_dst);
      detail::HoldingShifts shifts{src_shift, dst_shift};
      bool shared = src_holdings != single_src.get() && dst_holdings != single_dst.get();
      auto earlier = shared ? verified.find({src_holdings, dst_holdings}) : verified.end();
      if (earlier != verified.end() &&
          detail::shifted_copy(transfers, part_of(t), part_of(earlier->second.tensor),
                               {shifts.src - earlier->second.shifts.src, shifts.dst - earlier->second.shifts.dst}))
        continue;
      detail::verify_transfers(tensor_plan, *src_holdings, *dst_holdings, shifts, transfers, part_of(t));
      if (shared) verified.try_emplace({src_holdings, dst_holdings}, Verified{t, shifts});
    } catch (const Error& e) {
      detail::fail("tensor '", plan.source()[t].name, "': ", e.what());
    }
  }
}

// A model plan planned and verified one destination rank at a time, by verify_plan's rules:
// what counts a whole plan without its transfer list (CommunicationVolume::of_plan). Per tensor,
// the source ranks' tiles are computed once and kept for the ranks that send only, the
// destination's for one rank at a time: memory follows the senders, never the transfers.
// The plan must outlive this.
class DestinationParts {
 public:
  explicit DestinationParts(const ModelReshardPlan& plan)
      : plan_(plan), planners_(plan.size()), sources_(plan.size()) {}

  // Everything `rank` receives (what plan.transfers_to(rank) gives), verified.
  TransferList verified_part(index_t rank) {
    TransferList part = plan_.collect([&](std::size_t t) {
      if (!planners_[t]) planners_[t].emplace(plan_.tensor_plan(t));
      return planners_[t]->transfers_to(rank);
    });
    verify(rank, part);
    return part;
  }

  // Throws Error naming the tensor and the first violation unless `part` is exactly what `rank`
  // must receive: for each tensor, boxes the senders hold at the stated places, covering what
  // the rank holds once per contributor class.
  void verify(index_t rank, const TransferList& part) {
    by_tensor_.group(part, plan_.size());
    for (std::size_t t = 0; t < plan_.size(); ++t) {
      const ReshardPlan& tensor_plan = plan_.tensor_plan(t);
      std::optional<index_t> position = tensor_plan.destination().mesh().position_of(rank);
      if (!position && by_tensor_.of(t).empty()) continue;
      try {
        if (!sources_[t]) sources_[t] = std::make_unique<detail::Holdings>(tensor_plan.source(), detail::Holdings::Keep::ranks_used);
        detail::Holdings destination(tensor_plan.destination(), detail::Holdings::Keep::last_rank);
        detail::PositionRange covered = position ? detail::PositionRange{*position, *position + 1} : detail::PositionRange{};
        detail::verify_transfers(tensor_plan, *sources_[t], destination, {}, part, by_tensor_.of(t), covered);
      } catch (const Error& e) {
        detail::fail("tensor '", plan_.source()[t].name, "': ", e.what());
      }
    }
  }

 private:
  const ModelReshardPlan& plan_;
  std::vector<std::optional<ReshardPlan::DestinationPlanner>> planners_;  // per tensor that plans (one per repeated layout pair)
  std::vector<std::unique_ptr<detail::Holdings>> sources_;               // per tensor
  detail::TransfersByTensor by_tensor_;
};

// Verifies one destination rank's part of a model plan (everything it receives, as
// ModelReshardPlan::transfers_to gives it) by verify_plan's rules, looking up only the ranks the
// part names. Errors name the tensor.
inline void verify_destination(const ModelReshardPlan& plan, index_t rank, const TransferList& part) {
  DestinationParts(plan).verify(rank, part);
}

}  // namespace shardalg
