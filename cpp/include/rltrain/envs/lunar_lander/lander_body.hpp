// LunarLander's lander: the hull and the two legs on their spring joints (gymnasium's body creation order and
// quirks), the engines' impulses, the rigid placement used by the randomised spawn, and the observation and
// reward shaping read off the bodies.
#pragma once

#include <Box2D/Box2D.h>

#include <cmath>

#include "rltrain/envs/lunar_lander/constants.hpp"
#include "rltrain/envs/lunar_lander/contact.hpp"

namespace rltrain::envs::lunar {

inline constexpr double kInitialX = kViewportW / kScale / 2;
inline constexpr double kInitialY = kViewportH / kScale;

// The hull (sim.lander) at the spawn point, at rest.
inline void create_hull(Sim& sim) {
  b2BodyDef bd;
  bd.type = b2_dynamicBody;
  bd.position = vec(kInitialX, kInitialY);
  bd.angle = 0.0f;
  sim.lander = sim.world->CreateBody(&bd);
  b2Vec2 verts[6];
  for (int k = 0; k < 6; ++k) verts[k] = vec(kLanderPoly[k][0] / kScale, kLanderPoly[k][1] / kScale);
  b2PolygonShape poly;
  poly.Set(verts, 6);
  b2FixtureDef fd;
  fd.shape = &poly;
  fd.density = 5.0f;
  fd.friction = 0.1f;
  fd.filter.categoryBits = 0x0010;
  fd.filter.maskBits = 0x001;  // collide only with ground
  fd.restitution = 0.0f;
  sim.lander->CreateFixture(&fd);
}

// The legs (sim.legs) and their motorised revolute joints (sim.joints) to the hull, left leg first.
inline void create_legs(Sim& sim) {
  b2World& world = *sim.world;
  for (int k = 0; k < 2; ++k) {
    const int i = k == 0 ? -1 : +1;
    b2BodyDef bd;
    bd.type = b2_dynamicBody;
    bd.position = vec(kInitialX - i * kLegAway / kScale, kInitialY);
    bd.angle = static_cast<float>(i * 0.05);
    b2Body* leg = world.CreateBody(&bd);
    b2PolygonShape box;
    box.SetAsBox(static_cast<float>(kLegW / kScale), static_cast<float>(kLegH / kScale));
    b2FixtureDef fd;  // friction left at the 0.2 default, as in gymnasium
    fd.shape = &box;
    fd.density = 1.0f;
    fd.restitution = 0.0f;
    fd.filter.categoryBits = 0x0020;
    fd.filter.maskBits = 0x001;
    leg->CreateFixture(&fd);
    sim.legs[k] = leg;

    // pybox2d's revoluteJointDef(bodyA=, bodyB=) sets referenceAngle = bodyB.angle - bodyA.angle, so the
    // limits are relative to the legs' initial +-0.05 rad tilt. The anchors start 0.6 units apart and the first
    // solver step snaps the legs into place: gymnasium's quirks, reproduced.
    b2RevoluteJointDef rjd;
    rjd.bodyA = sim.lander;
    rjd.bodyB = leg;
    rjd.referenceAngle = leg->GetAngle() - sim.lander->GetAngle();
    rjd.localAnchorA = vec(0, 0);
    rjd.localAnchorB = vec(i * kLegAway / kScale, kLegDown / kScale);
    rjd.enableMotor = true;
    rjd.enableLimit = true;
    rjd.maxMotorTorque = static_cast<float>(kLegSpringTorque);
    rjd.motorSpeed = static_cast<float>(+0.3 * i);  // low enough not to jump back into the sky
    if (i == -1) {
      rjd.lowerAngle = static_cast<float>(+0.9 - 0.5);
      rjd.upperAngle = static_cast<float>(+0.9);
    } else {
      rjd.lowerAngle = static_cast<float>(-0.9);
      rjd.upperAngle = static_cast<float>(-0.9 + 0.5);
    }
    sim.joints[k] = static_cast<b2RevoluteJoint*>(world.CreateJoint(&rjd));
  }
}

// gymnasium's engine impulses for one step: main engine at m_power (0 or 0.5..1), side engine at s_power towards
// direction (-1 left, +1 right), both offset by the step's two dispersion draws.
inline void fire_engines(b2Body* lander, double m_power, double s_power, double direction, const double dispersion[2]) {
  const double angle = lander->GetAngle();
  const double tip[2] = {std::sin(angle), std::cos(angle)};
  const double side[2] = {-tip[1], tip[0]};
  if (m_power > 0.0) {
    // 4 is a bit below the centre, +-2 dispersion for randomness
    const double ox = tip[0] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) + side[0] * dispersion[1];
    const double oy = -tip[1] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) - side[1] * dispersion[1];
    const double px = static_cast<double>(lander->GetPosition().x) + ox;
    const double py = static_cast<double>(lander->GetPosition().y) + oy;
    lander->ApplyLinearImpulse(vec(-ox * kMainEnginePower * m_power, -oy * kMainEnginePower * m_power), vec(px, py),
                               true);
  }
  if (s_power > 0.0) {
    const double ox = tip[0] * dispersion[0] + side[0] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
    const double oy = -tip[1] * dispersion[0] - side[1] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
    // gymnasium offsets the x coordinate by 17 (not SIDE_ENGINE_HEIGHT = 14): the thrust point, and so the
    // torque, depends on the tilt. Kept for fidelity.
    const double px = static_cast<double>(lander->GetPosition().x) + ox - tip[0] * 17 / kScale;
    const double py = static_cast<double>(lander->GetPosition().y) + oy + tip[1] * kSideEngineHeight / kScale;
    lander->ApplyLinearImpulse(vec(-ox * kSideEnginePower * s_power, -oy * kSideEnginePower * s_power), vec(px, py),
                               true);
  }
}

