// The step plan: buffers, views, input gradients and op lists, and what it refuses.
#include <gtest/gtest.h>

#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/plan.h"

using namespace splitconv;

namespace {

Model model_of(const std::string& text) { return build_model(parse_spec(text, "m.net")); }

// The notebook's conventional model, from the repository.
Model seed_v0() { return build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net")); }

}  // namespace

TEST(StepPlan, SeedModelBuffersViewsAndGradients) {
  const Model m = seed_v0();
  const StepPlan p = make_plan(m, 32);
  EXPECT_EQ(p.max_batch, 32);
  EXPECT_EQ(p.classes, 10);
  // input, conv1, pool1, conv2, pool2, conv3, dense1, dense2: the flatten is a view of conv3.
  ASSERT_EQ(p.buffers.size(), 8u);
  EXPECT_EQ(p.buffers[0].name, "input");
  EXPECT_EQ(p.buffers[0].shape, (Shape{28, 28, 1}));
  EXPECT_EQ(p.buffers[5].shape, (Shape{3, 3, 64}));
  EXPECT_EQ(p.buffers[5].floats(32), 32 * 3 * 3 * 64);
  // Nothing before conv1 has parameters: no gradient of the input is ever needed.
  EXPECT_FALSE(p.buffers[0].needs_grad);
  for (size_t i = 1; i < p.buffers.size(); ++i) EXPECT_TRUE(p.buffers[i].needs_grad) << i;
  EXPECT_EQ(p.logits, 7);
  ASSERT_EQ(p.argmax_shapes.size(), 2u);
  EXPECT_EQ(p.argmax_shapes[0], (Shape{13, 13, 32}));

  // Seven ops: the flatten (layer 5) runs nothing.
  ASSERT_EQ(p.forward.size(), 7u);
  EXPECT_EQ(p.op_of(5), nullptr);
  const PlanOp* dense1 = p.op_of(6);
  ASSERT_NE(dense1, nullptr);
  EXPECT_EQ(dense1->x, 5);  // reads conv3's buffer through the flatten view
  EXPECT_EQ(dense1->y, 6);
  EXPECT_TRUE(dense1->relu);
  EXPECT_FALSE(p.op_of(0)->need_dx);
  EXPECT_TRUE(p.op_of(1)->need_dx);  // the pool after conv1 passes the gradient on
  EXPECT_EQ(p.op_of(1)->argmax, 0);
  EXPECT_EQ(p.op_of(3)->argmax, 1);
  EXPECT_EQ(p.op_of(0)->argmax, -1);
  EXPECT_FALSE(p.op_of(7)->relu);  // softmax lives in the loss
  // The backward list walks the same ops in reverse.
  ASSERT_EQ(p.backward.size(), p.forward.size());
  for (size_t i = 0; i < p.forward.size(); ++i)
    EXPECT_EQ(p.backward[i].layer, p.forward[p.forward.size() - 1 - i].layer);
}

TEST(StepPlan, InputGradientOnlyAfterTheFirstLayerWithParameters) {
  // A pool before any parameters needs no input gradient, and neither does the conv after it.
  const StepPlan p = make_plan(model_of("input 8x8x2\nmaxpool 2x2\nconv 4 3x3\nflatten\n"
                                        "dense 3\n"),
                               5);
  ASSERT_EQ(p.forward.size(), 3u);
  EXPECT_FALSE(p.forward[0].need_dx);
  EXPECT_FALSE(p.forward[1].need_dx);
  EXPECT_TRUE(p.forward[2].need_dx);
  EXPECT_FALSE(p.buffers[0].needs_grad);
  EXPECT_TRUE(p.buffers[1].needs_grad);  // the pool's output: the conv's dy
}

TEST(StepPlan, InputGradientWhenAsked) {
  // As `bench conv` plans a layer: every op computes its input gradient, the input's included.
  const std::string text = "input 8x8x2\nmaxpool 2x2\nconv 4 3x3\nflatten\ndense 3\n";
  const StepPlan p = make_plan(model_of(text), 5, true);
  ASSERT_EQ(p.forward.size(), 3u);
  for (const PlanOp& op : p.forward) EXPECT_TRUE(op.need_dx) << op.layer;
  for (const PlanBuffer& b : p.buffers) EXPECT_TRUE(b.needs_grad) << b.name;
  // The rest of the plan is the training plan's.
  const StepPlan t = make_plan(model_of(text), 5);
  ASSERT_EQ(t.buffers.size(), p.buffers.size());
  for (size_t i = 0; i < t.buffers.size(); ++i) EXPECT_EQ(t.buffers[i].shape, p.buffers[i].shape);
  EXPECT_EQ(t.logits, p.logits);
}

TEST(StepPlan, RefusesWhatNoEngineRuns) {
  EXPECT_THROW(make_plan(seed_v0(), 0), Error);
  // The last layer must be dense without ReLU; softmax only there.
  EXPECT_THROW(make_plan(model_of("input 4x4x1\nflatten\ndense 3 relu\n"), 4), Error);
  EXPECT_THROW(make_plan(model_of("input 4x4x1\nconv 2 3x3\n"), 4), Error);
  EXPECT_THROW(make_plan(model_of("input 4x4x1\nflatten\ndense 5 softmax\ndense 3\n"), 4), Error);
  EXPECT_NO_THROW(make_plan(model_of("input 4x4x1\nflatten\ndense 3\n"), 1));
}
