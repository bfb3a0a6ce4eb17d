// pybind11 bindings for one native env type E, reusable by any extension module (the classic-control envs
// in rltrain._core, LunarLander in its own module):
//   bind_vec_env<E>(m, "CartPoleVec")  ->  VecEnv<E>: the batcher (step, send/recv, zero-copy buffer views)
//   bind_single_env<E>(m, "CartPole")  ->  one E with gymnasium's reset/step signature, for parity tests
// Thin by design: convert and check arguments, release the GIL, call the C++ in rltrain/vec_env.hpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "checks.hpp"
#include "rltrain/envs/env.hpp"
#include "rltrain/thread_pool.hpp"
#include "rltrain/vec_env.hpp"

namespace rltrain::bind {

namespace py = pybind11;

namespace vec_detail {

// gymnasium.make kwargs -> E::Config through Config::for_each_field; unknown names are a TypeError, as they
// are for gymnasium's env constructors.
template <class E>
typename E::Config config_from_kwargs(const py::kwargs& kw) {
  typename E::Config cfg;
  std::vector<std::string> names;
  cfg.for_each_field([&](const char* name, auto& field) {
    names.emplace_back(name);
    if (!kw.contains(name)) return;
    using T = std::decay_t<decltype(field)>;
    try {
      field = kw[name].template cast<T>();
    } catch (const py::cast_error&) {
      throw py::type_error(std::string(E::kId) + ": keyword argument '" + name + "' has the wrong type (" +
                           py::str(py::type::handle_of(kw[name])).cast<std::string>() + ")");
    }
  });
  for (auto item : kw) {
    const std::string key = py::str(item.first);
    bool known = false;
    for (const auto& n : names) known = known || n == key;
    if (!known) {
      std::string accepted;
      for (const auto& n : names) accepted.append(accepted.empty() ? "" : ", ").append(n);
      throw py::type_error(std::string(E::kId) + ": unexpected keyword argument '" + key + "'; accepted: " + accepted);
    }
  }
  if (cfg.max_episode_steps < 1)
    throw py::value_error("max_episode_steps: expected an integer >= 1, got " + std::to_string(cfg.max_episode_steps));
  return cfg;
}

template <class E>
py::dict config_dict(typename E::Config cfg) {
  py::dict d;
  cfg.for_each_field([&](const char* name, auto& field) { d[name] = field; });
  return d;
}

// Converts `obj` (anything np.asarray accepts) to `rows` actions of E, checking dtype and shape.
// Discrete: integers, shape (rows,). Continuous: floats, shape (rows, kActDim), cast to float32 (the action
// space's dtype). Range and NaN checks happen in VecEnv, which names the env index.
template <class E>
std::vector<typename E::Action> actions_from(py::handle obj, std::size_t rows) {
  using Action = typename E::Action;
  py::array arr = py::array::ensure(obj);
  if (!arr) throw py::value_error("actions: expected an array of actions");
  const char kind = arr.dtype().kind();
  std::vector<Action> out(rows * E::kActDim);
  if constexpr (E::kDiscrete) {
    if (kind != 'i' && kind != 'u')
      throw py::value_error("actions: expected an integer array for discrete actions, got dtype " + dtype_str(arr));
    if (arr.ndim() != 1 || static_cast<std::size_t>(arr.shape(0)) != rows)
      throw py::value_error("actions: expected shape (" + std::to_string(rows) + ",), got " + shape_str(arr));
    if (kind == 'u' && arr.dtype().itemsize() == 8) {
      auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
      for (std::size_t i = 0; i < rows; ++i) {
        const uint64_t v = u.data()[i];
        out[i] = v > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                   : static_cast<int64_t>(v);
      }
    } else {
      auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
      std::copy(a.data(), a.data() + rows, out.begin());
    }
  } else {
    if (kind != 'f')
      throw py::value_error("actions: expected a float array for continuous actions, got dtype " + dtype_str(arr));
    if (arr.ndim() != 2 || static_cast<std::size_t>(arr.shape(0)) != rows || arr.shape(1) != E::kActDim)
      throw py::value_error("actions: expected shape (" + std::to_string(rows) + ", " + std::to_string(E::kActDim) +
                            "), got " + shape_str(arr));
    auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
    std::copy(a.data(), a.data() + rows * E::kActDim, out.begin());
  }
  return out;
}

// A read-only NumPy view of C++-owned memory; `owner` (the Python object owning the memory) stays alive as
// long as the view does.
template <typename T>
py::array view(py::handle owner, const T* data, std::vector<py::ssize_t> shape, py::dtype dt = py::dtype::of<T>()) {
  py::array a(dt, std::move(shape), {}, data, owner);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

inline py::array bool_view(py::handle owner, const uint8_t* data, py::ssize_t n) {
  return view(owner, data, {n}, py::dtype("bool"));
}

template <class E>
py::array bounds_array(const E& env, bool obs, bool high) {
  const int dim = obs ? E::kObsDim : E::kActDim;
  py::array_t<float> lo(dim), hi(dim);
  if (obs)
    env.obs_bounds(lo.mutable_data(), hi.mutable_data());
  else
    env.act_bounds(lo.mutable_data(), hi.mutable_data());
  return high ? hi : lo;
}

template <class E, class Cls>
void def_space_attrs(Cls& cls) {
  cls.def_property_readonly_static("env_id", [](py::object) { return std::string(E::kId); })
      .def_property_readonly_static("obs_dim", [](py::object) { return E::kObsDim; })
      .def_property_readonly_static("act_dim", [](py::object) { return E::kActDim; })
      .def_property_readonly_static("discrete", [](py::object) { return E::kDiscrete; })
      .def_property_readonly_static("num_actions", [](py::object) -> py::object {
        if constexpr (E::kDiscrete) return py::int_(E::kNumActions);
        return py::none();
      });
}

inline std::optional<uint64_t> check_seed(std::optional<uint64_t> seed, std::size_t span) {
  if (seed && span > 1 && *seed > std::numeric_limits<uint64_t>::max() - (span - 1))
    throw py::value_error("seed: seed + num_envs - 1 must stay below 2**64, got seed " + std::to_string(*seed));
  return seed;
}

}  // namespace vec_detail

// Binds VecEnv<E> as `name`. Returned arrays from reset/step/buffers are read-only views of the C++ buffers
// (no copy); they are overwritten by the next reset/step. recv() returns fresh arrays (copies of the batch).
template <class E>
py::class_<VecEnv<E>> bind_vec_env(py::module_& m, const char* name) {
  using V = VecEnv<E>;
  using namespace vec_detail;
  py::class_<V> cls(m, name,
                    (std::string("Batch of native ") + E::kId +
                     " envs stepped on a thread pool, with same-step autoreset.\n\n"
                     "Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, "
                     "valid until the next reset()/step(); copy them to keep them. recv() returns copies.")
                        .c_str());
  cls.def(py::init([](std::size_t num_envs, std::optional<int> num_threads, std::optional<uint64_t> seed,
                      bool identical_seeds, py::kwargs kw) {
            if (num_envs < 1) throw py::value_error("num_envs: expected an integer >= 1, got 0");
            const int threads =
                num_threads ? *num_threads : static_cast<int>(std::min<std::size_t>(num_envs, default_num_threads()));
            if (threads < 1 || threads > kMaxThreads)
              throw py::value_error("num_threads: expected an integer in [1, " + std::to_string(kMaxThreads) +
                                    "], got " + std::to_string(threads));
            const auto cfg = config_from_kwargs<E>(kw);
            check_seed(seed, identical_seeds ? 1 : num_envs);
            return std::make_unique<V>(num_envs, threads, cfg, seed, identical_seeds);
          }),
          py::arg("num_envs"), py::arg("num_threads") = py::none(), py::arg("seed") = py::none(),
          py::arg("identical_seeds") = false);
  def_space_attrs<E>(cls);
  cls.def(
         "get_state",
         [](V& v) {
           std::string s;
           {
             py::gil_scoped_release nogil;
             s = v.get_state();
           }
           return py::bytes(s);
         },
         "The whole batch's state as bytes (envs' physics, counters and RNGs; running episode stats): "
         "set_state() continues bitwise from it.")
      .def(
          "set_state",
          [](V& v, const py::bytes& state) {
            std::string s = state;
            py::gil_scoped_release nogil;
            v.set_state(s);
          },
          py::arg("state"), "Restores get_state()'s bytes into a batcher of the same env, size and config.");
  cls.def_property_readonly("num_envs", &V::num_envs)
      .def_property_readonly("num_threads", &V::num_threads)
      .def_property_readonly("identical_seeds", &V::identical_seeds)
      .def_property_readonly("num_in_flight", &V::num_in_flight)
      .def_property_readonly("closed", &V::closed)
      .def_property_readonly("config", [](const V& v) { return config_dict<E>(v.config()); })
      .def_property_readonly("max_episode_steps", [](const V& v) { return v.config().max_episode_steps; })
      .def_property_readonly("obs_low", [](const V& v) { return bounds_array(v.env(0), true, false); })
      .def_property_readonly("obs_high", [](const V& v) { return bounds_array(v.env(0), true, true); })
      .def_property_readonly("act_low",
                             [](const V& v) -> py::object {
                               if constexpr (E::kDiscrete) return py::none();
                               return bounds_array(v.env(0), false, false);
                             })
      .def_property_readonly("act_high", [](const V& v) -> py::object {
        if constexpr (E::kDiscrete) return py::none();
        return bounds_array(v.env(0), false, true);
      });

  cls.def(
      "seed",
      [](V& v, uint64_t seed) {
        check_seed(seed, v.identical_seeds() ? 1 : v.num_envs());
        v.seed(seed);
      },
      py::arg("seed"), "Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.");
  cls.def(
      "seed_env",
      [](V& v, std::size_t i, uint64_t s) {
        if (i >= v.num_envs()) throw py::index_error("env index " + std::to_string(i) + " out of range");
        v.seed_env(i, s);
      },
      py::arg("env_id"), py::arg("seed"));

  cls.def(
      "reset",
      [](py::object self, std::optional<uint64_t> seed) {
        V& v = self.cast<V&>();
        if (seed) {
          check_seed(seed, v.identical_seeds() ? 1 : v.num_envs());
          v.seed(*seed);
        }
        {
          py::gil_scoped_release nogil;
          v.reset();
        }
        return view(self, v.obs(), {py::ssize_t(v.num_envs()), E::kObsDim});
      },
      py::arg("seed") = py::none(), "Starts a new episode in every env; returns a view of obs [N, obs_dim].");

  cls.def(
      "step",
      [](py::object self, py::handle actions) {
        V& v = self.cast<V&>();
        const auto acts = actions_from<E>(actions, v.num_envs());
        {
          py::gil_scoped_release nogil;
          v.step(acts.data());
        }
        const auto n = py::ssize_t(v.num_envs());
        return py::make_tuple(view(self, v.obs(), {n, E::kObsDim}), view(self, v.rewards(), {n}),
                              bool_view(self, v.terminated(), n), bool_view(self, v.truncated(), n));
      },
      py::arg("actions"),
      "Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is "
      "already the next episode's first observation; see buffers() for final_obs and episode statistics.");

  cls.def(
      "buffers",
      [](py::object self) {
        V& v = self.cast<V&>();
        const auto n = py::ssize_t(v.num_envs());
        py::dict d;
        d["obs"] = view(self, v.obs(), {n, E::kObsDim});
        d["rewards"] = view(self, v.rewards(), {n});
        d["terminated"] = bool_view(self, v.terminated(), n);
        d["truncated"] = bool_view(self, v.truncated(), n);
        d["final_obs"] = view(self, v.final_obs(), {n, E::kObsDim});
        d["has_final"] = bool_view(self, v.has_final(), n);
        d["episode_return"] = view(self, v.episode_return(), {n});
        d["episode_length"] = view(self, v.episode_length(), {n});
        d["episode_time"] = view(self, v.episode_time(), {n});
        return d;
      },
      "Read-only views of every buffer, refreshed in place by each reset()/step().");

  cls.def(
      "send",
      [](V& v, py::handle actions, py::handle env_ids) {
        std::vector<int64_t> ids;
        if (env_ids.is_none()) {
          ids.resize(v.num_envs());
          for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
        } else {
          py::array a = py::array::ensure(env_ids);
          if (!a || a.ndim() != 1 || (a.size() > 0 && a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
            throw py::value_error("env_ids: expected a 1-D array of integer env indices");
          auto ia = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
          ids.assign(ia.data(), ia.data() + ia.size());
        }
        const auto acts = actions_from<E>(actions, ids.size());
        py::gil_scoped_release nogil;
        v.send(acts.data(), ids.data(), ids.size());
      },
      py::arg("actions"), py::arg("env_ids") = py::none(),
      "Queues one step for each env in env_ids (all envs if None) and returns at once.");

  cls.def(
      "recv",
      [](V& v, std::optional<std::size_t> batch_size, std::optional<double> timeout) {
        if (timeout && (!std::isfinite(*timeout) || *timeout < 0))
          throw py::value_error("timeout: expected None or a finite number of seconds >= 0");
        const std::size_t b = batch_size ? *batch_size : v.num_in_flight();
        const auto rows = py::ssize_t(b);
        py::array_t<int64_t> env_id(rows);
        py::array_t<float> obs({rows, py::ssize_t(E::kObsDim)}), final_obs({rows, py::ssize_t(E::kObsDim)});
        py::array_t<double> rewards(rows), ep_ret(rows), ep_time(rows);
        const std::vector<py::ssize_t> flat{rows};
        py::array terminated(py::dtype("bool"), flat), truncated(py::dtype("bool"), flat),
            has_final(py::dtype("bool"), flat);
        py::array_t<int64_t> ep_len(rows);
        typename V::Batch out{env_id.mutable_data(),
                              obs.mutable_data(),
                              rewards.mutable_data(),
                              static_cast<uint8_t*>(terminated.mutable_data()),
                              static_cast<uint8_t*>(truncated.mutable_data()),
                              final_obs.mutable_data(),
                              static_cast<uint8_t*>(has_final.mutable_data()),
                              ep_ret.mutable_data(),
                              ep_len.mutable_data(),
                              ep_time.mutable_data()};
        try {
          py::gil_scoped_release nogil;
          v.recv(b, timeout ? *timeout : -1.0, out);
        } catch (const TimeoutError& e) {
          PyErr_SetString(PyExc_TimeoutError, e.what());
          throw py::error_already_set();
        }
        py::dict d;
        d["env_id"] = env_id;
        d["obs"] = obs;
        d["rewards"] = rewards;
        d["terminated"] = terminated;
        d["truncated"] = truncated;
        d["final_obs"] = final_obs;
        d["has_final"] = has_final;
        d["episode_return"] = ep_ret;
        d["episode_length"] = ep_len;
        d["episode_time"] = ep_time;
        return d;
      },
      py::arg("batch_size") = py::none(), py::arg("timeout") = py::none(),
      "Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with "
      "their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. "
      "Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.");

  cls.def(
      "close",
      [](V& v) {
        py::gil_scoped_release nogil;
        v.close();
      },
      "Stops the threads; buffers stay readable. Idempotent.");
  return cls;
}

// One env with gymnasium's reset/step signature (TimeLimit included), for parity tests and debugging.
template <class E>
struct SingleEnv {
  E env;
  bool needs_reset = true;
  explicit SingleEnv(const typename E::Config& cfg) : env(cfg) {}
};

template <class E>
py::class_<SingleEnv<E>> bind_single_env(py::module_& m, const char* name) {
  using S = SingleEnv<E>;
  using namespace vec_detail;
  py::class_<S> cls(m, name, (std::string("One native ") + E::kId + " env (gymnasium.make semantics).").c_str());
  cls.def(py::init([](py::kwargs kw) { return std::make_unique<S>(config_from_kwargs<E>(kw)); }));
  def_space_attrs<E>(cls);
  cls.def_property_readonly("config", [](const S& s) { return config_dict<E>(s.env.config()); })
      .def_property_readonly("obs_low", [](const S& s) { return bounds_array(s.env, true, false); })
      .def_property_readonly("obs_high", [](const S& s) { return bounds_array(s.env, true, true); })
      .def_property_readonly("act_low",
                             [](const S& s) -> py::object {
                               if constexpr (E::kDiscrete) return py::none();
                               return bounds_array(s.env, false, false);
                             })
      .def_property_readonly("act_high", [](const S& s) -> py::object {
        if constexpr (E::kDiscrete) return py::none();
        return bounds_array(s.env, false, true);
      });
  cls.def("seed", [](S& s, uint64_t seed) { s.env.seed(seed); }, py::arg("seed"));
  cls.def(
      "reset",
      [](S& s, std::optional<uint64_t> seed) {
        if (seed) s.env.seed(*seed);
        py::array_t<float> obs(E::kObsDim);
        s.env.reset(obs.mutable_data());
        s.needs_reset = false;
        return obs;
      },
      py::arg("seed") = py::none(), "Like env.reset(seed=...)[0]: the seed restarts the RNG stream.");
  cls.def(
      "step",
      [](S& s, py::handle action) {
        if (s.needs_reset) throw std::runtime_error(std::string(E::kId) + ": call reset() before step()");
        std::vector<typename E::Action> a;
        if constexpr (E::kDiscrete) {
          a = actions_from<E>(py::array::ensure(py::make_tuple(action)), 1);
        } else {
          py::array arr = py::array::ensure(action);
          if (!arr) throw py::value_error("action: expected an array-like");
          a = actions_from<E>(arr.attr("reshape")(1, -1), 1);
        }
        const std::string why = envs::check_env_action<E>(s.env, a.data());
        if (!why.empty()) throw py::value_error("action: " + why);
        py::array_t<float> obs(E::kObsDim);
        const envs::StepResult r = s.env.step(a.data(), obs.mutable_data());
        return py::make_tuple(obs, r.reward, r.terminated, r.truncated);
      },
      py::arg("action"), "Returns (obs, reward, terminated, truncated) like gymnasium's step without info.");
  return cls;
}

}  // namespace rltrain::bind
