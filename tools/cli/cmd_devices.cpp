// splitconv devices: the CUDA devices, or plainly why there are none.
#include <cstdio>

#include "cli.h"
#include "splitconv/backend.h"

namespace splitconv::cli {

void add_devices(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List the CUDA devices and library versions");
  static std::string json_path;
  cmd->add_option("--json", json_path, "write a JSON report");
  cmd->callback([] {
    CudaStatus st = cuda_status();
    nlohmann::json j = {{"cuda_backend", st.compiled}, {"devices", nlohmann::json::array()}};
    if (st.compiled)
      std::printf("CUDA runtime %s, driver %s, cuDNN %s, cuBLAS %s\n", st.runtime_version.c_str(),
                  st.driver_version.c_str(), st.cudnn_version.c_str(), st.cublas_version.c_str());
    if (st.devices.empty()) std::printf("no CUDA device: %s\ntraining runs on the CPU\n", st.why_none.c_str());
    for (const auto& d : st.devices) {
      std::printf("cuda:%d  %s  compute %d.%d  %.1f GiB  %d SMs\n", d.index, d.name.c_str(),
                  d.major, d.minor, double(d.memory_bytes) / (1 << 30), d.multiprocessors);
      j["devices"].push_back({{"index", d.index}, {"name", d.name},
                              {"compute_capability", std::to_string(d.major) + "." + std::to_string(d.minor)},
                              {"memory_bytes", d.memory_bytes}, {"multiprocessors", d.multiprocessors}});
    }
    j["why_none"] = st.why_none;
    j["cudnn_version"] = st.cudnn_version;
    j["cublas_version"] = st.cublas_version;
    j["runtime_version"] = st.runtime_version;
    j["driver_version"] = st.driver_version;
    if (!json_path.empty()) write_json(json_path, j);
  });
}

}  // namespace splitconv::cli
