// docker/Dockerfile and .dockerignore, checked without a Docker engine: the Dockerfile is parsed
// the way `docker build` reads it (instructions, line continuations, comments, stages), and
// what it names is looked up in the repository, which is its build context.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fnmatch.h>
#include <glob.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = SPLITCONV_SOURCE_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Splits like a shell would for the simple words a Dockerfile holds: blanks separate,
// single and double quotes group and are removed.
std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool any = false;
  char quote = 0;
  for (char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
      else cur += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
      any = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (any || !cur.empty()) out.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
    }
  }
  if (any || !cur.empty()) out.push_back(cur);
  return out;
}

struct Instruction {
  std::string op;    // upper case: FROM, RUN, COPY, ...
  std::string args;  // the rest, continuation lines joined
  int line = 0;      // where it starts
};

// Docker's reading: a line ending in the escape character (\) continues on the next one;
// lines starting with # are comments, also inside a continued instruction; blank lines end
// nothing. (The parser directive `# escape=` is not used here; a test below insists.)
std::vector<Instruction> parse_dockerfile(const std::string& text) {
  std::vector<Instruction> out;
  std::istringstream in(text);
  std::string raw, joined;
  int n = 0, start = 0;
  bool continuing = false;
  while (std::getline(in, raw)) {
    ++n;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    if (!continuing) start = n;
    bool more = !line.empty() && line.back() == '\\';
    if (more) line.pop_back();
    joined += (joined.empty() ? "" : " ") + trim(line);
    continuing = more;
    if (more) continue;
    size_t sp = joined.find_first_of(" \t");
    Instruction ins;
    ins.op = upper(joined.substr(0, sp));
    ins.args = sp == std::string::npos ? "" : trim(joined.substr(sp));
    ins.line = start;
    out.push_back(ins);
    joined.clear();
  }
  if (continuing) out.push_back({"<UNTERMINATED>", joined, start});
  return out;
}

// Replaces $NAME and ${NAME} with their values; unknown names are left as they are.
std::string substitute(const std::string& s, const std::map<std::string, std::string>& vars) {
  static const std::regex var(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*))");
  std::string out;
  auto it = std::sregex_iterator(s.begin(), s.end(), var);
  size_t last = 0;
  for (; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    std::string name = m[1].matched ? m[1].str() : m[2].str();
    out += s.substr(last, m.position() - last);
    auto v = vars.find(name);
    out += v != vars.end() ? v->second : m.str();
    last = m.position() + m.length();
  }
  return out + s.substr(last);
}

// NAME=value pairs of ARG and ENV (also ENV's old form `ENV NAME value`).
std::map<std::string, std::string> assignments(const Instruction& ins) {
  std::map<std::string, std::string> out;
  auto w = words(ins.args);
  if (ins.op == "ENV" && !w.empty() && w[0].find('=') == std::string::npos) {
    std::string rest = trim(ins.args.substr(ins.args.find(w[0]) + w[0].size()));
    out[w[0]] = rest;
    return out;
  }
  for (const auto& a : w) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) out[a] = "";
    else out[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return out;
}

struct Copy {
  std::optional<std::string> from;  // --from=STAGE (or image)
  std::vector<std::string> sources;
  std::string dest;
  int line = 0;
};

Copy parse_copy(const Instruction& ins) {
  Copy c;
  c.line = ins.line;
  std::vector<std::string> w;
  std::string args = ins.args;
  // Flags come first, in either form.
  auto all = words(args);
  size_t i = 0;
  for (; i < all.size() && starts_with(all[i], "--"); ++i)
    if (starts_with(all[i], "--from=")) c.from = all[i].substr(7);
  std::string rest;
  {
    // Re-find the text after the flags so that a JSON array is read as JSON.
    size_t pos = 0;
    for (size_t k = 0; k < i; ++k) pos = args.find(all[k], pos) + all[k].size();
    rest = trim(args.substr(pos));
  }
  if (!rest.empty() && rest[0] == '[') {
    for (const auto& e : nlohmann::json::parse(rest)) w.push_back(e.get<std::string>());
  } else {
    w.assign(all.begin() + static_cast<std::ptrdiff_t>(i), all.end());
  }
  if (!w.empty()) {
    c.dest = w.back();
    c.sources.assign(w.begin(), w.end() - 1);
  }
  return c;
}

struct Stage {
  std::string image;  // after ARG substitution
  std::string name;   // AS NAME, or empty
  int line = 0;
  std::vector<Instruction> body;
};

