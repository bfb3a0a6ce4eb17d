// rltrain._core.sync: synchronisation words for the fork backend (rltrain.vec.fork), sequence counters in a shared
// int64 array that the caller and its worker processes publish and spin on, so a vector step needs no system call while
// both sides are awake.  Every access is an atomic on the shared memory (seq_cst), which also orders the plain numpy
// reads and writes of the step's data around it.  Sleeping is still done on the sockets: a side that is about to block
// raises its "sleeping" word first, and the other side, after publishing, sends a wake-up byte only when it sees that
// word raised (a Dekker-style handshake; the seq_cst store-then-load on each side makes it race-free).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "checks.hpp"

namespace rltrain::bind {

namespace {

struct Words {
  std::int64_t* data;
  py::ssize_t size;
};

Words words_of(py::handle obj, const char* name, bool writable) {
  py::array a = as_array(obj, name);
  if (kind_of(a) != Kind::I64 || a.ndim() != 1)
    throw py::type_error(std::string(name) + ": expected a 1-d int64 array, got dtype " + dtype_str(a) +
                         " with shape " + shape_str(a));
  require_shape(a, name, {a.shape(0)});
  if (writable) require_writable(a, name);
  // Read-only access through a read-only view is fine: only sync_publish/sync_prepare_sleep store, and they ask
  // for a writable array.
  return {const_cast<std::int64_t*>(static_cast<const std::int64_t*>(a.data())), a.shape(0)};
}

py::ssize_t checked(const Words& w, py::ssize_t i, const char* name) {
  if (i < 0 || i >= w.size)
    throw py::value_error(std::string(name) + ": index " + std::to_string(i) + " is outside the word array of size " +
                          std::to_string(w.size));
  return i;
}

std::vector<py::ssize_t> checked(const Words& w, const std::vector<py::ssize_t>& idx, const char* name) {
  for (py::ssize_t i : idx) checked(w, i, name);
  return idx;
}

std::int64_t load(const Words& w, py::ssize_t i) { return __atomic_load_n(w.data + i, __ATOMIC_SEQ_CST); }
void store(const Words& w, py::ssize_t i, std::int64_t v) { __atomic_store_n(w.data + i, v, __ATOMIC_SEQ_CST); }

bool all_reached(const Words& w, const std::vector<py::ssize_t>& idx, std::int64_t target) {
  for (py::ssize_t i : idx)
    if (load(w, i) < target) return false;
  return true;
}

}  // namespace

void register_sync(py::module_& m) {
  m.def(
      "sync_publish",
      [](py::handle words, py::ssize_t index, std::int64_t value, py::ssize_t sleeping) {
        Words w = words_of(words, "words", true);
        checked(w, index, "index");
        checked(w, sleeping, "sleeping");
        store(w, index, value);
        return load(w, sleeping) != 0;
      },
      py::arg("words"), py::arg("index"), py::arg("value"), py::arg("sleeping"),
      "Store ``words[index] = value`` (seq_cst, after every earlier write of this process) and return whether\n"
      "``words[sleeping]`` is non-zero, i.e. whether the reader went to sleep and needs a wake-up byte.");
  m.def(
      "sync_wait",
      [](py::handle words, std::vector<py::ssize_t> indices, std::int64_t target, double spin_s) {
        Words w = words_of(words, "words", false);
        indices = checked(w, indices, "indices");
        if (!(spin_s >= 0.0)) throw py::value_error("spin_s: expected a non-negative number of seconds");
        if (all_reached(w, indices, target)) return true;
        if (spin_s == 0.0) return false;
        py::gil_scoped_release release;
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(spin_s);
        do {
          std::this_thread::yield();  // sched_yield on POSIX: hands the core to a runnable process sharing it
          if (all_reached(w, indices, target)) return true;
        } while (std::chrono::steady_clock::now() < end);
        return false;
      },
      py::arg("words"), py::arg("indices"), py::arg("target"), py::arg("spin_s"),
      "Spin (yielding the core between checks, GIL released) until every ``words[i] >= target`` for ``i`` in\n"
      "``indices``; True when they got there within ``spin_s`` seconds, False otherwise.");
  m.def(
      "sync_prepare_sleep",
      [](py::handle words, py::ssize_t sleeping, std::vector<py::ssize_t> indices, std::int64_t target) {
        Words w = words_of(words, "words", true);
        checked(w, sleeping, "sleeping");
        indices = checked(w, indices, "indices");
        store(w, sleeping, 1);
        if (!all_reached(w, indices, target)) return false;
        store(w, sleeping, 0);
        return true;
      },
      py::arg("words"), py::arg("sleeping"), py::arg("indices"), py::arg("target"),
      "Raise ``words[sleeping]``, then check once more that every ``words[i] >= target``: True (word lowered\n"
      "again) when they already are, False when the caller may now block until a wake-up byte arrives.");
}

}  // namespace rltrain::bind
