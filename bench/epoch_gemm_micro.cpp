// Microbenchmark of the C++ PPO epoch's GEMM kernel (mlp_detail::gemm_e, AVX-512 copy) and tanh on the LunarLander
// update's shapes, one thread. Build and run (bench/README.md, Floor, "Update speed"):
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -fno-trapping-math -Icpp/include
//       bench/epoch_gemm_micro.cpp -o /tmp/epoch_gemm_micro -lpthread    (one command line)
//   /tmp/epoch_gemm_micro
#include <chrono>
#include <cstdio>
#include <vector>

#include "rltrain/ppo_mlp.hpp"

using namespace rltrain;

__attribute__((target("avx512f"), flatten)) double run(int reps, std::size_t M, std::size_t N, std::size_t K,
                                                       int tanh_only) {
  std::vector<float> A(M * K, 0.01f), B(K * N, 0.02f), C(M * N), bias(N, 0.1f);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    if (tanh_only)
      mlp_detail::activate(C.data(), M * N, false);
    else
      mlp_detail::gemm_e<16>(M, N, K, A.data(), K, 1, B.data(), N, C.data(), N, mlp_detail::Init::Bias, bias.data());
    asm volatile("" ::: "memory");
  }
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(t1 - t0).count() / reps;
}
int main() {
  for (int i = 0; i < 3; ++i) {
    double s = run(20000, 64, 64, 64, 0);
    double s2 = run(20000, 32, 64, 64, 0);
    double s3 = run(20000, 64, 64, 8, 0);
    double st = run(20000, 64, 64, 0, 1);
    std::printf(
        "[64,64]x[64,64] %.1f GFLOP/s (%.2f us); [32,64]x[64,64] %.1f; [64,8]x[8,64] %.1f; tanh 4096: %.2f us\n",
        2.0 * 64 * 64 * 64 / s / 1e9, s * 1e6, 2.0 * 32 * 64 * 64 / s2 / 1e9, 2.0 * 64 * 8 * 64 / s3 / 1e9, st * 1e6);
  }
}