struct Dockerfile {
  std::vector<Instruction> all;
  std::map<std::string, std::string> global_args;  // ARGs before the first FROM
  std::vector<Stage> stages;

  const Stage* stage_named(const std::string& n) const {
    for (const auto& s : stages)
      if (s.name == n) return &s;
    return nullptr;
  }
  std::vector<Instruction> in(const Stage& s, const std::string& op) const {
    std::vector<Instruction> out;
    for (const auto& i : s.body)
      if (i.op == op) out.push_back(i);
    return out;
  }
};

Dockerfile load_dockerfile() {
  Dockerfile d;
  d.all = parse_dockerfile(read_text(kRoot / "docker/Dockerfile"));
  for (const auto& ins : d.all) {
    if (ins.op == "FROM") {
      auto w = words(ins.args);
      Stage s;
      s.line = ins.line;
      size_t i = 0;
      while (i < w.size() && starts_with(w[i], "--")) ++i;  // --platform=...
      if (i < w.size()) s.image = substitute(w[i], d.global_args);
      if (i + 2 < w.size() && upper(w[i + 1]) == "AS") s.name = w[i + 2];
      d.stages.push_back(s);
    } else if (d.stages.empty()) {
      if (ins.op == "ARG")
        for (const auto& [k, v] : assignments(ins)) d.global_args[k] = v;
    } else {
      d.stages.back().body.push_back(ins);
    }
  }
  return d;
}

// A .dockerignore the way Docker applies it: patterns relative to the context root (a
// leading / is dropped), `*` and `?` within one path element, `**` across elements, a
// pattern also excludes everything under a directory it matches, `!` re-includes, and the
// last matching pattern decides.
struct DockerIgnore {
  std::vector<std::pair<std::string, bool>> rules;  // pattern, is an exception (!)

  static DockerIgnore load(const fs::path& p) {
    DockerIgnore d;
    std::istringstream in(read_text(p));
    std::string line;
    while (std::getline(in, line)) {
      line = trim(line);
      if (line.empty() || line[0] == '#') continue;
      bool neg = line[0] == '!';
      if (neg) line = trim(line.substr(1));
      while (starts_with(line, "/")) line.erase(0, 1);
      while (starts_with(line, "./")) line.erase(0, 2);
      while (ends_with(line, "/") && line.size() > 1) line.pop_back();
      d.rules.emplace_back(line, neg);
    }
    return d;
  }

  static bool match_one(const std::string& pat, const std::string& path) {
    if (starts_with(pat, "**/")) {
      std::string rest = pat.substr(3);
      for (size_t pos = 0;; ) {
        if (match_one(rest, path.substr(pos))) return true;
        pos = path.find('/', pos);
        if (pos == std::string::npos) return false;
        ++pos;
      }
    }
    return fnmatch(pat.c_str(), path.c_str(), FNM_PATHNAME) == 0;
  }

  // path relative to the root, '/'-separated
  static bool matches(const std::string& pat, const std::string& path) {
    for (size_t pos = path.size();;) {  // the path itself, then each parent directory
      if (match_one(pat, path.substr(0, pos))) return true;
      pos = path.rfind('/', pos - 1);
      if (pos == std::string::npos || pos == 0) return false;
    }
  }

  bool excluded(const std::string& path) const {
    bool ex = false;
    for (const auto& [pat, neg] : rules)
      if (matches(pat, path)) ex = !neg;
    return ex;
  }
};

// Context-relative source of COPY/ADD: "./x/" -> "x"; "." -> "".
std::string context_path(std::string s) {
  while (starts_with(s, "./")) s.erase(0, 2);
  while (starts_with(s, "/")) s.erase(0, 1);
  while (ends_with(s, "/")) s.pop_back();
  if (s == ".") s.clear();
  return s;
}

bool has_wildcard(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_context(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  std::string full = (kRoot / pattern).string();
  if (glob(full.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i)
      out.push_back(fs::relative(g.gl_pathv[i], kRoot).generic_string());
  globfree(&g);
  return out;
}

// The repository scripts a RUN line calls: relative paths ending in .sh (tools/setup.sh,
// ./tools/x.sh, bash docker/y.sh).
std::vector<std::string> scripts_in(const std::string& run) {
  static const std::regex script(R"((?:^|[\s;&|(])(?:\./)?((?:[\w.-]+/)*[\w.-]+\.sh)\b)");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(run.begin(), run.end(), script); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1].str());
  return out;
}

