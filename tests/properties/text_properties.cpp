// parse(print(x)) == x for meshes, placements and shard orders.
#include "generators.hpp"

using namespace shardalg;
using namespace shardalg::testing;

TEST_CASE("properties of text forms") {
  SHARDALG_PROPERTY("errors echo any value on one printable line, bounded, and echoing twice changes nothing", [] {
    std::string value = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
    std::string shown = detail::echoed(value);
    for (char c : shown) RC_ASSERT(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) != 0x7f);
    RC_ASSERT(detail::escaped(shown) == shown);
    if (value.size() > detail::echo_limit) RC_ASSERT(shown.ends_with(detail::concat("... (", value.size(), " characters)")));
    RC_ASSERT(shown.size() <= 4 * detail::echo_limit + 32);  // \xHH: 4 characters per byte at most
    try {
      detail::fail<ParseError>("mesh '", value, "': bad");
    } catch (const ParseError& e) {
      RC_ASSERT(std::string(e.what()) == "mesh '" + shown + "': bad");
    }
  });

  SHARDALG_PROPERTY("placements: str and repr forms parse back", [] {
    auto placements = *rc::gen::container<std::vector<Placement>>(*rc::gen::inRange<std::size_t>(1, 5), gen_placement(4));
    RC_ASSERT(parse_placements(format_placements(placements)) == placements);
    for (const Placement& p : placements) {
      RC_ASSERT(parse_placement(to_string(p)) == p);
      RC_ASSERT(parse_placement(to_repr(p)) == p);
    }
  });

  SHARDALG_PROPERTY("meshes: spec and device list parse back", [] {
    DeviceMesh mesh = *gen_mesh();
    RC_ASSERT(DeviceMesh::parse(mesh.spec_string(), mesh.devices_string()) == mesh);
  });

  SHARDALG_PROPERTY("transposed iotas print compactly and parse back", [] {
    std::size_t k = *rc::gen::inRange<std::size_t>(1, 5);
    Dims reshape(*rc::gen::container<std::vector<index_t>>(k, rc::gen::inRange<index_t>(1, 6)));
    std::vector<index_t> perm(k);
    for (std::size_t i = 0; i < k; ++i) perm[i] = static_cast<index_t>(i);
    perm = *gen_shuffled(perm);
    IotaTranspose iota{reshape, Dims(perm)};
    std::vector<index_t> devices = iota.devices();
    auto found = IotaTranspose::find(devices);
    RC_ASSERT(found.has_value());
    RC_ASSERT(found->devices() == devices);
    RC_ASSERT(parse_device_list(format_device_list(Dims{static_cast<index_t>(devices.size())}, devices)).devices == devices);
  });

  SHARDALG_PROPERTY("shard orders parse back", [] {
    std::size_t mesh_ndim = *rc::gen::inRange<std::size_t>(1, 6);
    std::vector<index_t> dims(mesh_ndim);
    for (std::size_t m = 0; m < mesh_ndim; ++m) dims[m] = static_cast<index_t>(m);
    dims = *gen_shuffled(dims);
    ShardOrder order;
    std::size_t at = 0;
    for (index_t t = 0; at < dims.size(); ++t) {
      std::size_t take = *rc::gen::inRange<std::size_t>(1, dims.size() - at + 1);
      order.push_back({t, std::vector<index_t>(dims.begin() + static_cast<std::ptrdiff_t>(at),
                                               dims.begin() + static_cast<std::ptrdiff_t>(at + take))});
      at += take;
    }
    RC_ASSERT(parse_shard_order(format_shard_order(order)) == order);
  });
}
