// Model inputs by name: a built-in model, or a JSON model file. Shared by the command-line
// program and the Python module (which includes it from tools/).
#pragma once

#include <algorithm>
#include <filesystem>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shardalg/model/optimizer_state.hpp"
#include "shardalg/storage/byte_source.hpp"
#include "shardalg/storage/json_input.hpp"

namespace shardalg::cli {

// A model from JSON text: {"name": "...", "tensors": [{"name", "shape", "dtype", "role", "group"}],
// "param_groups": [{"name", "weight_decay"}]}. dtype defaults to bf16, role to replicated, group
// to none (then with_optimizer assigns decay/no_decay); the name defaults to `default_name`.
// Errors (ParseError) name `path` (where the text came from) and the bad entry.
inline ModelSpec parse_model_json(std::string_view text, const std::string& path, const std::string& default_name) {
  nlohmann::json json = parse_untrusted_json<ParseError>(text, detail::concat("model file '", detail::echoed(path), "'"));
  auto where = [&](std::size_t i) { return detail::concat("model file '", path, "': tensors[", i, "]"); };
  if (!json.is_object() || !json.contains("tensors") || !json["tensors"].is_array())
    detail::fail<ParseError>("model file '", path, "': expected an object with a \"tensors\" array");
  if (json.contains("name") && !json["name"].is_string())
    detail::fail<ParseError>("model file '", path, "': \"name\" must be a string, not ", json_excerpt(json["name"]));
  ModelSpec model{json.value("name", default_name), {}};
  if (json.contains("param_groups")) {
    const auto& groups = json["param_groups"];
    if (!groups.is_array()) detail::fail<ParseError>("model file '", path, "': \"param_groups\" must be an array, not ", json_excerpt(groups));
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const auto& g = groups[i];
      if (!g.is_object() || !g.contains("name") || !g["name"].is_string() || g["name"].get<std::string>().empty() ||
          (g.contains("weight_decay") && !g["weight_decay"].is_number()))
        detail::fail<ParseError>("model file '", path, "': param_groups[", i, "] needs a non-empty string \"name\" and a number \"weight_decay\", not ", json_excerpt(g));
      model.param_groups.push_back(ParamGroup{g["name"].get<std::string>(), g.value("weight_decay", 0.0)});
    }
  }
  const auto& tensors = json["tensors"];
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("shape") || !t["shape"].is_array())
      detail::fail<ParseError>(where(i), " needs a string \"name\" and an array \"shape\"");
    std::string name = t["name"].get<std::string>();
    if (name.empty()) detail::fail<ParseError>(where(i), " has an empty name");
    for (const char* key : {"dtype", "role", "group"})
      if (t.contains(key) && !t[key].is_string())
        detail::fail<ParseError>(where(i), " ('", name, "'): \"", key, "\" must be a string, not ", json_excerpt(t[key]));
    Dims shape;
    for (const auto& extent : t["shape"]) {
      if (!extent.is_number_integer() || extent.get<index_t>() < 0)
        detail::fail<ParseError>(where(i), " ('", name, "'): shape extent ", json_excerpt(extent), " is not a non-negative integer");
      shape.push_back(extent.get<index_t>());
    }
    with_overflow_context([&] { return volume(shape); }, [&] { return detail::concat(where(i), " ('", name, "')"); });
    DType dtype{};
    TensorRole role{};
    try {
      dtype = parse_dtype(t.value("dtype", "bf16"));
      role = parse_tensor_role(t.value("role", "replicated"));
    } catch (const Error& e) {
      detail::fail<ParseError>(where(i), " ('", name, "'): ", e.what());
    }
    std::string group = t.value("group", "");
    if (!group.empty() && std::none_of(model.param_groups.begin(), model.param_groups.end(), [&](const ParamGroup& g) { return g.name == group; }))
      detail::fail<ParseError>(where(i), " ('", name, "'): group '", group, "' is not listed in \"param_groups\"");
    model.tensors.push_back(ModelTensor{name, shape, role, dtype, group});
  }
  if (model.tensors.empty()) detail::fail<ParseError>("model file '", path, "' lists no tensors");
  return model;
}

// Largest model file read: a JSON entry per tensor, so a million tensors fit in far less.
inline constexpr std::uint64_t model_file_max_bytes = std::uint64_t{256} << 20;

// A model from a JSON file (parse_model_json), named after the file unless it says otherwise.
// Directories, unreadable files and files over model_file_max_bytes are errors naming the path.
inline ModelSpec read_model_file(const std::string& path) {
  InputFile file(path);
  if (file.size() > model_file_max_bytes)
    detail::fail<ParseError>("model ", file.name(), " has ", file.size(), " bytes; model files are at most ", model_file_max_bytes, " bytes");
  std::vector<std::byte> bytes = file.read(0, file.size());
  return parse_model_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path,
                          std::filesystem::path(path).stem().string());
}

// A built-in model name, or the path of a JSON model file.
inline ModelSpec load_model(const std::string& name_or_path) {
  auto names = model_zoo_names();
  if (std::find(names.begin(), names.end(), name_or_path) != names.end()) return model_from_zoo(name_or_path);
  if (name_or_path.ends_with(".json") || std::filesystem::exists(name_or_path)) return read_model_file(name_or_path);
  return model_from_zoo(name_or_path);  // the zoo's error lists the built-in names
}

// Keeps only the named tensors (all when `names` is empty); an unknown name is an error.
inline ModelSpec select_tensors(ModelSpec model, const std::vector<std::string>& names) {
  if (names.empty()) return model;
  ModelSpec selected{model.name, {}, model.optimizer, model.param_groups};
  for (const std::string& name : names) {
    auto it = std::find_if(model.tensors.begin(), model.tensors.end(), [&](const ModelTensor& t) { return t.name == name; });
    if (it == model.tensors.end()) detail::fail("--tensor '", name, "' is not a tensor of model '", model.name, "'");
    selected.tensors.push_back(*it);
  }
  return selected;
}

}  // namespace shardalg::cli
