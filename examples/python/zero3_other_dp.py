"""A ZeRO-3 checkpoint saved on 4 data-parallel ranks, loaded on 3: every rank's flat partition
is rebuilt from the saved partitions, in one process, and checked against the original tensors."""

import numpy

import shardalg

model = shardalg.model_from_zoo("llama3-8b", scale_down=32).with_dtype("fp32")
saved = shardalg.layout_model(model, "zero3 dp=4")
loaded = shardalg.layout_model(model, "zero3 dp=3")
plan = shardalg.ModelReshardPlan(saved, loaded)
shardalg.verify_plan(plan)

rng = numpy.random.default_rng(0)
weights = {t.name: rng.standard_normal(t.shape).astype(numpy.float32) for t in model.tensors}
partitions = {rank: saved.scatter(rank, weights) for rank in saved.ranks}
new_partitions = {rank: loaded.local_buffers(rank) for rank in loaded.ranks}
stats = shardalg.execute_local(plan, partitions, new_partitions)
print(f"moved {stats['bytes_received']} bytes between ranks, {stats['bytes_local']} kept local")
restored = loaded.gather(new_partitions)
assert all(numpy.array_equal(restored[name], weights[name]) for name in weights)
print("ok")
