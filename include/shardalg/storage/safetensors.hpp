// safetensors: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}
// and the tensors' raw row-major bytes, offsets relative to the end of the header.
//
// The header is untrusted: it is at most 100 MB (the format's own limit), every tensor's byte
// range holds exactly shape x dtype bytes, and the ranges tile the data region in order with no
// hole or overlap and end at the end of the file. Hugging Face's sharded form adds
// `model.safetensors.index.json` ({"weight_map": {tensor: file}}).
//
// Example: one fp32 tensor "w" of shape [2, 2] -> header
//   {"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}} padded with spaces to 8 bytes,
// then 16 bytes of data.
#pragma once

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "shardalg/core/checked.hpp"
#include "shardalg/storage/byte_source.hpp"
#include "shardalg/storage/checkpoint_layout.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/json_input.hpp"

namespace shardalg {

inline constexpr std::uint64_t safetensors_max_header = 100'000'000;

// The `__metadata__` key under which torch's sharded safetensors (HuggingFaceStorageWriter with
// save_sharded) record each tensor's box: a JSON text {tensor: {"saved_offsets": [...]}}.
inline constexpr std::string_view dcp_sharding_info_key = "DCP_SHARDING_INFO";

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::fp32;
  Dims shape;
  std::uint64_t byte_offset = 0;  // in the file
  std::uint64_t bytes = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

// The header of the safetensors file `source`, validated against its size.
// Errors (FormatError naming the source and the tensor): see above.
inline SafetensorsHeader read_safetensors_header(const ByteSource& source) {
  using detail::fail;
  const std::string& what = source.name();
  if (source.size() < 8) fail<FormatError>(what, ": ", source.size(), " bytes, shorter than a safetensors header length");
  std::vector<std::byte> length_bytes = source.read(0, 8);
  std::uint64_t header_length = detail::load_le<std::uint64_t>(length_bytes.data());
  if (header_length > safetensors_max_header || header_length > source.size() - 8)
    fail<FormatError>(what, ": safetensors header of ", header_length, " bytes (the file has ", source.size(), "; at most ", safetensors_max_header, ")");
  std::vector<std::byte> text = source.read(8, header_length);
  nlohmann::json json =
      parse_untrusted_json(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()), what + ": the safetensors header");
  if (!json.is_object()) fail<FormatError>(what, ": safetensors header is not a JSON object");
  SafetensorsHeader header;
  std::uint64_t data_start = 8 + header_length;
  for (auto& item : json.items()) {
    const std::string name = item.key();
    auto& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail<FormatError>(what, ": __metadata__ is not an object");
      for (auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail<FormatError>(what, ": __metadata__ value of '", key, "' is not a string");
        header.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    auto bad = [&](auto&&... why) { fail<FormatError>(what, ": tensor '", name, "': ", why...); };
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() || !entry.contains("shape") || !entry["shape"].is_array() ||
        !entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      bad("needs \"dtype\" (a string), \"shape\" (an array) and \"data_offsets\" ([begin, end])");
    SafetensorsTensor tensor{name, {}, {}, 0, 0};
    try {
      tensor.dtype = dtype_from_safetensors(entry["dtype"].get<std::string>());
    } catch (const FormatError& e) {
      bad(e.what());
    }
    if (entry["shape"].size() > 64) bad(entry["shape"].size(), " dims");
    for (const auto& extent : entry["shape"]) {
      if (!extent.is_number_unsigned()) bad("shape extent ", json_excerpt(extent), " is not a non-negative integer");
      std::uint64_t v = extent.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max())) bad("shape extent ", v, " is too large");
      tensor.shape.push_back(static_cast<index_t>(v));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) bad("data_offsets ", json_excerpt(offsets), " are not non-negative integers");
    std::uint64_t begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    std::uint64_t expected = static_cast<std::uint64_t>(checked_mul(volume(tensor.shape), element_bytes(tensor.dtype)));
    if (end < begin || end - begin != expected)
      bad("data_offsets [", begin, ", ", end, ") hold ", end < begin ? 0 : end - begin, " bytes; shape ", tensor.shape, " of ", safetensors_dtype_name(tensor.dtype), " needs ", expected);
    if (end > source.size() - data_start) bad("data_offsets [", begin, ", ", end, ") run past the end of the file (", source.size() - data_start, " data bytes)");
    tensor.byte_offset = data_start + begin;
    tensor.bytes = expected;
    header.tensors.push_back(std::move(tensor));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const auto& a, const auto& b) { return std::tie(a.byte_offset, a.bytes) < std::tie(b.byte_offset, b.bytes); });
  std::uint64_t at = data_start;
  for (const SafetensorsTensor& t : header.tensors) {
    if (t.byte_offset != at)
      fail<FormatError>(what, ": tensor '", t.name, "' starts at data byte ", t.byte_offset - data_start, "; expected ", at - data_start,
                        t.byte_offset < at ? " (it overlaps the previous tensor)" : " (a hole before it)");
    at += t.bytes;
  }
  if (at != source.size()) fail<FormatError>(what, ": the tensors end at byte ", at, " but the file has ", source.size(), " (trailing bytes)");
  return header;
}