// Image reference parts: "nvidia/cuda:13.0.0-x@sha256:.." -> tag "13.0.0-x", digest true.
struct ImageRef {
  std::string repo, tag;
  bool digest = false;
};
ImageRef parse_image(const std::string& image) {
  ImageRef r;
  std::string s = image;
  size_t at = s.find('@');
  if (at != std::string::npos) {
    r.digest = s.find("sha256:", at) != std::string::npos;
    s = s.substr(0, at);
  }
  size_t colon = s.rfind(':');
  size_t slash = s.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    r.repo = s.substr(0, colon);
    r.tag = s.substr(colon + 1);
  } else {
    r.repo = s;
  }
  return r;
}

class Docker : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kRoot / "docker/Dockerfile")) << kRoot / "docker/Dockerfile";
    df = load_dockerfile();
    ASSERT_GE(df.stages.size(), 2u) << "a build stage and a runtime stage";
  }
  const Stage& build() const { return df.stages.front(); }
  const Stage& runtime() const { return df.stages.back(); }
  Dockerfile df;
};

TEST_F(Docker, DockerfileParses) {
  for (const auto& ins : df.all) {
    EXPECT_NE(ins.op, "<UNTERMINATED>") << "line " << ins.line << ": continuation never ends";
    static const std::vector<std::string> known = {
        "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
        "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"};
    EXPECT_NE(std::find(known.begin(), known.end(), ins.op), known.end())
        << "line " << ins.line << ": unknown instruction " << ins.op;
  }
  std::string text = read_text(kRoot / "docker/Dockerfile");
  EXPECT_EQ(text.find("# escape="), std::string::npos) << "the escape character stays '\\'";
  EXPECT_EQ(df.all.front().op, "FROM") << "nothing but ARG may precede the first FROM here";
}

TEST_F(Docker, BaseImagesArePinnedByTag) {
  std::string cuda_version;
  for (const auto& s : df.stages) {
    SCOPED_TRACE("FROM " + s.image + " (line " + std::to_string(s.line) + ")");
    ASSERT_EQ(s.image.find('$'), std::string::npos) << "an ARG without a default";
    if (df.stage_named(s.image)) continue;  // FROM an earlier stage
    ImageRef r = parse_image(s.image);
    EXPECT_TRUE(r.digest || !r.tag.empty()) << "no tag";
    EXPECT_NE(r.tag, "latest");
    if (r.repo == "nvidia/cuda" || r.repo == "nvcr.io/nvidia/cuda") {
      // 13.0.0-cudnn-devel-ubuntu24.04: a full CUDA 13 version, and cuDNN.
      std::smatch m;
      ASSERT_TRUE(std::regex_match(r.tag, m, std::regex(R"((13\.\d+\.\d+)-cudnn-(devel|runtime)-.+)")))
          << "want a CUDA 13.x.y cuDNN image";
      if (cuda_version.empty()) cuda_version = m[1].str();
      EXPECT_EQ(m[1].str(), cuda_version) << "the stages name different CUDA versions";
    }
  }
  EXPECT_NE(build().image.find("-devel-"), std::string::npos) << build().image;
  EXPECT_NE(runtime().image.find("-runtime-"), std::string::npos) << runtime().image;
}

TEST_F(Docker, CopySourcesExistInTheContext) {
  DockerIgnore ignore = DockerIgnore::load(kRoot / ".dockerignore");
  int repo_copies = 0;
  for (size_t si = 0; si < df.stages.size(); ++si) {
    for (const auto& ins : df.stages[si].body) {
      if (ins.op != "COPY" && ins.op != "ADD") continue;
      Copy c = parse_copy(ins);
      SCOPED_TRACE(ins.op + " " + ins.args + " (line " + std::to_string(ins.line) + ")");
      ASSERT_FALSE(c.sources.empty()) << "needs a source and a destination";
      if (c.from) {
        // A stage copy: the stage must come earlier (by name or index).
        bool earlier = false;
        for (size_t k = 0; k < si; ++k)
          earlier |= df.stages[k].name == *c.from || std::to_string(k) == *c.from;
        EXPECT_TRUE(earlier) << "--from=" << *c.from << " is not an earlier stage";
        for (const auto& src : c.sources) EXPECT_TRUE(starts_with(src, "/")) << src;
        continue;
      }
      for (const auto& src : c.sources) {
        if (ins.op == "ADD" && (starts_with(src, "http://") || starts_with(src, "https://") ||
                                starts_with(src, "git@")))
          continue;
        std::string rel = context_path(src);
        EXPECT_EQ(rel.find(".."), std::string::npos) << src << " leaves the build context";
        if (has_wildcard(rel)) {
          auto hits = glob_context(rel);
          EXPECT_FALSE(hits.empty()) << src << " matches nothing in " << kRoot;
          for (const auto& h : hits) EXPECT_FALSE(ignore.excluded(h)) << h << " is in .dockerignore";
        } else {
          EXPECT_TRUE(fs::exists(kRoot / rel)) << src << " is not in " << kRoot;
          if (!rel.empty()) {
            EXPECT_FALSE(ignore.excluded(rel)) << src << " is in .dockerignore";
          }
        }
        ++repo_copies;
      }
    }
  }
  EXPECT_GT(repo_copies, 0);
}

