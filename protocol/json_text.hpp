/*
 * protocol/json_text.hpp
 *
 * JSON string quoting shared by the worker (invocation-log JSON) and the sidecar (its JSON log
 * lines and metric labels): RFC 8259 escaping, with every byte sequence that is not valid UTF-8
 * (overlong, surrogate, truncated, above U+10FFFF) written as \ufffd, so any bytes from a webhook
 * response end up as valid JSON. Pure C++17, no dependencies.
 */
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hasura_events {

/* The length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid. */
size_t utf8_sequence_length(std::string_view s, size_t i);

/*
 * Appends the UTF-8 sequence starting at s[i] to out when it is valid, else `replacement`;
 * returns how many bytes of s it took (at least 1).
 */
size_t append_utf8_or(std::string &out, std::string_view s, size_t i, std::string_view replacement);

/* Appends s to out as a JSON string literal. */
void append_json_quoted(std::string &out, std::string_view s);

/* s as a JSON string literal. */
std::string json_quote(std::string_view s);

} // namespace hasura_events
