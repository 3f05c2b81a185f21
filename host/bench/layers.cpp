// `bench layers`: where a training step's time goes, on any engine. The rows follow the step
// plan; the engine supplies the pieces and the clock (LayerProbe, bench_internal.h).
#include "bench/bench_internal.h"

namespace splitconv::bench {

LayersResult time_layers(LayerProbe& p, const TimingOptions& o) {
  const Model& model = p.model();
  const StepPlan& plan = p.plan();
  LayersResult r;
  r.model = model.spec.source;
  r.device = p.device();
  r.description = p.description();
  r.batch = plan.max_batch;
  p.step();  // every buffer now holds a real step's values

  LayerTime input{"input", "gather", model.input};
  input.forward_ms = p.time_ms([&] { p.gather(); }, o);
  r.rows.push_back(input);
  // A layer without an op (a flatten: a view) gets a row with no time.
  for (size_t i = 0; i < model.layers.size(); ++i) {
    LayerTime row = layer_row(model.layers[i]);
    if (const PlanOp* op = plan.op_of(int(i))) row.forward_ms = p.time_ms([&] { p.forward(*op); }, o);
    r.rows.push_back(row);
  }
  LayerTime loss{"loss", "softmax + xent", {1, 1, model.classes}};
  loss.forward_ms = p.time_ms([&] { p.loss(); }, o);
  for (const PlanOp& op : plan.backward)
    r.rows[size_t(op.layer) + 1].backward_ms = p.time_ms([&] { p.backward(op); }, o);
  r.rows.push_back(loss);

  LayerTime update{"update", p.update_kind(), {0, 0, 0}};
  update.params = model.total_params;
  update.backward_ms = p.time_ms([&] { p.update(); }, o);
  r.rows.push_back(update);
  r.handoff_ms = p.handoff_ms(o);
  r.step_ms = p.time_ms([&] { p.step(); }, o);
  return r;
}

}  // namespace splitconv::bench