TEST_F(Docker, ScriptsItRunsExistAndAreExecutable) {
  int scripts = 0;
  for (const auto& s : df.stages)
    for (const auto& ins : df.in(s, "RUN"))
      for (const auto& sc : scripts_in(ins.args)) {
        SCOPED_TRACE("RUN at line " + std::to_string(ins.line));
        fs::path p = kRoot / sc;
        ASSERT_TRUE(fs::is_regular_file(p)) << sc << " is not in the repository";
        auto perms = fs::status(p).permissions();
        EXPECT_NE(perms & fs::perms::owner_exec, fs::perms::none) << sc << " is not executable";
        ++scripts;
      }
  EXPECT_GT(scripts, 0);
}

TEST_F(Docker, BuildStageSetsUpLikeAWorkstation) {
  // The build stage runs tools/setup.sh, and does no set-up of its own beside it: no
  // package installs, no CMake lines that a workstation would not run.
  // It runs in the copy of the repository: WORKDIR is where `COPY . DIR` put it.
  bool runs_setup = false;
  std::string workdir = "/", repo;
  auto resolve = [&](const std::string& d) {
    std::string r = (starts_with(d, "/") ? fs::path(d) : fs::path(workdir) / d).lexically_normal().string();
    while (r.size() > 1 && ends_with(r, "/")) r.pop_back();
    return r;
  };
  for (const auto& ins : build().body) {
    if (ins.op == "WORKDIR") workdir = resolve(ins.args);
    if (ins.op == "COPY") {
      Copy c = parse_copy(ins);
      if (!c.from && c.sources.size() == 1 && context_path(c.sources[0]).empty()) repo = resolve(c.dest);
    }
    if (ins.op != "RUN") continue;
    for (const auto& sc : scripts_in(ins.args))
      if (sc == "tools/setup.sh") {
        runs_setup = true;
        EXPECT_FALSE(repo.empty()) << "line " << ins.line << ": no `COPY . DIR` of the repository before it";
        EXPECT_EQ(workdir, repo) << "line " << ins.line << ": tools/setup.sh runs outside the repository copy";
      }
    for (const auto& w : words(ins.args)) {
      EXPECT_NE(w, "apt-get") << "line " << ins.line << ": packages belong in tools/setup.sh";
      EXPECT_NE(w, "apt") << "line " << ins.line << ": packages belong in tools/setup.sh";
      EXPECT_NE(w, "cmake") << "line " << ins.line << ": the build belongs to tools/setup.sh";
    }
  }
  EXPECT_TRUE(runs_setup) << "the build stage must RUN tools/setup.sh";
  ASSERT_TRUE(fs::is_regular_file(kRoot / "tools/setup.sh"));
  EXPECT_NE(read_text(kRoot / "tools/setup.sh").find("SPLITCONV_CUDA"), std::string::npos)
      << "setup.sh no longer passes SPLITCONV_CUDA to CMake";

  // The CUDA backend is required, for the architectures of the build argument.
  std::map<std::string, std::string> args, env;
  for (const auto& ins : build().body) {
    if (ins.op == "ARG")
      for (const auto& [k, v] : assignments(ins)) args[k] = v;
    if (ins.op == "ENV")
      for (const auto& [k, v] : assignments(ins)) env[k] = v;
  }
  EXPECT_EQ(env["SPLITCONV_CUDA"], "ON");
  ASSERT_TRUE(args.count("CUDA_ARCHS")) << "ARG CUDA_ARCHS";
  EXPECT_EQ(substitute(env["CUDAARCHS"], args), args["CUDA_ARCHS"])
      << "CMake reads $CUDAARCHS as the default of CMAKE_CUDA_ARCHITECTURES";
  // SASS for 80, 86, 89 and 90 ("NN" or "NN-real"), and PTX ("NN" or "NN-virtual") of the
  // newest of them, which later cards compile when they load the binary.
  std::map<int, std::string> kinds;  // arch -> "real" | "virtual" | "both"
  std::istringstream list(args["CUDA_ARCHS"]);
  std::string a;
  while (std::getline(list, a, ';')) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(a, m, std::regex(R"((\d+)(?:-(real|virtual))?)"))) << a;
    std::string& k = kinds[std::stoi(m[1].str())];
    std::string kind = m[2].matched ? m[2].str() : "both";
    k = k.empty() || k == kind ? kind : "both";
  }
  for (int sm : {80, 86, 89, 90})
    EXPECT_TRUE(kinds.count(sm) && kinds[sm] != "virtual")
        << "no code for sm_" << sm << " in CUDA_ARCHS=" << args["CUDA_ARCHS"];
  int newest_ptx = 0;
  for (const auto& [sm, kind] : kinds)
    if (kind != "real") newest_ptx = std::max(newest_ptx, sm);
  EXPECT_GE(newest_ptx, 90) << "no PTX for newer cards in CUDA_ARCHS=" << args["CUDA_ARCHS"];
}

