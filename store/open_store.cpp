// open_store: turns a storage URL (sqlite:///abs.db, sqlite://rel.db, a bare *.db path) into a Store.
// sqlite://:memory: gives a private in-memory store; schemes this build lacks (postgresql://) are refused clearly.
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "store/sqlite_store.hpp"
#include "store/store.hpp"

namespace kestrel::store {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

constexpr std::string_view kSqlite = "sqlite://";
constexpr const char* kForms =
    "expected sqlite:///absolute/path.db, sqlite://relative/path.db or a file path ending in .db";

// SQLAlchemy reads sqlite:///name.db as relative; here it is /name.db. The hint for when that file is unusable.
bool three_slash_absolute(const std::string& url, const std::string& path) {
  return url.rfind(kSqlite, 0) == 0 && url.rfind("sqlite:////", 0) != 0 && !path.empty() && path.front() == '/';
}

}  // namespace

std::optional<std::string> sqlite_path_of(const std::string& url) {
  if (url.rfind(kSqlite, 0) == 0) {
    // sqlite:///abs keeps its leading slash (three slashes = absolute), sqlite://rel is relative to the cwd.
    std::string path = url.substr(kSqlite.size());
    if (path.empty()) throw StoreError("storage URL '" + url + "' names no file; " + kForms);
    // sqlite:////abs is SQLAlchemy's (and so Optuna's) spelling of an absolute path: the same file.
    while (path.rfind("//", 0) == 0) path.erase(0, 1);
    return path;
  }
  auto scheme_end = url.find("://");
  if (scheme_end != std::string::npos) return std::nullopt;
  if (ends_with(url, ".db") || ends_with(url, ".sqlite") || ends_with(url, ".sqlite3")) return url;
  throw StoreError("storage '" + url + "' is neither a URL nor a .db file path; " + kForms);
}

std::unique_ptr<SqliteStore> open_sqlite_store(const std::string& url, SqliteStoreOptions options) {
  auto path = sqlite_path_of(url);
  if (!path) {
    std::string scheme = url.substr(0, url.find("://"));
    if (scheme == "postgresql" || scheme == "postgres")
      throw StoreError("storage URL '" + url + "': " + scheme +
                       ":// is not built in this build of Kestrel (no PostgreSQL store yet); " + kForms);
    throw StoreError("storage URL '" + url + "': unknown scheme '" + scheme + "://'; " + kForms);
  }
  try {
    return std::make_unique<SqliteStore>(*path, std::move(options));
  } catch (const StoreError& e) {
    if (three_slash_absolute(url, *path))
      throw StoreError(std::string(e.what()) + " (note: '" + url + "' names the absolute path " + *path +
                       "; for a file relative to the current folder write sqlite://" + path->substr(1) + ")");
    throw;
  }
}

std::unique_ptr<Store> open_store(const std::string& url) { return open_sqlite_store(url); }

}  // namespace kestrel::store
