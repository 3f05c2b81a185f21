// splitconv COMMAND [options]: exit 0 on success, 2 on bad usage or input (a model too large
// for the machine included), 1 on a runtime failure, 130 / 143 when SIGINT / SIGTERM ended
// a `train --save` (after saving).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <new>

#include "cli.h"
#include "splitconv/error.h"
#include "splitconv/format.h"

// The size of the allocation that failed, for the message: the plain operator new is
// replaced (with its deletes) only to record it.
namespace {
std::atomic<size_t> failed_bytes{0};
}  // namespace

void* operator new(std::size_t n) {
  for (;;) {
    if (void* p = std::malloc(n ? n : 1)) return p;
    if (std::new_handler h = std::get_new_handler()) {
      h();
      continue;
    }
    failed_bytes = n;
    throw std::bad_alloc();
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> made = splitconv::cli::make_app();
  CLI::App& app = *made;
  try {
    app.parse(argc, argv);
  } catch (const splitconv::cli::ExitStatus& e) {
    return e.code;
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
  } catch (const std::bad_alloc&) {
    // Plans are checked against memory before they allocate, and the engines' buffers report
    // the bytes they asked for (OutOfMemory); anything else that runs out ends here.
    const size_t n = failed_bytes;
    const std::string size =
        n ? " of " + splitconv::bytes_text(int64_t(n)) + " (" + std::to_string(n) + " bytes)" : "";
    std::cerr << "splitconv: out of memory: an allocation" << size
              << " failed (the model, batch or data is too large for this machine)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "splitconv: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
