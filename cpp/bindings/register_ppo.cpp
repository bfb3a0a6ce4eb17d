// pybind11 registration of the PPO loss-gradient kernel: check shapes and dtypes, release the GIL, call C++.
#include <cmath>

#include "checks.hpp"
#include "rltrain/ppo_loss.hpp"

namespace rltrain::bind {

namespace {

py::tuple ppo_loss_grad(py::object head_o, py::object actions_o, py::object old_logp_o, py::object adv_o,
                        py::object returns_o, py::object values_o, py::object old_values_o, double clip, double clip_vf,
                        double ent_coef, double vf_coef, py::object dhead_o, py::object dvalues_o, py::object log_std_o,
                        py::object dlog_std_o, bool normalize_adv) {
  py::array head = as_array(head_o, "head");
  const Kind fk = require_float_array(head, "head", 2, "[B, A]");
  const py::ssize_t B = head.shape(0), A = head.shape(1);
  const bool gaussian = !log_std_o.is_none();
  py::array actions = as_array(actions_o, "actions");
  if (gaussian) {
    require_float(actions, "actions", fk);
    require_shape(actions, "actions", {B, A});
  } else {
    if (kind_of(actions) != Kind::I64) throw py::type_error("actions: expected dtype int64, got " + dtype_str(actions));
    require_shape(actions, "actions", {B});
    // A private copy: the range check below must hold for what the kernel reads after the GIL is released.
    actions = py::array(actions.attr("copy")());
    const int64_t* ap = cptr<int64_t>(actions);
    for (py::ssize_t i = 0; i < B; ++i)
      if (ap[i] < 0 || ap[i] >= A)
        throw py::value_error("actions: expected integers in [0, " + std::to_string(A) + "), got " +
                              std::to_string(ap[i]) + " at index " + std::to_string(i));
  }
  py::array vecs[5];
  const char* names[5] = {"old_logp", "adv", "returns", "values", "old_values"};
  py::object objs[5] = {old_logp_o, adv_o, returns_o, values_o, old_values_o};
  for (int k = 0; k < 5; ++k) {
    vecs[k] = as_array(objs[k], names[k]);
    require_float(vecs[k], names[k], fk);
    require_shape(vecs[k], names[k], {B});
  }
  py::array dhead = as_array(dhead_o, "dhead");
  require_float(dhead, "dhead", fk);
  require_shape(dhead, "dhead", {B, A});
  require_writable(dhead, "dhead");
  py::array dvalues = as_array(dvalues_o, "dvalues");
  require_float(dvalues, "dvalues", fk);
  require_shape(dvalues, "dvalues", {B});
  require_writable(dvalues, "dvalues");
  py::array log_std, dlog_std;
  if (gaussian) {
    log_std = as_array(log_std_o, "log_std");
    require_float(log_std, "log_std", fk);
    require_shape(log_std, "log_std", {A});
    dlog_std = as_array(dlog_std_o, "dlog_std");
    require_float(dlog_std, "dlog_std", fk);
    require_shape(dlog_std, "dlog_std", {A});
    require_writable(dlog_std, "dlog_std");
  }
  if (!std::isfinite(clip) || clip < 0) throw py::value_error("clip: expected a finite number >= 0");
  if (std::isnan(clip_vf)) throw py::value_error("clip_vf: expected a number (< 0 disables value clipping)");
  PpoLossArgs args;
  args.B = B, args.A = A, args.clip = clip, args.clip_vf = clip_vf, args.ent_coef = ent_coef, args.vf_coef = vf_coef;
  args.normalize_adv = normalize_adv;
  PpoLossStats st;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* v[5];
    for (int k = 0; k < 5; ++k) v[k] = cptr<T>(vecs[k]);
    py::gil_scoped_release nogil;
    if (gaussian)
      st = ppo_loss_grad_gaussian<T>(args, cptr<T>(head), cptr<T>(log_std), cptr<T>(actions), v[0], v[1], v[2], v[3],
                                     v[4], mptr<T>(dhead), mptr<T>(dlog_std), mptr<T>(dvalues));
    else
      st = ppo_loss_grad_discrete<T>(args, cptr<T>(head), cptr<int64_t>(actions), v[0], v[1], v[2], v[3], v[4],
                                     mptr<T>(dhead), mptr<T>(dvalues));
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
  return py::make_tuple(st.pg_loss, st.value_loss, st.entropy, st.approx_kl, st.clip_fraction);
}

}  // namespace

void register_ppo(py::module_& m) {
  m.def("ppo_loss_grad", &ppo_loss_grad, py::arg("head"), py::arg("actions"), py::arg("old_logp"), py::arg("adv"),
        py::arg("returns"), py::arg("values"), py::arg("old_values"), py::arg("clip"), py::arg("clip_vf"),
        py::arg("ent_coef"), py::arg("vf_coef"), py::arg("dhead"), py::arg("dvalues"), py::arg("log_std") = py::none(),
        py::arg("dlog_std") = py::none(), py::arg("normalize_adv") = false,
        "PPO loss statistics (pg, value, entropy, approx_kl, clip_fraction) and the gradient of SB3's loss with "
        "respect to the policy head outputs and the values, written into dhead/dvalues (and dlog_std).");
}

}  // namespace rltrain::bind
