// splitconv evaluate CK / predict CK: test accuracy of a checkpoint, class probabilities.
#include <cstdio>

#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/plan.h"
#include "train_common.h"

namespace splitconv::cli {

void add_evaluate(CLI::App& app) {
  auto* ev = app.add_subcommand("evaluate", "Test accuracy and loss of a checkpoint");
  static RunOptions o;
  static std::string ck_path;
  ev->add_option("CHECKPOINT", ck_path, "a .safetensors checkpoint")->required();
  add_run_options(ev, o, false);
  ev->callback([] {
    check_run_options(o, false);
    if (!o.json_path.empty()) check_writable(o.json_path, "--json");
    Checkpoint ck = load_checkpoint(ck_path);
    Model model = model_of(ck, ck_path);
    check_plans({&model}, o);
    Dataset data = load_dataset(o.dataset, resolve_data_dir(o.data_dir));
    check_model_data(model, ck_path, data.test, o.dataset + " test");
    auto backend = make_backend(o.device, o.backend);
    backend->plan(model, o.train.batch);
    backend->upload(Split::Test, data.test);
    backend->set_parameters(ck.state.params);
    Metrics m = backend->evaluate(Split::Test, o.limit);
    std::printf("%s on %s test (%lld images, %s): accuracy %.4f, loss %.4f\n", ck_path.c_str(),
                o.dataset.c_str(), (long long)m.count, backend->description().c_str(),
                m.accuracy(), m.loss());
    if (!o.json_path.empty())
      write_json(o.json_path, {{"checkpoint", ck_path}, {"dataset", o.dataset},
                               {"device", backend->name()}, {"images", m.count},
                               {"test_accuracy", m.accuracy()}, {"test_loss", m.loss()}});
  });

  auto* pr = app.add_subcommand("predict", "Class and probabilities of each image in an IDX file");
  static RunOptions po;
  po.train.batch = 256;
  static std::string pck, images_path;
  pr->add_option("CHECKPOINT", pck, "a .safetensors checkpoint")->required();
  pr->add_option("--images", images_path, "IDX image file (raw or .gz)")->required();
  pr->add_option("--device", po.device, "cpu, cuda or auto")->capture_default_str();
  pr->add_option("--json", po.json_path, "write a JSON report");
  pr->add_option("--batch", po.train.batch, "images a step, 1 to " + thousands(kMaxBatch))
      ->capture_default_str();
  pr->add_option("--threads", po.backend.threads,
                 "CPU threads, 1 to " + thousands(kMaxThreads) + " (default 0: all cores)");
  pr->callback([] {
    check_run_options(po, false);
    if (!po.json_path.empty()) check_writable(po.json_path, "--json");
    Checkpoint ck = load_checkpoint(pck);
    Model model = model_of(ck, pck);
    check_plans({&model}, po);
    ImageSet images = read_idx_images(images_path);
    if (images.h != model.input.h || images.w != model.input.w || images.c != model.input.c)
      throw InputError(images_path + ": images are " + std::to_string(images.h) + "x" +
                       std::to_string(images.w) + "x" + std::to_string(images.c) +
                       " but the model takes " + hwc(model.input));
    auto backend = make_backend(po.device, po.backend);
    backend->plan(model, po.train.batch);
    backend->set_parameters(ck.state.params);
    std::vector<float> probs(size_t(images.count) * size_t(model.classes));
    backend->predict(images, probs);
    nlohmann::json j = {{"checkpoint", pck}, {"images", images_path},
                        {"predictions", nlohmann::json::array()}};
    for (int64_t i = 0; i < images.count; ++i) {
      const float* p = probs.data() + i * model.classes;
      int best = 0;
      for (int k = 1; k < model.classes; ++k)
        if (p[k] > p[best]) best = k;
      std::printf("%lld %d %.4f\n", (long long)i, best, p[best]);
      j["predictions"].push_back({{"class", best},
                                  {"probabilities", std::vector<float>(p, p + model.classes)}});
    }
    if (!po.json_path.empty()) write_json(po.json_path, j);
  });
}

}  // namespace splitconv::cli
