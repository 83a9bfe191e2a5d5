/*
 * protocol/json_text.hpp
 *
 * JSON string quoting shared by the worker (invocation-log JSON) and the sidecar (its JSON log
 * lines and metric labels): RFC 8259 escaping, with every byte sequence that is not valid UTF-8
 * (overlong, surrogate, truncated, above U+10FFFF) written as U+FFFD, so any bytes from a webhook
 * response end up as valid JSON. Pure C++17, no dependencies.
 *
 * What is written must also be readable as jsonb, which refuses more than JSON does (Postgres 15,
 * json -> jsonb): the escape \u0000 (jsonb and text cannot hold U+0000, SQLSTATE 22P05), an
 * escape of a lone or misordered surrogate (\ud800 without its low half, 22P02), and bytes that
 * are not valid UTF-8. So U+0000 is written as U+FFFD too (a webhook answer or a header with a
 * NUL byte must not make the invocation logs unreadable), no surrogate is ever escaped (code
 * points above U+FFFF stay raw UTF-8), and every other control character is \u00XX, which jsonb
 * takes. U+FFFD is written as its UTF-8 bytes, never as an escape: jsonb converts escapes into
 * the database encoding, which may have no U+FFFD.
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

/*
 * Whether s is valid UTF-8; with cut_end_ok, also when its only fault is a sequence that is
 * incomplete because s ends (a response body cut at --max-response-bytes).
 */
bool is_utf8_text(std::string_view s, bool cut_end_ok);

/* Appends s in standard Base64 (RFC 4648, with padding). */
void append_base64(std::string &out, std::string_view s);

/*
 * Appends a webhook's bytes as Hasura stores them in an invocation log (its TByteString): a JSON
 * string when they are UTF-8 text (is_utf8_text with cut_end_ok), else ["Base64", "<base64>"].
 */
void append_json_blob(std::string &out, std::string_view s);

} // namespace hasura_events
