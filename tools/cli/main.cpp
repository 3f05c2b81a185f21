// splitconv COMMAND [options]: exit 0 on success, 2 on bad usage or input, 1 on a failure.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "splitconv/error.h"

int main(int argc, char** argv) {
  CLI::App app{"splitconv: which n×n convolutions are worth splitting into n×1 + 1×n, and what "
               "the split buys in parameters, FLOPs, time and accuracy",
               "splitconv"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "splitconv 0.1.0");
  splitconv::cli::add_analyze(app);
  splitconv::cli::add_factorize(app);
  splitconv::cli::add_train(app);
  splitconv::cli::add_compare(app);
  splitconv::cli::add_evaluate(app);
  splitconv::cli::add_data(app);
  splitconv::cli::add_devices(app);
  splitconv::cli::add_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "splitconv: " << e.what() << " (see splitconv --help)\n";
    return 2;
  } catch (const splitconv::InputError& e) {
    std::cerr << "splitconv: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "splitconv: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
