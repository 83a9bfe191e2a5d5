/*
 * protocol/json_text.cpp
 *
 * See json_text.hpp.
 */
#include "json_text.hpp"

#include <cstdint>

namespace hasura_events {

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
	out.reserve(out.size() + s.size() + 2);
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
			if (c < 0x20) {
				out += "\\u00";
				out.push_back(hex[c >> 4]);
				out.push_back(hex[c & 0xf]);
			} else if (c < 0x80) {
				out.push_back(char(c));
			} else {
				i += append_utf8_or(out, s, i, "\\ufffd");
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

} // namespace hasura_events
