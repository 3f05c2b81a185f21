// The splitconv command line as one CLI::App, shared by main and the command-line fuzz target.
#include "cli.h"

namespace splitconv::cli {

std::unique_ptr<CLI::App> make_app() {
  auto app = std::make_unique<CLI::App>(
      "splitconv: which n×n convolutions are worth splitting into n×1 + 1×n, and what the split "
      "buys in parameters, FLOPs, time and accuracy",
      "splitconv");
  app->require_subcommand(1);
  app->set_version_flag("--version", "splitconv 0.1.0");
  add_analyze(*app);
  add_factorize(*app);
  add_train(*app);
  add_compare(*app);
  add_evaluate(*app);
  add_import(*app);
  add_data(*app);
  add_devices(*app);
  add_bench(*app);
  return app;
}

}  // namespace splitconv::cli
