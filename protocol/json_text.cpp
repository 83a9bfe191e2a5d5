/*
 * protocol/json_text.cpp
 *
 * See json_text.hpp.
 */
#include "json_text.hpp"

#include <cstdint>

namespace hasura_events {

namespace {

/* U+FFFD as UTF-8, not as the escape \ufffd: jsonb de-escapes that into the database encoding,
 * which fails where the encoding has no such character (SQL_ASCII, LATIN1...) */
constexpr std::string_view kReplacement = "\xef\xbf\xbd";

} // namespace

size_t
utf8_sequence_length(std::string_view s, size_t i)
{
	auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
	unsigned char c = b(0);
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	else if ((c & 0xe0) == 0xc0)
		n = 2, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (i + n > s.size())
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((b(k) & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (b(k) & 0x3f);
	}
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

size_t
append_utf8_or(std::string &out, std::string_view s, size_t i, std::string_view replacement)
{
	size_t n = utf8_sequence_length(s, i);
	if (n == 0) {
		out.append(replacement);
		return 1;
	}
	out.append(s.substr(i, n));
	return n;
}

void
append_json_quoted(std::string &out, std::string_view s)
{
	static const char hex[] = "0123456789abcdef";
	size_t need = out.size() + s.size() + 2;
	if (out.capacity() < need) /* geometric growth: an exact reserve would reallocate at every call */
		out.reserve(need > 2 * out.capacity() ? need : 2 * out.capacity());
	out.push_back('"');
	for (size_t i = 0; i < s.size();) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		switch (c) {
		case '"': out += "\\\""; break;
		case '\\': out += "\\\\"; break;
		case '\n': out += "\\n"; break;
		case '\r': out += "\\r"; break;
		case '\t': out += "\\t"; break;
		default:
			if (c == 0) {
				out += kReplacement; /* U+0000 cannot be read back as jsonb or text (json_text.hpp) */
			} else if (c < 0x20) {
				out += "\\u00";
				out.push_back(hex[c >> 4]);
				out.push_back(hex[c & 0xf]);
			} else if (c < 0x80) {
				out.push_back(char(c));
			} else {
				i += append_utf8_or(out, s, i, kReplacement);
				continue;
			}
		}
		i++;
	}
	out.push_back('"');
}

std::string
json_quote(std::string_view s)
{
	std::string out;
	append_json_quoted(out, s);
	return out;
}

namespace {

/* Whether the bytes from s[i] to its end begin a valid UTF-8 sequence that s cuts short: some
 * completion with continuation bytes is valid (E0 needs A0-BF next, ED 80-9F, F0 90-BF, F4
 * 80-8F, so 80... or BF... finds one when any exists). */
bool
cut_sequence(std::string_view s, size_t i)
{
	size_t have = s.size() - i;
	if (have == 0 || have > 3)
		return false;
	unsigned char c = static_cast<unsigned char>(s[i]);
	size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	if (need <= have)
		return false;
	for (char pad : {'\x80', '\xbf'}) {
		std::string seq(s.substr(i));
		seq.append(need - have, pad);
		if (utf8_sequence_length(seq, 0) == need)
			return true;
	}
	return false;
}

} // namespace

bool
is_utf8_text(std::string_view s, bool cut_end_ok)
{
	for (size_t i = 0; i < s.size();) {
		if (static_cast<unsigned char>(s[i]) < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_sequence_length(s, i);
		if (n == 0)
			return cut_end_ok && cut_sequence(s, i);
		i += n;
	}
	return true;
}

void
append_base64(std::string &out, std::string_view s)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	out.reserve(out.size() + (s.size() + 2) / 3 * 4);
	size_t i = 0;
	auto b = [&](size_t k) { return uint32_t(static_cast<unsigned char>(s[k])); };
	for (; i + 3 <= s.size(); i += 3) {
		uint32_t v = b(i) << 16 | b(i + 1) << 8 | b(i + 2);
		for (int shift = 18; shift >= 0; shift -= 6)
			out.push_back(digits[(v >> shift) & 0x3f]);
	}
	size_t rest = s.size() - i;
	if (rest > 0) {
		uint32_t v = b(i) << 16 | (rest == 2 ? b(i + 1) << 8 : 0);
		out.push_back(digits[(v >> 18) & 0x3f]);
		out.push_back(digits[(v >> 12) & 0x3f]);
		out.push_back(rest == 2 ? digits[(v >> 6) & 0x3f] : '=');
		out.push_back('=');
	}
}

void
append_json_blob(std::string &out, std::string_view s)
{
	if (is_utf8_text(s, true)) {
		append_json_quoted(out, s);
		return;
	}
	out += "[\"Base64\", \"";
	append_base64(out, s);
	out += "\"]";
}

} // namespace hasura_events
