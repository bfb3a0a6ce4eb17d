// rltrain._core.envs (continued): the two-player board games (TicTacToe, ConnectFour) as single-agent envs with
// a built-in opponent, their batchers, GAME_ENVS (id -> class name) and the opponents' search functions, which
// the Python path (callable and policy opponents) shares with the C++ envs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <type_traits>
#include <vector>

#include "rltrain/envs/board_games.hpp"
#include "vec_binding.hpp"

namespace py = pybind11;

namespace rltrain::bind {

namespace {

// The moves a searching opponent chooses among (uniformly) for `to_move` (+1 X, -1 O) on `board` (cells from
// X's point of view); `depth` is ignored by TicTacToe's exact minimax.
template <class Rules>
std::vector<int> best_moves(const py::array_t<int8_t, py::array::c_style | py::array::forcecast>& board, int to_move,
                            int depth) {
  if (board.ndim() != 1 || board.shape(0) != Rules::kCells)
    throw py::value_error("board: expected " + std::to_string(Rules::kCells) + " cells");
  if (to_move != 1 && to_move != -1) throw py::value_error("to_move: expected 1 (X) or -1 (O)");
  if (depth < 1) throw py::value_error("depth: expected an integer >= 1, got " + std::to_string(depth));
  const int8_t* b = board.data();
  for (int i = 0; i < Rules::kCells; ++i)
    if (b[i] < -1 || b[i] > 1) throw py::value_error("board: cells must be -1, 0 or 1");
  if constexpr (std::is_same_v<Rules, envs::TicTacToeRules>) {
    const auto me = static_cast<int8_t>(to_move);
    int8_t swapped[Rules::kCells];
    for (int i = 0; i < Rules::kCells; ++i) swapped[i] = static_cast<int8_t>(-b[i]);
    if (!Rules::turn_of(b, me) && !Rules::turn_of(swapped, static_cast<int8_t>(-me)))
      throw py::value_error("board: the stone counts make it nobody's turn (X moves first)");
  }
  int out[Rules::kNumActions];
  int n = 0;
  {
    py::gil_scoped_release nogil;
    n = Rules::best_moves(b, static_cast<int8_t>(to_move), depth, out);
  }
  return std::vector<int>(out, out + n);
}

}  // namespace

void register_games(py::module_& m) {
  bind_vec_env<envs::TicTacToe>(m, "TicTacToeVec");
  bind_single_env<envs::TicTacToe>(m, "TicTacToe");
  bind_vec_env<envs::ConnectFour>(m, "ConnectFourVec");
  bind_single_env<envs::ConnectFour>(m, "ConnectFour");
  py::dict ids;
  ids[envs::TicTacToe::kId] = "TicTacToe";
  ids[envs::ConnectFour::kId] = "ConnectFour";
  m.attr("GAME_ENVS") = ids;
  m.def(
      "tictactoe_best_moves",
      [](const py::array_t<int8_t, py::array::c_style | py::array::forcecast>& board, int to_move) {
        return best_moves<envs::TicTacToeRules>(board, to_move, 1);
      },
      py::arg("board"), py::arg("to_move"),
      "The perfect-play (minimax) moves for to_move on a 9-cell board: from X's view (to_move 1: X, -1: O) or from "
      "the mover's own view (its stones +1, to_move=1) whichever side it plays.");
  m.def("connect_four_best_moves", &best_moves<envs::ConnectFourRules>, py::arg("board"), py::arg("to_move"),
        py::arg("depth"),
        "The best moves of a depth-limited alpha-beta search for to_move (1: X, -1: O) on a 42-cell board "
        "(row 0 at the top) given from X's view.");
}

}  // namespace rltrain::bind
