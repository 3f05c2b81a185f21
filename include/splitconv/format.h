// Numbers as the tables show them to people.
#pragma once
#include <cstdint>
#include <string>

namespace splitconv {

// 93322 -> "93,322"
std::string thousands(int64_t v);
// 13207024435 -> "12.3 GiB" (B, KiB, MiB, GiB, TiB, PiB, EiB)
std::string bytes_text(int64_t bytes);

}  // namespace splitconv