// Moves hull and legs rigidly to world position (x, y) and angle, with the rigid-body velocity field
// (vx, vy, omega), and wakes them.
inline void move_rigidly(Sim& sim, double x, double y, double angle, double vx, double vy, double omega) {
  b2Body* l = sim.lander;
  const double cx = l->GetPosition().x, cy = l->GetPosition().y;
  const double dtheta = angle - static_cast<double>(l->GetAngle());
  const double c = std::cos(dtheta), s = std::sin(dtheta);
  for (b2Body* leg : sim.legs) {
    const double rx0 = leg->GetPosition().x - cx, ry0 = leg->GetPosition().y - cy;
    const double rx = c * rx0 - s * ry0, ry = s * rx0 + c * ry0;
    leg->SetTransform(vec(x + rx, y + ry), static_cast<float>(leg->GetAngle() + dtheta));
    leg->SetLinearVelocity(vec(vx - omega * ry, vy + omega * rx));
    leg->SetAngularVelocity(static_cast<float>(omega));
    leg->SetAwake(true);
  }
  l->SetTransform(vec(x, y), static_cast<float>(angle));
  l->SetLinearVelocity(vec(vx, vy));
  l->SetAngularVelocity(static_cast<float>(omega));
  l->SetAwake(true);
}

// gymnasium's 8-float state (float64 before the float32 cast): position relative to the pad, velocity, angle,
// angular velocity, leg contacts.
inline void observe(const Sim& sim, double helipad_y, double* s) {
  const b2Body* l = sim.lander;
  const double px = l->GetPosition().x, py = l->GetPosition().y;
  const double vx = l->GetLinearVelocity().x, vy = l->GetLinearVelocity().y;
  s[0] = (px - kViewportW / kScale / 2) / (kViewportW / kScale / 2);
  s[1] = (py - (helipad_y + kLegDown / kScale)) / (kViewportH / kScale / 2);
  s[2] = vx * (kViewportW / kScale / 2) / kFps;
  s[3] = vy * (kViewportH / kScale / 2) / kFps;
  s[4] = l->GetAngle();
  s[5] = 20.0 * static_cast<double>(l->GetAngularVelocity()) / kFps;
  s[6] = sim.leg_contact[0] ? 1.0 : 0.0;
  s[7] = sim.leg_contact[1] ? 1.0 : 0.0;
}

// gymnasium's shaping potential of a state: distance to the pad, speed, tilt, and ten points per leg in contact.
inline double shaping(const double* s) {
  return -100 * std::sqrt(s[0] * s[0] + s[1] * s[1]) - 100 * std::sqrt(s[2] * s[2] + s[3] * s[3]) -
         100 * std::abs(s[4]) + 10 * s[6] + 10 * s[7];
}

}  // namespace rltrain::envs::lunar