// CMake puts $CUDAARCHS into the cache only inside enable_language(CUDA); a plain
// set(CMAKE_CUDA_ARCHITECTURES ...) before that shadows it on the first configure (policy
// CMP0126), so the fallback must leave the variable alone when $CUDAARCHS is set.
TEST_F(Docker, CudaArchitecturesReachCMake) {
  std::string cm = read_text(kRoot / "CMakeLists.txt");
  std::istringstream in(cm);
  std::string line, last_if;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = trim(line);
    if (starts_with(t, "if(") || starts_with(t, "if (") || starts_with(t, "elseif(")) last_if = t;
    if (std::regex_search(t, std::regex(R"(^set\s*\(\s*CMAKE_CUDA_ARCHITECTURES\b)")) &&
        t.find("CACHE") == std::string::npos) {
      EXPECT_TRUE(last_if.find("CUDAARCHS") != std::string::npos)
          << "CMakeLists.txt:" << n << ": `" << t << "` under `" << last_if
          << "` overrides $CUDAARCHS (the image's CUDA_ARCHS) on the first configure; guard it "
             "with: if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND \"$ENV{CUDAARCHS}\" STREQUAL \"\")";
    }
  }
}

TEST_F(Docker, RuntimeStageRunsSplitconv) {
  const Stage& rt = runtime();
  // ENTRYPOINT ["splitconv"] (exec form), a binary of that name copied from the build onto PATH.
  auto eps = df.in(rt, "ENTRYPOINT");
  ASSERT_EQ(eps.size(), 1u);
  std::vector<std::string> ep;
  if (starts_with(eps[0].args, "["))
    for (const auto& e : nlohmann::json::parse(eps[0].args)) ep.push_back(e.get<std::string>());
  else
    ep = words(eps[0].args);
  ASSERT_FALSE(ep.empty());
  EXPECT_EQ(fs::path(ep[0]).filename().string(), "splitconv") << eps[0].args;

  bool binary = false, models = false;
  for (const auto& ins : df.in(rt, "COPY")) {
    Copy c = parse_copy(ins);
    if (c.from && c.sources.size() == 1 && ends_with(c.sources[0], "build/splitconv")) {
      const Stage* from = df.stage_named(*c.from);
      EXPECT_EQ(from, &build()) << "the binary comes from the build stage";
      std::string dest = c.dest;
      if (ends_with(dest, "/")) dest += "splitconv";
      binary = ep[0] == dest || (fs::path(dest).filename() == ep[0] &&
                                 (fs::path(dest).parent_path() == "/usr/local/bin" ||
                                  fs::path(dest).parent_path() == "/usr/bin"));
    }
    if (!c.from)
      for (const auto& s : c.sources) models |= context_path(s) == "models";
  }
  EXPECT_TRUE(binary) << "no COPY --from=" << build().name
                      << " of build/splitconv to where the ENTRYPOINT finds it";
  EXPECT_TRUE(models) << "the model specs (models/) belong in the image";

  std::map<std::string, std::string> env;
  for (const auto& ins : df.in(rt, "ENV"))
    for (const auto& [k, v] : assignments(ins)) env[k] = v;
  EXPECT_EQ(env["SPLITCONV_DATA"], "/data");
  bool volume = false;
  for (const auto& ins : df.in(rt, "VOLUME")) {
    std::vector<std::string> v;
    if (starts_with(ins.args, "["))
      for (const auto& e : nlohmann::json::parse(ins.args)) v.push_back(e.get<std::string>());
    else
      v = words(ins.args);
    volume |= std::find(v.begin(), v.end(), "/data") != v.end();
  }
  EXPECT_TRUE(volume) << "VOLUME /data";
  // The runtime stage adds no packages: the base image's CUDA, cuBLAS and cuDNN are what it links.
  for (const auto& ins : df.in(rt, "RUN"))
    for (const auto& w : words(ins.args))
      EXPECT_TRUE(w != "apt-get" && w != "apt") << "line " << ins.line << " installs packages";
}

