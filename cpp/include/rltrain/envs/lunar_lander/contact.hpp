// LunarLander's Box2D world and gymnasium's ContactDetector (which ends the game and tracks the legs' ground
// contact), plus the one-time initialisation that makes Box2D 2.3 safe to step on several threads.
#pragma once

#include <Box2D/Box2D.h>

#include <memory>

namespace rltrain::envs::lunar {

// The physics state shared with Box2D's contact callbacks. Heap-allocated (one per env) so the environment
// object itself stays movable while Box2D holds a pointer to the listener.
struct Sim final : b2ContactListener {
  std::unique_ptr<b2World> world;
  b2Body* moon = nullptr;
  b2Body* lander = nullptr;
  b2Body* legs[2] = {nullptr, nullptr};
  b2RevoluteJoint* joints[2] = {nullptr, nullptr};
  bool game_over = false;
  bool leg_contact[2] = {false, false};

  // gymnasium's ContactDetector: any lander contact ends the game; a leg's flag follows its latest contact
  // event (a bool, not a count, exactly like gymnasium's leg.ground_contact).
  void BeginContact(b2Contact* contact) override {
    const b2Body* a = contact->GetFixtureA()->GetBody();
    const b2Body* b = contact->GetFixtureB()->GetBody();
    if (a == lander || b == lander) game_over = true;
    for (int i = 0; i < 2; ++i)
      if (a == legs[i] || b == legs[i]) leg_contact[i] = true;
  }
  void EndContact(b2Contact* contact) override {
    const b2Body* a = contact->GetFixtureA()->GetBody();
    const b2Body* b = contact->GetFixtureB()->GetBody();
    for (int i = 0; i < 2; ++i)
      if (a == legs[i] || b == legs[i]) leg_contact[i] = false;
  }
};

// Box2D 2.3 fills two process-wide tables lazily and without synchronisation: the block allocator's size lookup
// (first b2World) and the contact function table (first contact any world creates, b2Contact::s_initialized).
// Make that first world and contact here, once, under a thread-safe static, so environments stepped
// concurrently on worker threads only ever read them.
inline void init_box2d_once() {
  static const bool done = [] {
    b2World world(b2Vec2(0.0f, 0.0f));
    b2BodyDef def;
    b2Body* fixed = world.CreateBody(&def);
    def.type = b2_dynamicBody;
    b2Body* moving = world.CreateBody(&def);
    b2CircleShape circle;
    circle.m_radius = 1.0f;
    fixed->CreateFixture(&circle, 0.0f);
    moving->CreateFixture(&circle, 1.0f);
    world.Step(0.01f, 1, 1);  // overlapping proxies -> b2Contact::Create -> InitializeRegisters
    return true;
  }();
  (void)done;
}

// A Box2D vector from Python floats: Box2D stores float32, so every coordinate is rounded here, once.
inline b2Vec2 vec(double x, double y) { return b2Vec2(static_cast<float>(x), static_cast<float>(y)); }

}  // namespace rltrain::envs::lunar
