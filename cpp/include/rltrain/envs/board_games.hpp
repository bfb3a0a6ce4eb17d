// Two-player board games as single-agent envs: rltrain/TicTacToe-v0 and rltrain/ConnectFour-v0.
//
// The agent plays one side (X or O, X moves first) and a built-in opponent the other, inside step(), so every
// trainer sees an ordinary discrete env. Observation: the board from the agent's point of view (+1 own stone,
// -1 the opponent's, 0 empty), row-major (ConnectFour: 6 rows x 7 columns, row 0 at the top). Reward +1 win,
// -1 loss, 0 draw, given at the end. Occupied cells (TicTacToe) and full columns (ConnectFour) are illegal:
// check_legal() names them and the batcher raises before stepping anything. The legal moves of the observed
// position are exactly the empty cells (TicTacToe) and the empty top-row cells (ConnectFour), so the Python side
// derives info["action_mask"] from the observation.
//
// Opponents (Config::opponent_code): 0 uniform random legal move; 1 search: TicTacToe perfect minimax (a table
// of every position's value, built once), ConnectFour alpha-beta to Config::search_depth plies with a
// window-count heuristic. Ties between equally good moves are broken uniformly at random. Every draw comes from
// the env's own numpy-compatible RNG in a fixed order (agent side at reset when random, then one draw per
// opponent move), so results depend only on the seed and the actions, never on the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

// Board cell values: kX moves first. Boards are stored from X's point of view.
constexpr int8_t kEmpty = 0, kX = 1, kO = -1;

struct BoardGameConfig {
  int opponent_code = 0;      // 0: random, 1: search (minimax / alpha-beta)
  int search_depth = 4;       // ConnectFour alpha-beta depth in plies (>= 1); TicTacToe's minimax is always exact
  int agent_side = 2;         // 0: X, 1: O, 2: random at each reset
  int max_episode_steps = 0;  // set by each game's constructor default
  template <class F>
  void for_each_field(F&& f) {
    f("opponent_code", opponent_code);
    f("search_depth", search_depth);
    f("agent_side", agent_side);
    f("max_episode_steps", max_episode_steps);
  }
};

// --------------------------------------------------------------------------------------------- TicTacToe rules

struct TicTacToeRules {
  static constexpr const char* kId = "rltrain/TicTacToe-v0";
  static constexpr int kCells = 9;
  static constexpr int kNumActions = 9;

  static bool legal(const int8_t* b, int a) { return b[a] == kEmpty; }
  static int play(int8_t* b, int a, int8_t who) {
    b[a] = who;
    return a;
  }
  static bool wins(const int8_t* b, int cell) {
    static constexpr int kLines[8][3] = {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {0, 3, 6},
                                         {1, 4, 7}, {2, 5, 8}, {0, 4, 8}, {2, 4, 6}};
    const int8_t who = b[cell];
    for (const auto& l : kLines)
      if ((l[0] == cell || l[1] == cell || l[2] == cell) && b[l[0]] == who && b[l[1]] == who && b[l[2]] == who)
        return true;
    return false;
  }
  static std::string illegal_reason(int a) { return "cell " + std::to_string(a) + " is already occupied"; }

  // Value of the position for the player to move under perfect play, from a table of all 3^9 boards built once
  // (thread-safe static initialisation): 0 draw; a win scores 10 - (stones on the board after the winning move),
  // a loss minus that, so among winning moves the quickest wins and among losing ones the slowest loses. The
  // opponent thus punishes a mistake at once, and its moves are a subset of the win/draw/loss-optimal ones.
  static int value(const int8_t* b, int8_t to_move) {
    static const std::vector<int8_t> table = build_table();
    return table[encode(b)] * (to_move == kX ? 1 : -1);
  }

  // Whether `to_move` is the side to play on `b` by the stone counts (X moves first); unreachable counts are
  // neither side's turn.
  static bool turn_of(const int8_t* b, int8_t to_move) {
    int nx = 0, no = 0;
    for (int i = 0; i < kCells; ++i) nx += b[i] == kX, no += b[i] == kO;
    return to_move == kX ? nx == no : nx == no + 1;
  }

  // The moves that keep the best value for `to_move`. The table is indexed by boards as X and O reach them; a
  // board given with the colours swapped (the mover's own stones as +1 while it plays second) is swapped back,
  // which changes no move's value.
  static int best_moves(const int8_t* b0, int8_t to_move, int depth, int* out) {
    (void)depth;
    int8_t b[kCells];
    std::copy(b0, b0 + kCells, b);
    if (!turn_of(b, to_move)) {
      for (int8_t& v : b) v = static_cast<int8_t>(-v);
      to_move = static_cast<int8_t>(-to_move);
    }
    int n = 0, best = -100;
    int8_t c[kCells];
    for (int a = 0; a < kCells; ++a) {
      if (b[a] != kEmpty) continue;
      std::copy(b, b + kCells, c);
      c[a] = to_move;
      int v;
      if (wins(c, a)) {
        v = kCells + 1 - stones(c);
      } else {
        v = -value(c, static_cast<int8_t>(-to_move));
      }
      if (v > best) best = v, n = 0;
      if (v == best) out[n++] = a;
    }
    return n;
  }

