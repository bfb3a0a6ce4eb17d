// rltrain._core._testing: the bare-loop ceilings of rltrain.bench llm (llm_floor.hpp), and the instruction-set cap
// of the vector clones (simd_isa.hpp) and the group kernels' register switch (llm_group_fixed.hpp). The floors take
// float32 C-contiguous NumPy arrays only; the bench passes them; single-threaded, GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "rltrain/llm_floor.hpp"
#include "rltrain/llm_group_fixed.hpp"
#include "rltrain/simd_isa.hpp"

namespace py = pybind11;

namespace rltrain::bind {

namespace {

using F32 = py::array_t<float, py::array::c_style>;

void same_size(const py::array& a, const py::array& b, const char* name) {
  if (a.size() != b.size()) throw py::value_error(std::string(name) + ": expected the size of the input");
}

}  // namespace

void register_llm_floor(py::module_& m) {
  m.def(
      "cpu_isa", [] { return static_cast<int>(rltrain::simd::cpu_isa()); },
      "The widest clone this CPU runs (simd_isa.hpp): 0 baseline, 1 AVX2, 2 AVX-512.");
  m.def(
      "set_isa_cap",
      [](int cap) {
        if (cap < 0 || cap > 2) throw py::value_error("cap: expected 0 (baseline), 1 (AVX2) or 2 (AVX-512)");
        rltrain::simd::set_isa_cap(static_cast<rltrain::simd::Isa>(cap));
      },
      py::arg("cap"), "Run at most this clone from now on (tests compare the clones' bits).");
  m.def(
      "set_group_regs", [](bool on) { rltrain::llm::fixed::regs_enabled().store(on, std::memory_order_relaxed); },
      py::arg("on"),
      "Whether the AVX-512 group kernels hold groups of 8-32 in registers (default) or take three passes "
      "(llm_group_fixed.hpp; tests compare their bits, the bench times both).");
  m.def(
      "floor_groups",
      [](F32 x, F32 out, double eps) {
        same_size(x, out, "out");
        if (x.size() % 16 != 0) throw py::value_error("x: expected a multiple of 16 elements");
        const float* xp = x.data();
        float* op = out.mutable_data();
        const std::size_t n = static_cast<std::size_t>(x.size());
        py::gil_scoped_release nogil;
        rltrain::floor::floor_groups(xp, op, n, eps);
      },
      py::arg("x"), py::arg("out"), py::arg("eps") = 1e-4, "Bench ceiling: groups of 16, float64 statistics.");
  m.def(
      "floor_roundtrip",
      [](F32 x, F32 out, double c) {
        same_size(x, out, "out");
        const float* xp = x.data();
        float* op = out.mutable_data();
        const std::size_t n = static_cast<std::size_t>(x.size());
        py::gil_scoped_release nogil;
        return rltrain::floor::floor_roundtrip(xp, op, n, c);
      },
      py::arg("x"), py::arg("out"), py::arg("c") = 1.0,
      "Bench ceiling: the float64 round trip (load, convert, sum, scale, store); returns the sum.");
  m.def(
      "floor_scatter",
      [](py::array_t<int64_t, py::array::c_style> ids, F32 x, F32 out, double eps) {
        same_size(x, out, "out");
        same_size(x, ids, "ids");
        const std::size_t n = static_cast<std::size_t>(x.size());
        if (n % 16 != 0) throw py::value_error("x: expected a multiple of 16 elements");
        const int64_t* ip = ids.data();
        std::vector<std::size_t> seen(n / 16, 0);
        for (std::size_t i = 0; i < n; ++i)
          if (ip[i] < 0 || static_cast<std::size_t>(ip[i]) >= n / 16 || ++seen[static_cast<std::size_t>(ip[i])] > 16)
            throw py::value_error("ids: expected each of 0 .. B / 16 - 1 exactly 16 times");
        const float* xp = x.data();
        float* op = out.mutable_data();
        py::gil_scoped_release nogil;
        rltrain::floor::floor_scatter(ip, xp, op, n, eps);
      },
      py::arg("ids"), py::arg("x"), py::arg("out"), py::arg("eps") = 1e-4,
      "Bench ceiling: scattered groups of 16 (counting sort, statistics, gather).");
  m.def(
      "floor_divider",
      [](F32 x, double eps) {
        const float* xp = x.data();
        const std::size_t n = static_cast<std::size_t>(x.size());
        py::gil_scoped_release nogil;
        return rltrain::floor::floor_divider(xp, n, eps);
      },
      py::arg("x"), py::arg("eps") = 1e-4,
      "Bench ceiling: the divisions and square roots alone of scale='group' in groups of 16 (n / 16 groups, four "
      "per instruction); returns their sum.");
  m.def(
      "floor_permute",
      [](py::array_t<int64_t, py::array::c_style> order, F32 x, F32 tmp, F32 out) {
        same_size(x, out, "out");
        same_size(x, tmp, "tmp");
        same_size(x, order, "order");
        const int64_t* ip = order.data();
        const float* xp = x.data();
        float* tp = tmp.mutable_data();
        float* op = out.mutable_data();
        const std::size_t n = static_cast<std::size_t>(x.size());
        py::gil_scoped_release nogil;
        rltrain::floor::floor_permute(ip, xp, tp, op, n);
      },
      py::arg("order"), py::arg("x"), py::arg("tmp"), py::arg("out"),
      "Bench ceiling: a random gather into group order and the scatter back (order: a permutation of 0..n-1).");
  m.def(
      "floor_pass",
      [](F32 a, F32 b, F32 out) {
        same_size(a, out, "out");
        same_size(a, b, "b");
        const float* ap = a.data();
        const float* bp = b.data();
        float* op = out.mutable_data();
        const std::size_t n = static_cast<std::size_t>(a.size());
        py::gil_scoped_release nogil;
        rltrain::floor::floor_pass(ap, bp, op, n);
      },
      py::arg("a"), py::arg("b"), py::arg("out"),
      "Bench ceiling: the bare elementwise pass out = a - b (two streams in, one out), single-threaded.");
  m.def(
      "floor_chain",
      [](F32 r, F32 mask, F32 out, float gamma) {
        same_size(r, out, "out");
        same_size(r, mask, "mask");
        const float* rp = r.data();
        const float* mp = mask.data();
        float* op = out.mutable_data();
        const std::size_t n = static_cast<std::size_t>(r.size());
        py::gil_scoped_release nogil;
        rltrain::floor::floor_chain(rp, mp, op, n, gamma);
      },
      py::arg("r"), py::arg("mask"), py::arg("out"), py::arg("gamma") = 1.0f,
      "Bench ceiling: one core's serial REINFORCE++ carry recurrence.");
}

}  // namespace rltrain::bind
