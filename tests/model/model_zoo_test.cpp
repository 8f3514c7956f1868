#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("the model zoo has the real shapes and counts") {
  ModelSpec l405 = model_from_zoo("llama3-405b");
  CHECK(l405.tensors.size() == 1137);  // 126 * 9 + 3
  double params = static_cast<double>(l405.parameter_count());
  CHECK(params > 405e9 * 0.99);
  CHECK(params < 406e9 * 1.01);
  ModelSpec l8 = model_from_zoo("llama3-8b");
  CHECK(l8.tensors[5].name == "model.layers.0.mlp.gate_proj.weight");
  CHECK(l8.tensors[5].shape == Dims{14336, 4096});
  CHECK(l8.tensors[2].shape == Dims{1024, 4096});  // k_proj: 8 kv heads x 128
  CHECK(l8.tensors[7].role == TensorRole::row_parallel);
  ModelSpec ds = model_from_zoo("deepseek-v3");
  CHECK(ds.tensors.size() == 3 + 3 * 12 + 58 * 17);
  double ds_params = static_cast<double>(ds.parameter_count());
  CHECK(ds_params > 670e9);  // 671B total parameters (without the MTP module)
  CHECK(ds_params < 690e9);
  bool found = false;
  for (const ModelTensor& t : ds.tensors)
    if (t.name == "model.layers.3.mlp.experts.w2") {
      found = true;
      CHECK(t.shape == Dims{256, 7168, 2048});
      CHECK(t.role == TensorRole::expert_w2);
    }
  CHECK(found);
  SHARDALG_CHECK_THROWS_CONTAINING(model_from_zoo("gpt5"), Error, "unknown model 'gpt5'");
}
