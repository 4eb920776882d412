// Base64 (src/io/base64): RFC 4648's test vectors both ways, data URLs, and malformed input refused by name.
#include "io/base64.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace k5 {
namespace {

TEST(Base64, Rfc4648Vectors) {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"Zg==", "f"},
                                                         {"Zm8=", "fo"},
                                                         {"Zm9v", "foo"},
                                                         {"Zm9vYg==", "foob"},
                                                         {"Zm9vYmE=", "fooba"},
                                                         {"Zm9vYmFy", "foobar"}};
  for (const auto& [encoded, decoded] : vectors) EXPECT_EQ(decode_base64(encoded, "x"), decoded) << encoded;
}

TEST(Base64, DataUrlsWhitespaceAndMissingPadding) {
  EXPECT_EQ(decode_base64("data:image/png;base64,Zm9vYmE=", "x"), "fooba");
  EXPECT_EQ(decode_base64("Zm9v\r\nYmFy\n", "x"), "foobar");
  EXPECT_EQ(decode_base64("Zm9vYg", "x"), "foob");
  EXPECT_EQ(decode_base64("/+8=", "x"), "\xff\xef");
}

TEST(Base64, MalformedInputIsRefusedByName) {
  for (const char* bad : {"Zm9v!", "Zg=", "Zg===", "Z",
                          "Zh==", "Zm9=", "Zg==Zg==", "====", "data:image/png,Zg==", "data:image/png;base64"}) {
    try {
      decode_base64(bad, "field 'init_img'");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("field 'init_img': ", 0), 0u) << e.what();
    }
  }
}

// RFC 4648's test vectors, and random bytes through both ways.
TEST(Base64, EncodesAsTheRfcAndRoundTrips) {
  const std::vector<std::pair<std::string, std::string>> vectors{{"", ""},
                                                                 {"f", "Zg=="},
                                                                 {"fo", "Zm8="},
                                                                 {"foo", "Zm9v"},
                                                                 {"foob", "Zm9vYg=="},
                                                                 {"fooba", "Zm9vYmE="},
                                                                 {"foobar", "Zm9vYmFy"}};
  for (const auto& [bytes, text] : vectors) EXPECT_EQ(encode_base64(bytes), text);
  std::mt19937 random(11);
  for (int i = 0; i < 200; ++i) {
    std::string bytes(random() % 40, '\0');
    for (char& c : bytes) c = char(random() % 256);
    EXPECT_EQ(decode_base64(encode_base64(bytes), "x"), bytes);
  }
}

TEST(Base64, RandomBytesNeverCrash) {
  std::mt19937 random(7);
  for (int i = 0; i < 2000; ++i) {
    std::string text(random() % 24, '\0');
    for (char& c : text) c = char(random() % 2 ? "AZaz09+/=\n"[random() % 10] : random() % 256);
    try {
      decode_base64(text, "x");
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace k5
