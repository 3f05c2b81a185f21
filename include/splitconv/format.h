// Numbers as the tables show them to people.
#pragma once
#include <cstdint>
#include <string>

namespace splitconv {

// 93322 -> "93,322"
std::string thousands(int64_t v);

}  // namespace splitconv