 private:
  static int stones(const int8_t* b) {
    int n = 0;
    for (int i = 0; i < kCells; ++i) n += b[i] != kEmpty;
    return n;
  }
  static constexpr int8_t kUnknown = 100;
  static int encode(const int8_t* b) {
    int k = 0;
    for (int i = 0; i < kCells; ++i) k = k * 3 + (b[i] + 1);
    return k;
  }
  // table[board] = value for X (> 0 X wins, < 0 O wins, 0 draw; see value()) under perfect play from that board,
  // whoever's turn the counts make it; unreachable boards get whatever the recursion gives (never read).
  static std::vector<int8_t> build_table() {
    std::vector<int8_t> t(19683, kUnknown);
    int8_t b[kCells] = {0};
    solve(b, kX, t);
    return t;
  }
  static int solve(int8_t* b, int8_t to_move, std::vector<int8_t>& t) {
    const int key = encode(b);
    if (t[key] != kUnknown) return t[key];
    int best = to_move == kX ? -100 : 100;
    bool any = false;
    for (int a = 0; a < kCells; ++a) {
      if (b[a] != kEmpty) continue;
      any = true;
      b[a] = to_move;
      int v = wins(b, a) ? to_move * (kCells + 1 - stones(b)) : solve(b, static_cast<int8_t>(-to_move), t);
      b[a] = kEmpty;
      best = to_move == kX ? std::max(best, v) : std::min(best, v);
    }
    if (!any) best = 0;
    t[key] = static_cast<int8_t>(best);
    return best;
  }
};

// ------------------------------------------------------------------------------------------- ConnectFour rules

struct ConnectFourRules {
  static constexpr const char* kId = "rltrain/ConnectFour-v0";
  static constexpr int kRows = 6, kCols = 7;
  static constexpr int kCells = kRows * kCols;
  static constexpr int kNumActions = kCols;

  static bool legal(const int8_t* b, int a) { return b[a] == kEmpty; }  // the column's top cell is free
  // Drops a stone into column a; returns the cell it lands in.
  static int play(int8_t* b, int a, int8_t who) {
    int r = kRows - 1;
    while (b[r * kCols + a] != kEmpty) --r;
    b[r * kCols + a] = who;
    return r * kCols + a;
  }
  static bool wins(const int8_t* b, int cell) {
    const int r0 = cell / kCols, c0 = cell % kCols;
    const int8_t who = b[cell];
    static constexpr int kDirs[4][2] = {{0, 1}, {1, 0}, {1, 1}, {1, -1}};
    for (const auto& d : kDirs) {
      int n = 1;
      for (int s = -1; s <= 1; s += 2) {
        int r = r0 + s * d[0], c = c0 + s * d[1];
        while (r >= 0 && r < kRows && c >= 0 && c < kCols && b[r * kCols + c] == who) {
          ++n;
          r += s * d[0];
          c += s * d[1];
        }
      }
      if (n >= 4) return true;
    }
    return false;
  }
  static std::string illegal_reason(int a) { return "column " + std::to_string(a) + " is full"; }

  // Alpha-beta (negamax) to `depth` plies; the root's moves are scored exactly (full window each) so that all
  // equally good moves are found.
  static int best_moves(const int8_t* b0, int8_t to_move, int depth, int* out) {
    int8_t b[kCells];
    std::copy(b0, b0 + kCells, b);
    int n = 0, best = -kInf;
    for (int a : kOrder) {
      if (!legal(b, a)) continue;
      const int cell = play(b, a, to_move);
      int v;
      if (wins(b, cell)) {
        v = kWin + depth;
      } else {
        v = -negamax(b, static_cast<int8_t>(-to_move), depth - 1, -kInf, kInf);
      }
      b[cell] = kEmpty;
      if (v > best) best = v, n = 0;
      if (v == best) out[n++] = a;
    }
    return n;
  }

