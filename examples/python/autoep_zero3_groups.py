"""AutoEP + ZeRO-3 on 16 ranks with 8-way expert parallelism: the process groups, what each rank
knows about its experts, and the factors that make dense and expert gradient averages right."""

import shardalg

WORLD, EP, EXPERTS = 16, 8, 64

groups = shardalg.autoep_groups(world=WORLD, ep=EP)
for family in ("ep", "edp"):
    print(f"{family:4s} groups:", groups.families[family][:2], "...")

for rank in (0, 5, 13):
    meta = shardalg.expert_metadata(groups, num_experts=EXPERTS, rank=rank)
    print(f"rank {rank:2d}: experts [{meta.global_expert_start}, {meta.global_expert_end}), "
          f"EP rank {meta.ep_rank}/{meta.ep_size}, EDP rank {meta.edp_rank}/{meta.edp_size}")
    # Every rank of an EP group holds different experts; the EDP group holds replicas of the same ones.
    assert meta.num_local_experts == EXPERTS // EP
    for peer in groups.group_of("edp", rank):
        assert shardalg.expert_metadata(groups, EXPERTS, peer).global_expert_start == meta.global_expert_start

dense = shardalg.zero3_autoep_scale(world=WORLD, ep=EP, expert=False)
expert = shardalg.zero3_autoep_scale(world=WORLD, ep=EP, expert=True)
print("dense :", dense)
print("expert:", expert)
# Expert gradients are reduced over the EDP group (world / EP ranks) yet averaged over the whole world.
assert expert.reduce_group_size == WORLD // EP and expert.average_over == dense.average_over
print("ok")
