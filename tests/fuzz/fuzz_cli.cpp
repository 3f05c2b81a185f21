// Fuzz target: the command line's parsing. The input is the argument list, one argument a
// line (the first line is the first argument after `splitconv`). Every command is set up
// as `splitconv` sets it up (cli::make_app), with its callback, the command's work, taken
// out: what is fuzzed is CLI11 with the project's options, conversions and validators.
//
// Promise checked: any argument list either parses or is refused with CLI::ParseError (help
// and --version included) or InputError, both exit 2 (or 0 for help) in `splitconv`; nothing
// else is thrown.
#include <cstdint>
#include <string>
#include <vector>

#include "cli.h"
#include "fuzz_util.h"
#include "splitconv/error.h"

using namespace splitconv;

namespace {

void without_callbacks(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->callback(std::function<void()>());
    without_callbacks(*sub);
  }
}

}  // namespace

SPLITCONV_FUZZ_TARGET(cli) {
  std::vector<std::string> args = {"splitconv"};
  std::string arg;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += char(data[i]);
    }
  }
  if (!arg.empty()) args.push_back(arg);
  if (args.size() > 64) return 0;  // longer lists only repeat what shorter ones test
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());

  std::unique_ptr<CLI::App> app = cli::make_app();
  without_callbacks(*app);
  try {
    app->parse(int(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
  } catch (const InputError&) {
  }
  return 0;
}