// Each tensor's global offset from a header's DCP_SHARDING_INFO (torch's sharded safetensors),
// or nullopt when the header has none. Errors (FormatError naming `what` and the tensor): the
// record is not a JSON object, or gives a tensor no "saved_offsets" array of one non-negative
// integer per dim.
inline std::optional<std::map<std::string, Dims>> safetensors_saved_offsets(const SafetensorsHeader& header, const std::string& what) {
  using detail::fail;
  auto it = header.metadata.find(std::string(dcp_sharding_info_key));
  if (it == header.metadata.end()) return std::nullopt;
  nlohmann::json json = parse_untrusted_json(it->second, detail::concat(what, ": ", dcp_sharding_info_key));
  if (!json.is_object()) fail<FormatError>(what, ": ", dcp_sharding_info_key, " is not a JSON object");
  std::map<std::string, Dims> result;
  for (const SafetensorsTensor& t : header.tensors) {
    auto entry = json.find(t.name);
    if (entry == json.end() || !entry->is_object() || !entry->contains("saved_offsets") || !(*entry)["saved_offsets"].is_array())
      fail<FormatError>(what, ": ", dcp_sharding_info_key, " gives no \"saved_offsets\" array for tensor '", t.name, "'");
    const nlohmann::json& offsets = (*entry)["saved_offsets"];
    if (offsets.size() != t.shape.size())
      fail<FormatError>(what, ": tensor '", t.name, "' has ", t.shape.size(), " dims but saved_offsets ", json_excerpt(offsets), " has ", offsets.size());
    Dims& offset = result[t.name];
    for (const nlohmann::json& v : offsets) {
      if (!v.is_number_unsigned() || v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()))
        fail<FormatError>(what, ": tensor '", t.name, "': saved offset ", json_excerpt(v), " is not a non-negative integer");
      offset.push_back(static_cast<index_t>(v.get<std::uint64_t>()));
    }
  }
  return result;
}

// The text of a safetensors header for tensors laid out in the given order, padded with spaces to
// a multiple of 8 bytes (so data stays aligned), length prefix included.
struct SafetensorsItem {
  std::string name;
  DType dtype;
  Dims shape;
};
inline std::string safetensors_header_bytes(const std::vector<SafetensorsItem>& tensors, const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (!metadata.empty()) json["__metadata__"] = metadata;
  std::uint64_t at = 0;
  for (const SafetensorsItem& t : tensors) {
    if (t.name == "__metadata__" || json.contains(t.name)) detail::fail("safetensors: tensor name '", t.name, "' is reserved or repeated");
    std::uint64_t bytes = static_cast<std::uint64_t>(checked_mul(volume(t.shape), element_bytes(t.dtype)));
    json[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)}, {"shape", std::vector<index_t>(t.shape.begin(), t.shape.end())}, {"data_offsets", {at, at + bytes}}};
    at += bytes;
  }
  std::string text = json.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string result(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) result[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return result + text;
}

}  // namespace shardalg
