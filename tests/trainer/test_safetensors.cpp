// Tests of trainer/safetensors: round trip, the exact byte layout of the published format,
// reading half/bfloat16/double files, and clear DataErrors for truncated or corrupt files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "trainer/safetensors.hpp"

namespace kestrel::trainer {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kestrel_st_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes header_json (padded as given) and data as a raw safetensors file.
  std::string raw_file(const std::string& name, const std::string& header_json,
                       const std::string& data, int64_t declared_len = -1) {
    const std::string p = path(name);
    std::ofstream out(p, std::ios::binary);
    const uint64_t len =
        declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header_json.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << header_json << data;
    return p;
  }

  std::string read_error(const std::string& p) {
    try {
      read_safetensors(p);
    } catch (const DataError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected DataError for " << p;
    return "";
  }

  fs::path dir_;
};

std::string bytes_of(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST_F(Safetensors, RoundTripKeepsShapesValuesAndMetadata) {
  const std::vector<float> w{1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  const std::vector<float> b{0.5f, 0.25f};
  const float s = 42.0f;
  write_safetensors(path("m.safetensors"),
                    {{"fc.weight", {2, 3}, w.data()},
                     {"fc.bias", {2}, b.data()},
                     {"scalar", {}, &s},
                     {"empty", {0, 4}, nullptr}},
                    {{"format", "pt"}, {"epoch", "3"}});
  const SafetensorsFile f = read_safetensors(path("m.safetensors"));
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensors.at("fc.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensors.at("fc.weight").data, w);
  EXPECT_EQ(f.tensors.at("fc.bias").data, b);
  EXPECT_TRUE(f.tensors.at("scalar").shape.empty());
  EXPECT_EQ(f.tensors.at("scalar").data, std::vector<float>{42.0f});
  EXPECT_EQ(f.tensors.at("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(f.tensors.at("empty").data.empty());
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("epoch"), "3");
  // Nothing but the target is left in the folder (the temporary file was renamed).
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(Safetensors, WriterProducesThePublishedByteLayout) {
  const std::vector<float> a{1.0f, 2.0f};
  const std::vector<float> z{3.0f};
  write_safetensors(path("x.safetensors"), {{"z", {1}, z.data()}, {"a", {2}, a.data()}},
                    {{"format", "pt"}});
  std::ifstream in(path("x.safetensors"), std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // 8-byte little-endian header length, JSON padded with spaces to a multiple of 8, then the
  // tensors' bytes in name order with data_offsets relative to the end of the header.
  std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("z":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string want(8, '\0');
  const uint64_t len = json.size();
  std::memcpy(want.data(), &len, 8);
  want += json + bytes_of(a) + bytes_of(z);
  EXPECT_EQ(file, want);
  EXPECT_EQ((file.size() - 8 - len) % 4, 0u);
  EXPECT_EQ(len % 8, 0u);
}

TEST_F(Safetensors, OverwritesAnExistingFile) {
  const std::vector<float> one{1.0f}, two{2.0f};
  write_safetensors(path("o.safetensors"), {{"t", {1}, one.data()}});
  write_safetensors(path("o.safetensors"), {{"t", {1}, two.data()}});
  EXPECT_EQ(read_safetensors(path("o.safetensors")).tensors.at("t").data, two);
}

TEST_F(Safetensors, ReadsHalfBfloatAndDoubleTensorsInAnyHeaderOrder) {
  // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 2^-24 (smallest subnormal) = 0x0001;
  // bf16: 1.5 = 0x3FC0; f64: 0.1.
  const uint16_t h[3] = {0x3C00, 0xC000, 0x0001};
  const uint16_t bf[1] = {0x3FC0};
  const double d[1] = {0.1};
  std::string data(reinterpret_cast<const char*>(d), 8);
  data += std::string(reinterpret_cast<const char*>(h), 6);
  data += std::string(reinterpret_cast<const char*>(bf), 2);
  const std::string header = R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},)"
                             R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[14,16]},)"
                             R"("d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})";
  const SafetensorsFile f = read_safetensors(raw_file("mixed.safetensors", header, data));
  EXPECT_EQ(f.tensors.at("h").data, (std::vector<float>{1.0f, -2.0f, 0x1.0p-24f}));
  EXPECT_EQ(f.tensors.at("h").dtype, "F16");
  EXPECT_EQ(f.tensors.at("b").data, std::vector<float>{1.5f});
  EXPECT_EQ(f.tensors.at("d").data, std::vector<float>{0.1f});
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(Safetensors, TruncatedDataIsADataError) {
  const std::vector<float> w(16, 1.0f);
  write_safetensors(path("t.safetensors"), {{"w", {16}, w.data()}});
  fs::resize_file(path("t.safetensors"), fs::file_size(path("t.safetensors")) - 4);
  const std::string msg = read_error(path("t.safetensors"));
  EXPECT_THAT(msg, HasSubstr("t.safetensors"));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(Safetensors, TruncatedHeaderAndTinyFilesAreDataErrors) {
  EXPECT_THAT(read_error(raw_file("short.safetensors", R"({"a":1})", "", 4000)),
              HasSubstr("truncated"));
  const std::string p = path("tiny.safetensors");
  std::ofstream(p) << "abc";
  EXPECT_THAT(read_error(p), HasSubstr("truncated"));
  EXPECT_THAT(read_error(path("missing.safetensors")), HasSubstr("cannot open"));
}

TEST_F(Safetensors, AbsurdHeaderLengthIsADataError) {
  EXPECT_THAT(read_error(raw_file("huge.safetensors", "{}", "", int64_t{1} << 40)),
              HasSubstr("implausible"));
}

TEST_F(Safetensors, InvalidJsonHeaderIsADataError) {
  EXPECT_THAT(read_error(raw_file("json.safetensors", R"({"a":{"dtype":)", "")), HasSubstr("JSON"));
  EXPECT_THAT(read_error(raw_file("arr.safetensors", "[1,2]", "")), HasSubstr("not a JSON object"));
}

TEST_F(Safetensors, ShapeDisagreeingWithOffsetsIsADataError) {
  const std::string msg = read_error(
      raw_file("shape.safetensors", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
               std::string(8, '\0')));
  EXPECT_THAT(msg, HasSubstr("'w'"));
}

TEST_F(Safetensors, HolesAndTrailingBytesAreDataErrors) {
  EXPECT_THAT(read_error(raw_file("hole.safetensors",
                                  R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                  std::string(8, '\0'))),
              HasSubstr("gap"));
  EXPECT_THAT(read_error(raw_file("tail.safetensors",
                                  R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                  std::string(12, '\0'))),
              HasSubstr("after the last tensor"));
}

TEST_F(Safetensors, UnsupportedDtypeIsADataError) {
  EXPECT_THAT(read_error(raw_file("i8.safetensors",
                                  R"({"w":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})",
                                  std::string(1, '\0'))),
              HasSubstr("I8"));
}

TEST_F(Safetensors, WriterRefusesDuplicateAndReservedNames) {
  const float v = 1.0f;
  EXPECT_THROW(write_safetensors(path("d.safetensors"), {{"a", {1}, &v}, {"a", {1}, &v}}),
               ConfigError);
  EXPECT_THROW(write_safetensors(path("d.safetensors"), {{"__metadata__", {1}, &v}}), ConfigError);
  EXPECT_THROW(write_safetensors(path("d.safetensors"), {{"a", {-1}, &v}}), ConfigError);
  EXPECT_FALSE(fs::exists(path("d.safetensors")));
}

TEST_F(Safetensors, UnwritableFolderIsADataError) {
  const float v = 1.0f;
  EXPECT_THROW(write_safetensors("/nonexistent-dir/x.safetensors", {{"a", {1}, &v}}), DataError);
}

}  // namespace
}  // namespace kestrel::trainer