TEST(DockerIgnore, ExcludesBuildTreesAndData) {
  ASSERT_TRUE(fs::exists(kRoot / ".dockerignore"));
  DockerIgnore ig = DockerIgnore::load(kRoot / ".dockerignore");
  for (const char* p : {"build", "build/splitconv", "build-cpu", "build-lead/CMakeCache.txt", "data",
                        "data/mnist/train-images-idx3-ubyte", ".git", "model.safetensors"})
    EXPECT_TRUE(ig.excluded(p)) << p << " would be sent to the Docker daemon";
  // ...and keeps what the build needs.
  for (const char* p : {"CMakeLists.txt", "include", "host", "host/cpu", "cuda", "tools/setup.sh",
                        "tools/cli", "tests", "tests/CMakeLists.txt", "models/seed-v0.net"})
    EXPECT_FALSE(ig.excluded(p)) << p << " is needed by the image build";
  // Every top-level directory the top CMakeLists.txt names is in the context.
  std::string cm = read_text(kRoot / "CMakeLists.txt");
  for (const auto& e : fs::directory_iterator(kRoot)) {
    std::string name = e.path().filename().string();
    if (!e.is_directory() || name[0] == '.') continue;
    if (std::regex_search(cm, std::regex("(^|[\\s(])" + name + "([/\\s)])"))) {
      EXPECT_FALSE(ig.excluded(name)) << name << "/ is used by CMakeLists.txt";
    }
  }
}

TEST(DockerIgnore, MatcherFollowsDockerRules) {
  DockerIgnore ig;
  ig.rules = {{"build*", false}, {"**/__pycache__", false}, {"docs", false}, {"docs/keep.md", true}};
  EXPECT_TRUE(ig.excluded("build-x/y/z"));
  EXPECT_FALSE(ig.excluded("tools/build.sh"));  // * does not cross /
  EXPECT_TRUE(ig.excluded("__pycache__/a.pyc"));
  EXPECT_TRUE(ig.excluded("tools/peer/__pycache__/a.pyc"));
  EXPECT_TRUE(ig.excluded("docs/plot.png"));
  EXPECT_FALSE(ig.excluded("docs/keep.md"));
}

TEST(DockerfileParser, ReadsContinuationsCommentsAndCopyForms) {
  auto ins = parse_dockerfile(
      "# comment\n"
      "FROM a:1 AS b\n"
      "RUN one \\\n"
      "  # a comment inside\n"
      "  two\n"
      "copy --chown=1:1 [\"x y\", \"/d/\"]\n"
      "COPY --from=b /src/o /usr/local/bin/o\n");
  ASSERT_EQ(ins.size(), 4u);
  EXPECT_EQ(ins[1].op, "RUN");
  EXPECT_EQ(ins[1].args, "one two");
  EXPECT_EQ(ins[1].line, 3);
  Copy c = parse_copy(ins[2]);
  EXPECT_FALSE(c.from);
  ASSERT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources[0], "x y");
  EXPECT_EQ(c.dest, "/d/");
  Copy d = parse_copy(ins[3]);
  ASSERT_TRUE(d.from);
  EXPECT_EQ(*d.from, "b");
  EXPECT_EQ(d.sources, std::vector<std::string>{"/src/o"});
  EXPECT_EQ(scripts_in("set -e; tools/setup.sh build && bash ./docker/x.sh"),
            (std::vector<std::string>{"tools/setup.sh", "docker/x.sh"}));
  EXPECT_EQ(parse_image("nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04").tag,
            "13.0.0-cudnn-runtime-ubuntu24.04");
  EXPECT_EQ(parse_image("localhost:5000/img").tag, "");
  EXPECT_TRUE(parse_image("img@sha256:abc").digest);
}

}  // namespace
