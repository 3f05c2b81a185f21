// splitconv data: sizes and class histograms of the datasets present.
#include <cstdio>

#include "cli.h"
#include "splitconv/data.h"

namespace splitconv::cli {

static void print_set(const char* what, const ImageSet& s, nlohmann::json& j) {
  std::vector<int64_t> hist(10, 0);
  for (uint8_t l : s.labels)
    if (l < 10) ++hist[l];
  std::printf("  %-5s %6lld images %dx%dx%d  classes:", what, (long long)s.count, s.h, s.w, s.c);
  for (auto h : hist) std::printf(" %lld", (long long)h);
  std::printf("\n");
  j[what] = {{"count", s.count}, {"h", s.h}, {"w", s.w}, {"c", s.c}, {"histogram", hist}};
}

void add_data(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Sizes and class histograms of the datasets");
  static std::vector<std::string> names;
  static std::string dir, json_path;
  cmd->add_option("--dataset", names, "mnist, fashion-mnist (default: both)");
  cmd->add_option("--data-dir", dir, "data directory (default $SPLITCONV_DATA, else ./data)");
  cmd->add_option("--json", json_path, "write a JSON report");
  cmd->callback([] {
    auto list = names.empty() ? dataset_names() : names;
    std::string root = resolve_data_dir(dir);
    nlohmann::json j;
    for (const auto& name : list) {
      Dataset d = load_dataset(name, root);
      std::printf("%s (%s/%s)\n", name.c_str(), root.c_str(), name.c_str());
      print_set("train", d.train, j[name]);
      print_set("test", d.test, j[name]);
    }
    if (!json_path.empty()) write_json(json_path, j);
  });
}

}  // namespace splitconv::cli