  // Heuristic value for `who`: over every window of four cells holding only one side's stones, +/- 1, 4, 16
  // for 1, 2, 3 stones; plus 3 per stone in the centre column.
  static int heuristic(const int8_t* b, int8_t who) {
    static constexpr int kWeight[4] = {0, 1, 4, 16};
    int s = 0;
    static constexpr int kDirs[4][2] = {{0, 1}, {1, 0}, {1, 1}, {1, -1}};
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c)
        for (const auto& d : kDirs) {
          const int r3 = r + 3 * d[0], c3 = c + 3 * d[1];
          if (r3 < 0 || r3 >= kRows || c3 < 0 || c3 >= kCols) continue;
          int mine = 0, theirs = 0;
          for (int k = 0; k < 4; ++k) {
            const int8_t v = b[(r + k * d[0]) * kCols + c + k * d[1]];
            mine += v == who;
            theirs += v == -who;
          }
          if (theirs == 0) s += kWeight[mine];
          if (mine == 0) s -= kWeight[theirs];
        }
    for (int r = 0; r < kRows; ++r) s += 3 * (b[r * kCols + 3] == who) - 3 * (b[r * kCols + 3] == -who);
    return s;
  }

 private:
  static constexpr int kInf = 1 << 28;
  static constexpr int kWin = 1 << 20;  // + remaining depth: earlier wins score higher
  static constexpr int kOrder[kCols] = {3, 2, 4, 1, 5, 0, 6};

  static int negamax(int8_t* b, int8_t to_move, int depth, int alpha, int beta) {
    if (depth <= 0) return heuristic(b, to_move);
    bool any = false;
    int best = -kInf;
    for (int a : kOrder) {
      if (!legal(b, a)) continue;
      any = true;
      const int cell = play(b, a, to_move);
      int v;
      if (wins(b, cell)) {
        v = kWin + depth;
      } else {
        v = -negamax(b, static_cast<int8_t>(-to_move), depth - 1, -beta, -alpha);
      }
      b[cell] = kEmpty;
      best = std::max(best, v);
      alpha = std::max(alpha, v);
      if (alpha >= beta) break;
    }
    return any ? best : 0;  // full board: draw
  }
};

// --------------------------------------------------------------------------------------------------- the env

template <class Rules, int kDefaultMaxSteps>
class BoardGameEnv {
 public:
  static constexpr const char* kId = Rules::kId;
  static constexpr int kObsDim = Rules::kCells;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = true;
  static constexpr int kNumActions = Rules::kNumActions;
  static constexpr int kMaxEpisodeSteps = kDefaultMaxSteps;
  using Action = int64_t;

  struct Config : BoardGameConfig {
    Config() { max_episode_steps = kDefaultMaxSteps; }
  };

  BoardGameEnv() = default;
  explicit BoardGameEnv(const Config& cfg) : cfg_(cfg) {}
  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const {
    for (int i = 0; i < kObsDim; ++i) low[i] = -1.0f, high[i] = 1.0f;
  }
  void act_bounds(float*, float*) const {}
  void seed(uint64_t s) { rng_.seed(s); }

  // Empty when the action is legal in the current position, else the reason (the batcher raises ValueError).
  std::string check_legal(const Action* a) const {
    if (!Rules::legal(board_, static_cast<int>(a[0]))) return Rules::illegal_reason(static_cast<int>(a[0]));
    return {};
  }

  void reset(float* obs) {
    std::fill(board_, board_ + Rules::kCells, kEmpty);
    agent_ = cfg_.agent_side == 0 ? kX : cfg_.agent_side == 1 ? kO : (rng_.integers(0, 2) == 0 ? kX : kO);
    elapsed_ = 0;
    stones_ = 0;
    if (agent_ == kO) opponent_move();
    write_obs(obs);
  }

  StepResult step(const Action* a, float* obs) {
    StepResult r;
    const int cell = Rules::play(board_, static_cast<int>(a[0]), agent_);
    ++stones_;
    if (Rules::wins(board_, cell)) {
      r.reward = 1.0, r.terminated = true;
    } else if (stones_ == Rules::kCells) {
      r.terminated = true;
    } else {
      const int oc = opponent_move();
      if (Rules::wins(board_, oc)) {
        r.reward = -1.0, r.terminated = true;
      } else if (stones_ == Rules::kCells) {
        r.terminated = true;
      }
    }
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    write_obs(obs);
    return r;
  }

  int8_t agent_stone() const { return agent_; }
  const int8_t* board() const { return board_; }

 private:
  // Plays the opponent's move; returns the cell it filled.
  int opponent_move() {
    const auto opp = static_cast<int8_t>(-agent_);
    int moves[Rules::kNumActions];
    int n = 0;
    if (cfg_.opponent_code == 1) {
      n = Rules::best_moves(board_, opp, cfg_.search_depth, moves);
    } else {
      for (int a = 0; a < Rules::kNumActions; ++a)
        if (Rules::legal(board_, a)) moves[n++] = a;
    }
    const int pick = moves[rng_.integers(0, n)];
    ++stones_;
    return Rules::play(board_, pick, opp);
  }

  void write_obs(float* obs) const {
    for (int i = 0; i < Rules::kCells; ++i) obs[i] = static_cast<float>(board_[i] * agent_);
  }

  Config cfg_;
  NumpyRng rng_;
  int8_t board_[Rules::kCells] = {0};
  int8_t agent_ = kX;
  int stones_ = 0;
  int elapsed_ = 0;
};

// The default step limit (one step per cell) never cuts a game: games end by themselves, so truncated stays false.
using TicTacToe = BoardGameEnv<TicTacToeRules, TicTacToeRules::kCells>;
using ConnectFour = BoardGameEnv<ConnectFourRules, ConnectFourRules::kCells>;

}  // namespace rltrain::envs
