// tests/docker/loop_fixture.h: a GoogleTest fixture that owns a libuv loop.
//
// Tests run the real loop and never sleep: RunUntil turns the loop until a condition
// holds, with a timer as the backstop that fails the test instead of hanging it. TearDown
// lets every close callback run and asserts uv_loop_close() == 0, so a leaked handle fails
// the test that leaked it.
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

#include <functional>

namespace ephemera::testing {

class LoopTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }

  void TearDown() override {
    BeforeLoopClose();
    uv_run(&loop_, UV_RUN_DEFAULT);  // let close callbacks run
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle is still open";
  }

  // Owners of handles (clients, servers) are destroyed here, before the loop drains.
  virtual void BeforeLoopClose() {}

  // Runs the loop until `done()` holds; false (and a test failure) after `timeout_ms`.
  // A prepare handle checks `done()` before each poll and stops the loop, so the loop
  // never blocks in poll once the condition holds.
  bool RunUntil(const std::function<bool()>& done, uint64_t timeout_ms = 30000) {
    struct State {
      const std::function<bool()>* done;
      bool timed_out = false;
    } state{&done};
    uv_timer_t backstop;
    uv_prepare_t check;
    uv_timer_init(&loop_, &backstop);
    uv_prepare_init(&loop_, &check);
    backstop.data = &state;
    check.data = &state;
    uv_timer_start(
        &backstop,
        [](uv_timer_t* t) {
          static_cast<State*>(t->data)->timed_out = true;
          uv_stop(t->loop);
        },
        timeout_ms, 0);
    uv_prepare_start(&check, [](uv_prepare_t* p) {
      if ((*static_cast<State*>(p->data)->done)()) uv_stop(p->loop);
    });
    while (!done() && !state.timed_out) uv_run(&loop_, UV_RUN_ONCE);
    // Both handles live on this stack frame: close them and let the close callbacks run.
    uv_close(reinterpret_cast<uv_handle_t*>(&backstop), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_FALSE(state.timed_out) << "timed out after " << timeout_ms << " ms";
    return !state.timed_out;
  }

  // Runs the loop for `ms` of loop time (a timer), e.g. to show that nothing else happens.
  void RunFor(uint64_t ms) {
    bool fired = false;
    uv_timer_t t;
    uv_timer_init(&loop_, &t);
    t.data = &fired;
    uv_timer_start(
        &t, [](uv_timer_t* h) { *static_cast<bool*>(h->data) = true; }, ms, 0);
    RunUntil([&] { return fired; }, ms + 30000);
    uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

  uv_loop_t loop_;
};

}  // namespace ephemera::testing
