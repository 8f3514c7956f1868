// libFuzzer target: the JSON model file reader (tools/model_file.hpp), the layouts of what it
// accepts. The law: any input either gives a model or throws shardalg::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model_file.hpp"
#include "shardalg/model/layout_recipe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shardalg;
  try {
    ModelSpec model = cli::parse_model_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json", "fuzz");
    bool small = true;
    for (const ModelTensor& t : model.tensors)
      for (index_t extent : t.shape) small = small && extent <= 64;
    if (small && model.tensors.size() <= 16) layout_model(model, "fsdp-tp dp=2,tp=2");
  } catch (const Error&) {
  }
  return 0;
}
