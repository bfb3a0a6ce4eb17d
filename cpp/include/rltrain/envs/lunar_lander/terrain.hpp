// LunarLander's moon: gymnasium's terrain draws (kChunks + 1 heights, the helipad flattened, then smoothed) and
// the static ground body made of one bottom edge and kChunks - 1 surface edges.
#pragma once

#include <Box2D/Box2D.h>

#include <array>

#include "rltrain/envs/lunar_lander/constants.hpp"
#include "rltrain/envs/lunar_lander/contact.hpp"

namespace rltrain::envs::lunar {

using Terrain = std::array<double, kChunks>;

// Draws kChunks + 1 heights from rng (uniform(0, H/2) each, gymnasium's order) and writes the smoothed surface
// into smooth_y; returns the helipad's height.
template <class Rng>
double draw_terrain(Rng& rng, Terrain& smooth_y) {
  double height[kChunks + 1];
  for (double& h : height) h = rng.uniform(0.0, kH / 2);
  const double helipad_y = kH / 4;
  for (int i = kChunks / 2 - 2; i <= kChunks / 2 + 2; ++i) height[i] = helipad_y;
  for (int i = 0; i < kChunks; ++i) {
    // i = 0 reads height[-1], which Python resolves to the last element.
    const double left = height[i == 0 ? kChunks : i - 1];
    smooth_y[i] = 0.33 * (left + height[i] + height[i + 1]);
  }
  return helipad_y;
}

// The static moon body (sim.moon) along smooth_y: a bottom edge, then the surface edges with friction 0.1.
inline void build_moon(Sim& sim, const Terrain& smooth_y) {
  double chunk_x[kChunks];
  for (int i = 0; i < kChunks; ++i) chunk_x[i] = kW / (kChunks - 1) * i;
  b2BodyDef moon_def;
  sim.moon = sim.world->CreateBody(&moon_def);
  {
    b2EdgeShape bottom;
    bottom.Set(vec(0, 0), vec(kW, 0));
    b2FixtureDef fd;  // pybox2d's shapes= uses fixture defaults: friction 0.2
    fd.shape = &bottom;
    sim.moon->CreateFixture(&fd);
  }
  for (int i = 0; i < kChunks - 1; ++i) {
    b2EdgeShape edge;
    edge.Set(vec(chunk_x[i], smooth_y[i]), vec(chunk_x[i + 1], smooth_y[i + 1]));
    b2FixtureDef fd;
    fd.shape = &edge;
    fd.density = 0.0f;
    fd.friction = 0.1f;
    sim.moon->CreateFixture(&fd);
  }
}

}  // namespace rltrain::envs::lunar
